"""Architectures; each takes the dataset description and a NormSpec."""

from __future__ import annotations

from typing import Callable

import keras

from lipnorm.data.base import DatasetInfo
from lipnorm.errors import LipnormError
from lipnorm.layers.factory import NormSpec
from lipnorm.models.mnist_nets import lipschitz_small_net, localnorm_mnist_net

Builder = Callable[[DatasetInfo, NormSpec], keras.Model]

MODELS: dict[str, Builder] = {
    "localnorm_mnist_net": localnorm_mnist_net,
    "lipschitz_small_net": lipschitz_small_net,
}


def build(name: str, info: DatasetInfo, norm: NormSpec) -> keras.Model:
    """Builds architecture `name` for `info`'s image shape and classes."""
    if name not in MODELS:
        raise LipnormError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](info, norm)


__all__ = ["MODELS", "build"]
