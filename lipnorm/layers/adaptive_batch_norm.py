"""AdaptiveBN: BatchNormalization whose inference statistics blend in the test batch's."""

from __future__ import annotations

import math
from typing import Optional

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lipnorm")
class AdaptiveBN(keras.layers.BatchNormalization):
    """BatchNormalization with test-time adaptation of its statistics.

    Training is exactly `keras.layers.BatchNormalization` (same weights:
    gamma, beta, moving_mean, moving_variance). In inference, for a batch of
    n samples with statistics mu_t, var_t over (batch, H, W):

        mu  = N / (N + n) * moving_mean     + n / (N + n) * mu_t
        var = N / (N + n) * moving_variance + n / (N + n) * var_t

    where N = `prior` is the pseudo sample size of the source statistics.
    `prior=None` (or infinity) is plain BatchNormalization; `prior=0` uses the
    batch statistics alone. n counts samples (images), not pixels. var_t is
    the biased (population) variance, as in BatchNormalization's training
    branch; with n = 1 and dense features var_t is 0. On the TensorFlow
    backend, dense and channels-last conv features get mu_t, var_t and the
    normalized batch from TF's fused batch-norm kernel in one pass (same
    numbers as the formula, checked against numpy in the tests).

    Args:
        prior: N >= 0, or None for no adaptation. Default None.
        **kwargs: every `keras.layers.BatchNormalization` argument.

    Call arguments:
        inputs: the features, channels on `axis`.
        training: True trains as BatchNormalization; otherwise adapts.
        mask: as in BatchNormalization (masked positions leave the statistics).

    Reference:
        Schneider et al., "Improving robustness against common corruptions by
        covariate shift adaptation", NeurIPS 2020 (arXiv:2006.16971);
        Benz et al., "Revisiting batch normalization for improving corruption
        robustness", WACV 2021.
    """

    def __init__(self, prior: Optional[float] = None, **kwargs):
        super().__init__(**kwargs)
        if prior is not None:
            prior = float(prior)
            if math.isnan(prior) or prior < 0:
                raise ValueError(f"AdaptiveBN needs prior >= 0 or None. Received: prior={prior}")
            if math.isinf(prior):
                prior = None
        self.prior = prior
        # Set by lipnorm.adaptation to collect exact statistics; never saved.
        object.__setattr__(self, "stats_sink", None)

    def call(self, inputs, training=None, mask=None):
        if (training and self.trainable) or (self.prior is None and self.stats_sink is None):
            return super().call(inputs, training=training, mask=mask)
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, compute_dtype)
        fused = self._fused_moments(x, mask)
        # One reduction serves both the statistics sink and the blend.
        batch_mean, batch_var = fused[1:] if fused else self._moments(x, mask)
        if self.stats_sink is not None:
            self.stats_sink.update(self, x, batch_mean, batch_var)
        if self.prior is None and not fused:
            return super().call(inputs, training=False, mask=mask)
        n = ops.cast(ops.shape(x)[0], compute_dtype)
        if self.prior is None:
            w_source = ops.ones((), compute_dtype)
        elif self.prior > 0:
            w_source = self.prior / (self.prior + n)
        else:
            w_source = ops.zeros((), compute_dtype)
        w_target = 1.0 - w_source
        mean = w_source * ops.cast(self.moving_mean, compute_dtype) + w_target * batch_mean
        variance = w_source * ops.cast(self.moving_variance, compute_dtype) + w_target * batch_var
        gamma = ops.cast(self.gamma, compute_dtype) if self.scale else 1.0
        beta = ops.cast(self.beta, compute_dtype) if self.center else 0.0
        if fused:
            # z = (x - mu_t) / sqrt(var_t + eps), so y = gamma (x - mu) / sqrt(var + eps) + beta = z a + b.
            z = fused[0]
            inv = ops.rsqrt(variance + self.epsilon) * gamma
            outputs = z * (inv * ops.sqrt(batch_var + _fused_epsilon(self.epsilon))) + (beta + inv * (batch_mean - mean))
        else:
            outputs = ops.batch_normalization(
                x=x, mean=mean, variance=variance, axis=self.axis,
                offset=beta if self.center else None, scale=gamma if self.scale else None,
                epsilon=self.epsilon,
            )
        return ops.cast(outputs, self.compute_dtype)

    def _fused_moments(self, x, mask):
        """(z, mean, biased variance) from TensorFlow's fused batch-norm kernel, or None.

        For channels-last conv features (and dense features, viewed as 1x1
        maps) the fused kernel computes the batch moments and the
        batch-normalized z in one pass (oneDNN on CPU, cuDNN on GPU), which is
        markedly faster than separate reductions; the blend is then one affine
        map of z. Other ranks, axes, masks or backends use keras.ops.
        """
        rank = len(x.shape)
        if (mask is not None or rank not in (2, 4) or self.axis not in (-1, rank - 1)
                or keras.backend.backend() != "tensorflow" or x.dtype != "float32"):
            return None
        import tensorflow as tf

        channels = x.shape[-1]
        x4 = x if rank == 4 else tf.reshape(x, [-1, 1, 1, channels])  # dense features as 1x1 maps
        z, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
            x4, tf.ones([channels]), tf.zeros([channels]), epsilon=_fused_epsilon(self.epsilon), is_training=True
        )
        count = tf.cast(tf.size(x) // channels, tf.float32)
        # The kernel reports the Bessel-corrected variance; adaptation uses the biased one.
        return tf.reshape(z, tf.shape(x)), mean, unbiased * ((count - 1.0) / count)

    def get_config(self):
        return {**super().get_config(), "prior": self.prior}


def _fused_epsilon(epsilon: float) -> float:
    """The epsilon TensorFlow's fused kernel uses (it raises smaller values to cuDNN's minimum)."""
    return max(epsilon, 1.001e-5)
