"""The one place that maps a `--norm` name to a normalization layer."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import keras

from lipnorm.errors import LipnormError
from lipnorm.layers.adaptive_batch_norm import AdaptiveBN
from lipnorm.layers.local_norm import LocalNorm

NORMS = ("batch", "local", "adaptive", "none")

NormFactory = Callable[[str], keras.layers.Layer]


@dataclasses.dataclass(frozen=True)
class NormSpec:
    """Which normalization an architecture uses after its conv and dense layers.

    Attributes:
        name: one of NORMS.
        groups: LocalNorm's K.
        prior: AdaptiveBN's N (None: plain BN at inference).
        momentum, epsilon: as in keras BatchNormalization.
    """

    name: str = "batch"
    groups: int = 1
    prior: Optional[float] = None
    momentum: float = 0.99
    epsilon: float = 1e-3

    def __post_init__(self):
        if self.name not in NORMS:
            raise LipnormError(f"unknown norm {self.name!r}; choose one of {', '.join(NORMS)}")
        if self.groups < 1:
            raise LipnormError(f"--groups must be >= 1, got {self.groups}")

    def layer(self, name: str) -> keras.layers.Layer:
        """A fresh normalization layer called `name` (Identity for 'none')."""
        if self.name == "batch":
            return keras.layers.BatchNormalization(momentum=self.momentum, epsilon=self.epsilon, name=name)
        if self.name == "adaptive":
            return AdaptiveBN(prior=self.prior, momentum=self.momentum, epsilon=self.epsilon, name=name)
        if self.name == "local":
            return LocalNorm(groups=self.groups, epsilon=self.epsilon, name=name)
        return keras.layers.Identity(name=name)
