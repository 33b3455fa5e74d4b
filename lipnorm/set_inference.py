"""Running a model on many small independent sets of images in one graph call.

LocalNorm's voting modes and AdaptiveBN's ad hoc / partial scenarios need
statistics over sets of 1..m images. Instead of a Python loop of model calls,
the batch is cut into sets and `tf.vectorized_map` runs the model on all of
them at once; statistics stay per set because pfor vectorizes every reduction
per iteration.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf


def pad_cyclic(images: tf.Tensor, size) -> tf.Tensor:
    """Repeats the batch cyclically up to `size` rows (a no-op gather when equal)."""
    n = tf.shape(images)[0]
    return tf.gather(images, tf.math.floormod(tf.range(size), n))


def map_sets(fn: Callable[[tf.Tensor], tf.Tensor], images: tf.Tensor, set_size: int) -> tf.Tensor:
    """Applies `fn` to consecutive sets of `set_size` images; returns one row per image.

    `fn` maps (set_size, ...) images to (set_size, classes). A last incomplete
    set is filled by repeating the batch's own images, and the padded rows are
    dropped from the result, so every image is evaluated exactly once.
    """
    n = tf.shape(images)[0]
    sets = (n + set_size - 1) // set_size
    padded = pad_cyclic(images, sets * set_size)
    grouped = tf.reshape(padded, tf.concat([[sets, set_size], tf.shape(images)[1:]], 0))
    out = tf.vectorized_map(fn, grouped)
    return tf.reshape(out, [sets * set_size, -1])[:n]


def outputs_probabilities(model: keras.Model) -> bool:
    """True when the model ends in a softmax (keras.applications style), False for logits."""
    last = model.layers[-1] if model.layers else None
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax" or type(last).__name__ == "Softmax"


def to_probabilities(model: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    if outputs_probabilities(model):
        return lambda y: tf.cast(y, tf.float32)
    return lambda y: tf.nn.softmax(tf.cast(y, tf.float32), axis=-1)
