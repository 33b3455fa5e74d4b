"""LocalNorm's evaluation modes: BATCH, VOTING, SINGLE, SINGLE-VOTING (Yin et al., sec. 5.3).

With K groups and training batch size B = K * m:
- batch: batches of B test images split into groups as in training. A short
  last batch is padded by repeating its own images up to B (group size stays
  m) and the padded outputs are dropped.
- voting: each set of m images goes through every group (the set is tiled K
  times, one model call), and the K predictions are combined.
- single: each image alone (statistics over its H, W) through one group
  chosen at random (seeded) per image.
- single_voting: each image alone through every group, combined.
Combination: "mean" averages the K probability vectors; "majority" counts the
K argmax votes (ties broken by the mean probability).
Models without LocalNorm are evaluated in mode "standard" (one call per batch).
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from lipnorm.errors import LipnormError
from lipnorm.set_inference import map_sets, pad_cyclic, to_probabilities
from lipnorm.layers.local_norm import LocalNorm

MODES = ("batch", "voting", "single", "single_voting")
STANDARD = "standard"
VOTES = ("mean", "majority")

PredictFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def local_norm_layers(model: keras.Model) -> list[LocalNorm]:
    from lipnorm.convert import layers_of_type

    return layers_of_type(model, LocalNorm)


def groups_of(model: keras.Model) -> Optional[int]:
    """K of the model's LocalNorm layers, or None when it has none."""
    counts = {layer.groups for layer in local_norm_layers(model)}
    if len(counts) > 1:
        raise LipnormError(
            f"model {model.name!r} mixes LocalNorm layers with different groups {sorted(counts)}; "
            "the evaluation modes need one K"
        )
    return counts.pop() if counts else None


def check_mode(mode: str) -> None:
    if mode not in MODES and mode != STANDARD:
        raise LipnormError(f"unknown evaluation mode {mode!r}; choose from {', '.join(MODES)}")


def _combine(votes: tf.Tensor, vote: str) -> tf.Tensor:
    """(K, n, classes) probabilities -> (n, classes)."""
    mean = tf.reduce_mean(votes, axis=0)
    if vote == "mean":
        return mean
    counts = tf.reduce_mean(tf.one_hot(tf.argmax(votes, -1), tf.shape(votes)[-1]), axis=0)
    return counts + 1e-6 * mean


def make_predict_fn(
    model: keras.Model, mode: str, batch_size: int, vote: str = "mean"
) -> PredictFn:
    """A tf.function (images, seed[2]) -> probabilities implementing `mode`.

    `batch_size` is the training batch size B; with K groups the group size is
    m = B / K.
    """
    check_mode(mode)
    if vote not in VOTES:
        raise LipnormError(f"unknown vote {vote!r}; choose from {', '.join(VOTES)}")
    probs = to_probabilities(model)
    groups = groups_of(model)
    if groups is None or mode == STANDARD:
        return tf.function(lambda images, seed: probs(model(images, training=False)))
    if batch_size % groups:
        raise LipnormError(
            f"batch size {batch_size} does not split into {groups} LocalNorm groups; "
            f"use a multiple of {groups}"
        )
    if mode in ("single", "single_voting"):
        _warn_dense_single(model, mode)

    def through_every_group(images: tf.Tensor) -> tf.Tensor:
        """(s, ...) -> (K, s, classes): the set normalized once per group."""
        tiled = tf.tile(images, tf.concat([[groups], tf.ones([tf.rank(images) - 1], tf.int32)], 0))
        out = probs(model(tiled, training=False))
        return tf.reshape(out, [groups, tf.shape(images)[0], -1])

    if mode == "batch":

        def fn(images, seed):
            n = tf.shape(images)[0]
            return probs(model(pad_cyclic(images, batch_size), training=False))[:n]

    elif mode == "voting":
        m = batch_size // groups

        def fn(images, seed):
            return map_sets(lambda s: _combine(through_every_group(s), vote), images, m)

    elif mode == "single_voting":

        def fn(images, seed):
            return map_sets(lambda s: _combine(through_every_group(s), vote), images, 1)

    else:  # single: one random group per image

        def fn(images, seed):
            every = map_sets(lambda s: tf.reshape(through_every_group(s), [1, -1]), images, 1)
            every = tf.reshape(every, [tf.shape(images)[0], groups, -1])
            chosen = tf.random.stateless_uniform(
                [tf.shape(images)[0]], seed, minval=0, maxval=groups, dtype=tf.int32
            )
            return tf.gather(every, chosen, axis=1, batch_dims=1)

    return tf.function(fn)


def _warn_dense_single(model: keras.Model, mode: str) -> None:
    dense = [layer.name for layer in local_norm_layers(model) if not layer.sees_spatial_features]
    if dense:
        logging.warning(
            "%s mode: LocalNorm layers %s normalize dense features; over one image each "
            "channel has one value and zero variance, so these layers output beta alone and "
            "the prediction ignores the image past them. Use mode voting or batch for this network.",
            mode, ", ".join(dense),
        )


def predict(
    model: keras.Model,
    images,
    mode: str = "batch",
    batch_size: Optional[int] = None,
    vote: str = "mean",
    seed: int = 0,
) -> np.ndarray:
    """Class probabilities for `images` in LocalNorm evaluation `mode`.

    Args:
        model: a keras model (with or without LocalNorm layers).
        images: array-like (N, H, W, C); every image gets a prediction.
        mode: one of MODES ("standard" for models without LocalNorm).
        batch_size: the training batch size B (default: 8 images per group).
        vote: "mean" or "majority" for the voting modes.
        seed: chooses SINGLE mode's random groups.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if len(images.shape) < 2 or images.shape[0] == 0:
        raise LipnormError(f"predict needs a non-empty batch of images, got shape {images.shape}")
    groups = groups_of(model) or 1
    batch_size = batch_size or 8 * groups
    fn = make_predict_fn(model, mode, batch_size, vote)
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        chunk = images[start: start + batch_size]
        outputs.append(fn(chunk, tf.constant([seed, start], tf.int64)).numpy())
    return np.concatenate(outputs)
