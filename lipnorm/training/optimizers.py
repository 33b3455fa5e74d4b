"""Optimizers and learning-rate schedules from plain arguments (keras built-ins only)."""

from __future__ import annotations

from typing import Sequence

import keras

from lipnorm.errors import LipnormError

OPTIMIZERS = ("adam", "adamw", "sgd")

# He et al.'s CIFAR recipe, used by both papers' CIFAR-10 and STL-10 setups: SGD with
# momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at epochs 150 and 225 of 300, batch 128.
HE_CIFAR_SCHEDULE = dict(
    epochs=300, batch_size=128, optimizer="sgd", learning_rate=0.1, momentum=0.9,
    weight_decay=1e-4, lr_boundaries=(150, 225), lr_decay=0.1,
)


def make_optimizer(
    name: str,
    learning_rate: float,
    steps_per_epoch: int,
    lr_boundaries: Sequence[int] = (),
    lr_decay: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> keras.optimizers.Optimizer:
    """`name` with a piecewise-constant schedule: lr * decay^i after the i-th boundary epoch.

    Weight decay is decoupled (AdamW/SGD `weight_decay`), as keras implements it.
    """
    if learning_rate <= 0:
        raise LipnormError(f"--learning_rate must be > 0, got {learning_rate}")
    if sorted(lr_boundaries) != list(lr_boundaries) or any(b <= 0 for b in lr_boundaries):
        raise LipnormError(f"--lr_boundaries must be increasing positive epochs, got {list(lr_boundaries)}")
    lr = learning_rate
    if lr_boundaries:
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=[int(b) * steps_per_epoch for b in lr_boundaries],
            values=[learning_rate * lr_decay**i for i in range(len(lr_boundaries) + 1)],
        )
    wd = weight_decay or None
    if name == "adam":
        return keras.optimizers.Adam(lr, weight_decay=wd)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=weight_decay or 0.004)
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=momentum, nesterov=False, weight_decay=wd)
    raise LipnormError(f"unknown --optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
