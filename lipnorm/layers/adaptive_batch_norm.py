"""AdaptiveBN: BatchNormalization whose inference statistics blend in the test batch's."""

from __future__ import annotations

import math
from typing import Optional, Protocol

import keras
import tensorflow as tf
from keras import ops

from lipnorm.layers.local_norm import positions


class StatisticsSink(Protocol):
    """What `AdaptiveBN.collect_statistics` accepts: a receiver of batch moments.

    `update` is called while the layer's call is traced, with float32 tensors:
    the per-channel mean and biased variance of the layer's inputs over the
    batch (every axis but the channels) and the number of values per channel
    they were taken over.
    """

    def update(self, mean, variance, count) -> None: ...


@keras.saving.register_keras_serializable(package="lipnorm")
class AdaptiveBN(keras.layers.BatchNormalization):
    """BatchNormalization with test-time adaptation of its statistics.

    Training is exactly `keras.layers.BatchNormalization` (same weights:
    gamma, beta, moving_mean, moving_variance). In inference, for a set of
    n samples with statistics mu_t, var_t over (samples, H, W):

        mu  = N / (N + n) * moving_mean     + n / (N + n) * mu_t
        var = N / (N + n) * moving_variance + n / (N + n) * var_t

    where N = `prior` is the pseudo sample size of the source statistics.
    `prior=None` (or infinity) is plain BatchNormalization; `prior=0` uses the
    target statistics alone. n counts samples (images), not pixels. var_t is
    the biased (population) variance, as in BatchNormalization's training
    branch; with n = 1 and dense features var_t is 0.

    A set is the whole batch (`set_size=None`), or each block of `set_size`
    consecutive samples (the batch must then be a multiple of it): set_size=1
    is ad hoc adaptation (every image on its own), set_size=8 partial
    adaptation with sets of 8. Set-wise statistics come from one reshape and
    one reduction, so sets of any size cost one pass over the batch.

    The batch moments are `keras.ops.moments` (exact in float32 far from
    zero) and the normalization y = x * a + b per set, all in `keras.ops`, so
    the gradient through mu_t and var_t (attacks and TENT on adapted models)
    is autodiff's. One case runs on TF's training-mode fused batch-norm kernel
    instead, whose registered gradient is also the full one: prior 0 on the
    whole batch, unmasked float32 NHWC or dense features (TENT's default).
    With TF's oneDNN kernels on (lipnorm's application turns them on) it made
    a TENT step 1.2x faster on top of oneDNN's own gain
    (benchmarks/bench_tent.py); without them it is no faster. Measured and
    left out as no faster: one-pass shifted sums.

    Args:
        prior: N >= 0, or None for no adaptation. Default None.
        set_size: samples per adaptation set (>= 1), or None for the whole
            batch. Default None.
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

    def __init__(self, prior: Optional[float] = None, set_size: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        if prior is not None:
            prior = float(prior)
            if math.isnan(prior) or prior < 0:
                raise ValueError(f"AdaptiveBN needs prior >= 0 or None. Received: prior={prior}")
            if math.isinf(prior):
                prior = None
        if set_size is not None and (isinstance(set_size, bool) or int(set_size) != set_size or set_size < 1):
            raise ValueError(f"AdaptiveBN needs an integer set_size >= 1 or None. Received: set_size={set_size!r}")
        self.prior = prior
        self.set_size = None if set_size is None else int(set_size)
        self._sink: Optional[StatisticsSink] = None

    def collect_statistics(self, sink: Optional[StatisticsSink]) -> None:
        """Sends the batch moments of every later-traced inference call to `sink` (None stops).

        The moments are those of the whole batch, also when the layer adapts
        per set. `lipnorm.adaptation.collecting` is the context manager that
        attaches sinks to every AdaptiveBN layer of a model; the sink is never
        saved with the model.
        """
        self._sink = sink

    def call(self, inputs, training=None, mask=None):
        adapting = self.prior is not None or self._sink is not None
        if (training and self.trainable) or not adapting:
            return super().call(inputs, training=training, mask=mask)
        dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, dtype)
        channels_last = self.axis in (-1, len(x.shape) - 1)
        if not channels_last:
            x = ops.moveaxis(x, self.axis, -1)
        outputs = self._adapt(x, mask, dtype)
        if not channels_last:
            outputs = ops.moveaxis(outputs, -1, self.axis)
        return ops.cast(outputs, self.compute_dtype)

    def _adapt(self, x, mask, dtype):
        """Adaptation per set (the whole batch is one set): y = x * a + b with a, b from the blend."""
        if self.prior == 0 and not self.set_size and mask is None and _fusable(x, self.epsilon):
            y, mean_t, var_t = _fused_batch_normalize(x, self._gamma(x), self._beta(x), self.epsilon)
            if self._sink is not None:
                self._sink.update(mean_t, var_t, ops.cast(ops.size(x) // x.shape[-1], dtype))
            return y
        shape = ops.shape(x)
        channels = x.shape[-1]
        size = self.set_size or shape[0]
        sets = (ops.reshape(x, (-1, size * positions(x, "AdaptiveBN with set_size"), channels)) if self.set_size
                else ops.reshape(x, (1, -1, channels)))
        if mask is None:
            mean_t, var_t = ops.moments(sets, axes=[1], keepdims=True)
        else:
            weights = ops.reshape(ops.cast(mask, dtype), (ops.shape(sets)[0], -1, 1))
            mean_t, var_t = _weighted_moments(sets, weights)
        if self._sink is not None:  # whole-batch moments from equal-sized sets
            mean_b = ops.mean(mean_t, axis=(0, 1))
            var_b = ops.mean(var_t, axis=(0, 1)) + ops.var(mean_t, axis=(0, 1))
            self._sink.update(mean_b, var_b, ops.cast(ops.size(x) // channels, dtype))
        if self.prior is None:
            mean, variance = ops.cast(self.moving_mean, dtype), ops.cast(self.moving_variance, dtype)
        else:
            w_source = self._source_weight(size, dtype)
            mean = w_source * ops.cast(self.moving_mean, dtype) + (1.0 - w_source) * mean_t
            variance = w_source * ops.cast(self.moving_variance, dtype) + (1.0 - w_source) * var_t
        a = ops.rsqrt(variance + self.epsilon) * self._gamma(x)
        b = self._beta(x) - mean * a
        return ops.reshape(sets * a + b, shape)

    def _source_weight(self, n, dtype):
        """N / (N + n) as a Python float when n is known while tracing, else as a tensor."""
        if self.prior == 0:
            return 0.0
        if isinstance(n, int):
            return self.prior / (self.prior + n)
        return self.prior / (self.prior + ops.cast(n, dtype))

    def _gamma(self, x):
        return ops.cast(self.gamma, x.dtype) if self.scale else ops.ones((x.shape[-1],), x.dtype)

    def _beta(self, x):
        return ops.cast(self.beta, x.dtype) if self.center else ops.zeros((x.shape[-1],), x.dtype)

    def get_config(self):
        return {**super().get_config(), "prior": self.prior, "set_size": self.set_size}


# TF's fused kernel raises a smaller epsilon to this (cuDNN's minimum); such layers keep the ops path.
_FUSED_MIN_EPSILON = 1.001e-5


def _fusable(x, epsilon: float) -> bool:
    return (keras.backend.backend() == "tensorflow" and x.dtype == "float32" and len(x.shape) in (2, 4)
            and epsilon >= _FUSED_MIN_EPSILON)


def _fused_batch_normalize(x, gamma, beta, epsilon: float):
    """(gamma (x - mu_t) / sqrt(var_t + epsilon) + beta, mu_t, var_t) by TF's training-mode fused kernel.

    Its registered gradient is the complete one (through mu_t and var_t), so TENT and
    input gradients of adapted models stay exact. var_t is the biased variance.
    """
    maps = x if len(x.shape) == 4 else tf.reshape(x, [-1, 1, 1, x.shape[-1]])
    y, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(maps, gamma, beta, epsilon=epsilon, is_training=True)
    count = tf.cast(tf.size(x) // x.shape[-1], tf.float32)
    variance = unbiased * (tf.maximum(count - 1.0, 0.0) / count)  # the kernel reports the Bessel-corrected one
    return tf.reshape(y, tf.shape(x)), mean, variance


def _weighted_moments(x, weights):
    total = ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1.0)
    mean = ops.sum(x * weights, axis=1, keepdims=True) / total
    variance = ops.sum(ops.square(x - mean) * weights, axis=1, keepdims=True) / total
    return mean, variance
