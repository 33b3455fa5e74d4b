"""Noise generators of the LocalNorm and Lipschitz papers as in-graph TF ops.

Every generator takes a float batch of images in [0, 1], a severity and a
stateless seed (an int tensor of shape [2]) and returns the noisy batch,
unclipped. The same seed gives the same noisy images; noise is drawn
independently for every pixel and channel.
"""

from __future__ import annotations

import math

import tensorflow as tf


def agn(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    """Multiplicative Gaussian noise: x * (1 + xi), xi ~ Normal(0, severity)."""
    xi = tf.random.stateless_normal(tf.shape(images), seed, stddev=severity, dtype=images.dtype)
    return images * (1.0 + xi)


_INVERSION_MAX_RATE = 100.0


def _poisson_cdf(rate: float) -> list[float]:
    """P(k <= j) for j = 0 .. rate + 12 sqrt(rate) + 12 (the rest of the tail is below 1e-12)."""
    terms = int(math.ceil(rate + 12 * math.sqrt(rate) + 12))
    cdf, p, total = [], math.exp(-rate), 0.0
    for j in range(terms):
        total += p
        cdf.append(min(total, 1.0))
        p *= rate / (j + 1)
    return cdf


def _centered_poisson(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    # k ~ Poisson(sigma) shifted to zero mean: variance sigma, as in the digest's reading.
    if isinstance(severity, (int, float)) and severity <= _INVERSION_MAX_RATE:
        # Inversion: k = #{j : U > P(k <= j)}, one uniform and a binary search per value;
        # about twice as fast as tf.random.stateless_poisson for the rates used here.
        cdf = tf.constant(_poisson_cdf(float(severity)), tf.float64)
        u = tf.random.stateless_uniform(tf.reshape(tf.size(images), [1]), seed, dtype=tf.float64)
        k = tf.reshape(tf.searchsorted(cdf, u, side="right"), tf.shape(images))
    else:
        k = tf.random.stateless_poisson(tf.shape(images), seed, lam=severity, dtype=images.dtype)
    return tf.cast(k, images.dtype) - tf.cast(severity, images.dtype)


def apn_additive(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    """Additive zero-mean Poisson noise: x + (k - sigma), k ~ Poisson(sigma).

    On [0, 1] images this is the paper's x + 255 xi on [0, 255] images.
    """
    return images + _centered_poisson(images, severity, seed)


def apn_multiplicative(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    """Multiplicative zero-mean Poisson noise: x * (1 + k - sigma), k ~ Poisson(sigma)."""
    return images * (1.0 + _centered_poisson(images, severity, seed))


def mbn(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    """Multiplicative Bernoulli noise: each value (pixel and channel) is set to 0 with probability severity.

    On RGB images a pixel loses all three channels with probability severity^3
    (13 % at 0.5); `mbn_pixel` drops whole pixels.
    """
    keep = tf.random.stateless_uniform(tf.shape(images), seed, dtype=images.dtype) >= severity
    return images * tf.cast(keep, images.dtype)


def mbn_pixel(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    """Multiplicative Bernoulli noise per pixel: each pixel (all its channels) is set to 0 with probability severity.

    The LocalNorm paper "removes random pixels", and its code shares one mask
    over the channels; this is that reading (`mbn` drops channel values apart).
    """
    shape = tf.concat([tf.shape(images)[:-1], [1]], 0)
    keep = tf.random.stateless_uniform(shape, seed, dtype=images.dtype) >= severity
    return images * tf.cast(keep, images.dtype)


def gaussian(images: tf.Tensor, severity: float, seed: tf.Tensor) -> tf.Tensor:
    """Additive Gaussian noise: x + xi, xi ~ Normal(0, severity) (ImageNet-C gaussian_noise)."""
    return images + tf.random.stateless_normal(tf.shape(images), seed, stddev=severity, dtype=images.dtype)
