"""Training augmentation per paper, built from Keras preprocessing layers.

Each function returns an `Augment` for `train_pipeline`, applied to whole
batches inside tf.data (Keras 3 preprocessing layers run on the TF backend
there and draw their random parameters per image).
"""

from __future__ import annotations

import keras

from lipnorm.data.base import Augment


def _as_augment(pipeline: keras.layers.Layer) -> Augment:
    return lambda image, label: (pipeline(image, training=True), label)


def shift_and_flip(side: int, pad: int, seed: int) -> Augment:
    """Zero-pad by `pad` pixels, crop back to `side` at a random place, flip left-right.

    The pad-and-crop of He et al. (CIFAR: pad 4 of 32) is a random integer
    translation by up to `pad` pixels with zero fill, which is what
    RandomTranslation does with nearest-neighbour sampling.
    """
    fraction = pad / side
    return _as_augment(keras.layers.Pipeline([
        keras.layers.RandomTranslation(fraction, fraction, fill_mode="constant", interpolation="nearest", seed=seed),
        keras.layers.RandomFlip("horizontal", seed=seed + 1),
    ]))


def zoom_shift_and_flip(seed: int, zoom: float = 0.15, shift: float = 0.07) -> Augment:
    """Random crop of a large-image pipeline: zoom in by up to `zoom`, shift, flip."""
    return _as_augment(keras.layers.Pipeline([
        keras.layers.RandomZoom((-zoom, 0.0), seed=seed),
        keras.layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seed + 1),
        keras.layers.RandomFlip("horizontal", seed=seed + 2),
    ]))


def for_dataset(name: str, side: int, seed: int) -> Augment | None:
    """The paper augmentation of dataset `name` (None where the papers use none)."""
    if name in ("cifar10",):
        return shift_and_flip(side, 4, seed)
    if name == "stl10":
        return shift_and_flip(side, 12, seed)
    if name == "cars":
        return zoom_shift_and_flip(seed)
    return None
