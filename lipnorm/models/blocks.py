"""Building blocks shared by the architectures."""

from __future__ import annotations

from typing import Sequence

import keras

from lipnorm.layers.factory import NormSpec


def image_input(shape: Sequence[int], mean: Sequence[float], std: Sequence[float]):
    """An Input taking [0, 1] images and the layer that standardizes them per channel."""
    inputs = keras.Input(shape=tuple(shape), name="images")
    variance = [max(s, 1e-6) ** 2 for s in std]
    x = keras.layers.Normalization(mean=list(mean), variance=variance, name="standardize")(inputs)
    return inputs, x


def conv(x, filters: int, kernel: int, name: str, strides: int = 1, bias: bool = False):
    """A 'same'-padded, He-initialized convolution (bias only where no norm with an offset follows)."""
    return keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=bias,
        kernel_initializer="he_normal", name=name,
    )(x)


def conv_norm_act(x, filters: int, kernel: int, norm: NormSpec, name: str, strides: int = 1):
    """conv -> norm -> ReLU; the conv has no bias when a norm with an offset follows."""
    x = conv(x, filters, kernel, f"{name}_conv", strides, bias=norm.name == "none")
    x = norm.layer(f"{name}_norm")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def dense_norm_act(x, units: int, norm: NormSpec, name: str):
    """dense -> norm -> ReLU."""
    x = keras.layers.Dense(units, use_bias=norm.name == "none", kernel_initializer="he_normal", name=f"{name}_dense")(x)
    x = norm.layer(f"{name}_norm")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def logits(x, num_classes: int):
    """The classifier head: models output logits (softmax is applied by the loss and evaluation)."""
    return keras.layers.Dense(num_classes, name="logits")(x)
