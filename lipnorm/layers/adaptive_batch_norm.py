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
    backend, dense and channels-last conv features take a one-pass kernel
    for mu_t and var_t (`lipnorm.layers.channel_moments`, built on first
    use; TF's fused training-mode kernel where it cannot run) and TF's fused
    inference kernel (fused with a following ReLU by Grappler) to normalize
    with the blended statistics; inside tf.vectorized_map (ad hoc and
    partial adaptation, one set per iteration) the normalization is
    elementwise, which pfor vectorizes. Same numbers as the formula either
    way, checked against numpy in the tests, and gradients with respect to
    the inputs include the path through mu_t and var_t.

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
        fused = self._fused_kernel_applies(x, mask)
        # pfor (tf.vectorized_map) can take neither the one-pass kernel nor per-set fused normalization
        vectorized = fused and _inside_vectorized_map()
        batch_mean, batch_var = self._fused_moments(x, one_pass=not vectorized) if fused else self._moments(x, mask)
        if self.stats_sink is not None:
            self.stats_sink.update(self, x, batch_mean, batch_var)
        if self.prior is None:
            return super().call(inputs, training=False, mask=mask)
        mean, variance = self._blend(x, batch_mean, batch_var, compute_dtype)
        if fused and not vectorized:
            outputs = self._fused_normalize(x, mean, variance)
        else:
            outputs = ops.batch_normalization(
                x=x, mean=mean, variance=variance, axis=self.axis,
                offset=ops.cast(self.beta, compute_dtype) if self.center else None,
                scale=ops.cast(self.gamma, compute_dtype) if self.scale else None,
                epsilon=self.epsilon,
            )
        return ops.cast(outputs, self.compute_dtype)

    def _blend(self, x, batch_mean, batch_var, dtype):
        """N/(N+n) source + n/(N+n) batch, for the mean and the variance."""
        n = x.shape[0]
        if self.prior == 0:
            return batch_mean, batch_var
        if n is None:  # weights as tensors only when the batch size is not known when tracing
            w_source = self.prior / (self.prior + ops.cast(ops.shape(x)[0], dtype))
        else:
            w_source = self.prior / (self.prior + n)
        w_target = 1.0 - w_source
        mean = w_source * ops.cast(self.moving_mean, dtype) + w_target * batch_mean
        variance = w_source * ops.cast(self.moving_variance, dtype) + w_target * batch_var
        return mean, variance

    def _fused_kernel_applies(self, x, mask) -> bool:
        """Whether the TensorFlow kernels (moments, fused normalization) can serve these features.

        Channels-last conv features (and dense features, viewed as 1x1 maps)
        in float32 on the TensorFlow backend, without a mask. They take one
        pass for the moments and one to normalize, where keras.ops takes two
        reductions and two elementwise passes.
        """
        rank = len(x.shape)
        return (mask is None and rank in (2, 4) and self.axis in (-1, rank - 1)
                and keras.backend.backend() == "tensorflow" and x.dtype == "float32")

    def _fused_moments(self, x, one_pass: bool):
        """Batch mean and biased variance: one-pass kernel where it can run, else TF's fused kernel."""
        from lipnorm.layers.channel_moments import batch_moments

        return batch_moments(x, one_pass=one_pass)

    def _fused_normalize(self, x, mean, variance):
        """gamma (x - mean) / sqrt(variance + epsilon) + beta by the fused kernel in inference mode."""
        import tensorflow as tf

        from lipnorm.layers.channel_moments import as_maps

        channels = x.shape[-1]
        kernel_epsilon = _fused_epsilon(self.epsilon)
        if kernel_epsilon != self.epsilon:  # the kernel raises epsilon to cuDNN's minimum: keep var + eps exact
            variance = variance + (self.epsilon - kernel_epsilon)
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
        y = _normalize_by_fused_kernel(as_maps(x), mean, variance, gamma, beta, kernel_epsilon)
        return y if len(x.shape) == 4 else tf.reshape(y, tf.shape(x))

    def get_config(self):
        return {**super().get_config(), "prior": self.prior}


def _fused_epsilon(epsilon: float) -> float:
    """The epsilon TensorFlow's fused kernel uses (it raises smaller values to cuDNN's minimum)."""
    return max(epsilon, 1.001e-5)


def _normalize_by_fused_kernel(x, mean, variance, gamma, beta, epsilon: float):
    """TF's fused inference kernel on NHWC `x`, with the gradient for mean and variance it leaves out.

    In inference mode the kernel's gradient treats mean and variance as constants; here they
    depend on the batch, so attacks and input gradients need d/d(mean) and d/d(variance) too.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def normalize(x, mean, variance, gamma, beta):
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, mean=mean, variance=variance, epsilon=epsilon, is_training=False
        )

        def grad(dy):
            inv = tf.math.rsqrt(variance + epsilon)
            d_beta = tf.reduce_sum(dy, [0, 1, 2])
            d_gamma = tf.reduce_sum(dy * (x - mean) * inv, [0, 1, 2])
            return (dy * (gamma * inv), -d_beta * gamma * inv, -0.5 * d_gamma * gamma * inv * inv, d_gamma, d_beta)

        return y, grad

    return normalize(x, mean, variance, gamma, beta)


def _inside_vectorized_map() -> bool:
    """Whether this is traced as the body of tf.vectorized_map (set-wise adaptation).

    pfor vectorizes the fused inference kernel only for loop-invariant
    statistics; with per-set statistics it would silently fall back to a
    while_loop over the sets (2x slower ad hoc adaptation), so there the
    normalization is elementwise; it has no converter for the one-pass
    moments kernel either, so TF's fused kernel computes the moments. pfor traces the body under the name scope
    "loop_body"; a false positive only costs the fused kernel's speed.
    """
    import tensorflow as tf

    return "loop_body" in tf.get_current_name_scope().split("/")
