"""LocalNorm's evaluation modes: BATCH, VOTING, SINGLE, SINGLE-VOTING (Yin et al., sec. 5.3).

With K groups of m images (the trained group size, stored in the layers):
- batch: blocks of m consecutive test images, block j through group j mod K,
  as in training. A chunk of K * m images is exactly a training batch.
- voting: each set of m images goes through every group (repeated K times in
  one call of K * m images), and the K predictions are combined.
- single: each image alone (statistics over its H, W) through one group drawn
  at random per image: one pass, with a per-image group index.
- single_voting: each image alone through every group (m images at a time),
  combined.
Combination: "mean" averages the K probability vectors; "majority" counts the
K argmax votes (ties broken by the mean probability).
Models without LocalNorm are evaluated in mode "standard" (one call per batch).

A `Predictor` pads a chunk's last partial block with the block's own images
and drops the padded outputs, so every image is evaluated once; with chunks
that are a multiple of `Predictor.multiple` the predictions do not depend on
the evaluation batch size at all.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from lipnorm.errors import ArgumentError
from lipnorm.evaluation.batching import batch_multiple, draws_for, pad_to_blocks, round_up
from lipnorm.layers.local_norm import grouping
from lipnorm.layers.lookup import local_norm_grouping, local_norm_layers
from lipnorm.models.heads import probabilities

MODES = ("batch", "voting", "single", "single_voting")
STANDARD = "standard"
VOTES = ("mean", "majority")


@dataclasses.dataclass(frozen=True)
class Predictor:
    """fn(images, draws) -> (n, classes) probabilities; `draws` are per-image uniforms in [0, 1).

    `multiple`: chunks of a multiple of it are predicted exactly as the whole set would be.
    """

    fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    multiple: int


def check_mode(mode: str) -> None:
    if mode not in MODES and mode != STANDARD:
        raise ArgumentError("mode", mode, f"one of {', '.join(MODES)}")


def check_vote(vote: str) -> None:
    if vote not in VOTES:
        raise ArgumentError("vote", vote, f"one of {', '.join(VOTES)}")


def _combine(votes: tf.Tensor, vote: str) -> tf.Tensor:
    """(n, K, classes) probabilities -> (n, classes)."""
    mean = tf.reduce_mean(votes, axis=1)
    if vote == "mean":
        return mean
    counts = tf.reduce_mean(tf.one_hot(tf.argmax(votes, -1), tf.shape(votes)[-1]), axis=1)
    return counts + 1e-6 * mean


def _repeat_sets(images: tf.Tensor, set_size: int, times: int) -> tf.Tensor:
    """(S * set_size, ...) -> (S * times * set_size, ...): each set of images repeated `times` times in a row."""
    sets = tf.reshape(images, tf.concat([[-1, 1, set_size], tf.shape(images)[1:]], 0))
    tiled = tf.tile(sets, tf.concat([[1, times, 1], tf.ones([tf.rank(images) - 1], tf.int32)], 0))
    return tf.reshape(tiled, tf.concat([[-1], tf.shape(images)[1:]], 0))


def _through_every_group(run, images: tf.Tensor, m: int, groups: int, size: int, classes: int) -> tf.Tensor:
    """(n, K, classes): every image through every group, normalized over sets of `size` images.

    One block of m images at a time goes through the K groups, so each model
    call holds K * m images, a training batch's worth, whatever the chunk:
    measured 0.75-0.79 K x BATCH on the MNIST net against 1.07-1.35 K x for
    the whole chunk repeated K times in one call, whose activations outgrow
    the cache (benchmarks/bench_local_norm.py).
    """
    n = tf.shape(images)[0]
    blocks = tf.reshape(pad_to_blocks(images, m), tf.concat([[-1, m], tf.shape(images)[1:]], 0))

    def one_block(block):
        out = run(_repeat_sets(block, size, groups), size)  # set s through group k at rows (s, k, :)
        out = tf.transpose(tf.reshape(out, [m // size, groups, size, classes]), [0, 2, 1, 3])
        return tf.reshape(out, [m, groups, classes])

    spec = tf.TensorSpec([m, groups, classes], tf.float32)
    votes = tf.map_fn(one_block, blocks, fn_output_signature=spec, parallel_iterations=2)
    return tf.reshape(votes, [-1, groups, classes])[:n]


def make_predictor(
    model: keras.Model, mode: str = "batch", vote: str = "mean", group_size: Optional[int] = None
) -> Predictor:
    """The Predictor of `model` in evaluation `mode`.

    Args:
        model: a keras model, with or without LocalNorm layers.
        mode: one of MODES (models without LocalNorm always run "standard").
        vote: how voting modes combine the K groups, one of VOTES.
        group_size: m, for models whose LocalNorm layers do not record it
            (the training batch per replica / K).
    """
    check_mode(mode)
    check_vote(vote)
    found = local_norm_grouping(model)
    if found is None or mode == STANDARD:
        multiple = batch_multiple(model)

        def standard(images, draws):
            n = tf.shape(images)[0]
            return probabilities(model, model(pad_to_blocks(images, multiple), training=False))[:n]

        return Predictor(tf.function(standard), multiple)
    groups, stored = found
    m = group_size or stored
    if m is None:
        raise ArgumentError(
            "group_size", None, "given for this model",
            "its LocalNorm layers do not record their group size m (the training batch per replica / K)",
        )
    if mode in ("single", "single_voting"):
        _warn_dense_single(model, mode)

    def run(images, size, index=None):
        with grouping(size, index):
            return probabilities(model, model(images, training=False))

    if mode == "batch":

        def fn(images, draws):
            n = tf.shape(images)[0]
            return run(pad_to_blocks(images, m), m)[:n]

        return Predictor(tf.function(fn), groups * m)
    if mode in ("voting", "single_voting"):
        size = m if mode == "voting" else 1
        classes = model.outputs[0].shape[-1]

        def fn(images, draws):
            return _combine(_through_every_group(run, images, m, groups, size, classes), vote)

        return Predictor(tf.function(fn), size)

    def single(images, draws):
        index = tf.minimum(tf.cast(draws * groups, tf.int32), groups - 1)
        return run(images, 1, index)

    return Predictor(tf.function(single), 1)


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
    *,
    batch_size: int = 256,
    vote: str = "mean",
    seed: int = 0,
    group_size: Optional[int] = None,
) -> np.ndarray:
    """Class probabilities for every image of `images` in LocalNorm evaluation `mode`.

    The result does not depend on `batch_size` (it is rounded up to whole
    LocalNorm blocks): it only sets how many images go through the model at once.

    Args:
        model: a keras model (with or without LocalNorm layers).
        images: array-like (N, H, W, C).
        mode: one of MODES ("standard" for models without LocalNorm).
        batch_size: images per model call (>= 1).
        vote: "mean" or "majority" for the voting modes.
        seed: chooses SINGLE mode's random groups.
        group_size: m for models whose LocalNorm layers do not record it.
    """
    if batch_size < 1:
        raise ArgumentError("batch_size", batch_size, ">= 1")
    images = tf.convert_to_tensor(images, tf.float32)
    if len(images.shape) < 2 or images.shape[0] == 0:
        raise ArgumentError("images", f"shape {tuple(images.shape)}", "a non-empty batch of images")
    predictor = make_predictor(model, mode, vote, group_size)
    draws = tf.constant(draws_for(images.shape[0], seed))
    chunk = round_up(batch_size, predictor.multiple)
    outputs = [
        predictor.fn(images[start: start + chunk], draws[start: start + chunk]).numpy()
        for start in range(0, images.shape[0], chunk)
    ]
    return np.concatenate(outputs)
