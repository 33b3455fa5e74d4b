"""Per-channel batch moments (mean, biased variance) for AdaptiveBN on TensorFlow, with their gradient.

TF's fused batch-norm kernel in training mode computes them in one kernel, but its gradient
ignores its mean and variance outputs; AdaptiveBN's outputs depend on the batch through them,
so the gradient d/dx is supplied here.
"""

from __future__ import annotations

import tensorflow as tf


def batch_moments(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean and biased variance of float32 `x` over every axis but the last (channels).

    Args:
        x: float32 features, rank 2 or 4, channels last.
    """

    @tf.custom_gradient
    def moments(x):
        mean, variance = _fused_kernel_moments(x)

        def grad(d_mean, d_variance):
            count = tf.cast(tf.size(x) // tf.shape(x)[-1], x.dtype)
            d_mean = tf.zeros_like(mean) if d_mean is None else d_mean
            d_variance = tf.zeros_like(variance) if d_variance is None else d_variance
            # d var / dx = 2 (x - mean) / count: the term through the mean sums to zero.
            return (d_mean + 2.0 * d_variance * (x - mean)) / count

        return (mean, variance), grad

    return moments(x)


def _fused_kernel_moments(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    channels = x.shape[-1]
    maps = x if len(x.shape) == 4 else tf.reshape(x, [-1, 1, 1, channels])
    _, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(maps, tf.ones([channels]), tf.zeros([channels]),
                                                         is_training=True)
    count = tf.cast(tf.size(x) // channels, tf.float32) if None in x.shape else float(x.shape.num_elements() // channels)
    # The kernel reports the Bessel-corrected variance; adaptation uses the biased one.
    return mean, unbiased * ((count - 1.0) / count)
