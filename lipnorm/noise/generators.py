"""Noise generators of the LocalNorm and Lipschitz papers as in-graph TF ops.

Every generator takes a float batch of images in [0, 1], a severity and a
stateless seed (an int tensor of shape [2]) and returns the noisy batch,
unclipped. The same seed gives the same noisy images; noise is drawn
independently for every pixel and channel.
"""

from __future__ import annotations

import tensorflow as tf


def agn(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    """Multiplicative Gaussian noise: x * (1 + xi), xi ~ Normal(0, severity)."""
    xi = tf.random.stateless_normal(tf.shape(images), seed, stddev=severity, dtype=images.dtype)
    return images * (1.0 + xi)


def _centered_poisson(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    # k ~ Poisson(sigma) shifted to zero mean: variance sigma, as in the digest's reading.
    k = tf.random.stateless_poisson(tf.shape(images), seed, lam=severity, dtype=images.dtype)
    return k - tf.cast(severity, images.dtype)


def apn_additive(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    """Additive zero-mean Poisson noise: x + (k - sigma), k ~ Poisson(sigma).

    On [0, 1] images this is the paper's x + 255 xi on [0, 255] images.
    """
    return images + _centered_poisson(images, severity, seed)


def apn_multiplicative(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    """Multiplicative zero-mean Poisson noise: x * (1 + k - sigma), k ~ Poisson(sigma)."""
    return images * (1.0 + _centered_poisson(images, severity, seed))


def mbn(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    """Multiplicative Bernoulli noise: each value is set to 0 with probability severity."""
    keep = tf.random.stateless_uniform(tf.shape(images), seed, dtype=images.dtype) >= severity
    return images * tf.cast(keep, images.dtype)


def gaussian(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    """Additive Gaussian noise: x + xi, xi ~ Normal(0, severity) (ImageNet-C gaussian_noise)."""
    return images + tf.random.stateless_normal(tf.shape(images), seed, stddev=severity, dtype=images.dtype)
