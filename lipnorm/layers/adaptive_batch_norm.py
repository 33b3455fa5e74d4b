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
    branch; with n = 1 and dense features var_t is 0.

    Args:
        prior: N >= 0, or None for no adaptation. Default None.
        **kwargs: every `keras.layers.BatchNormalization` argument.

    Call arguments:
        inputs: the features, channels on `axis`.
        training: True trains as BatchNormalization; otherwise adapts.

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
        # One reduction serves both the statistics sink and the blend.
        batch_mean, batch_var = self._moments(x, mask)
        if self.stats_sink is not None:
            self.stats_sink.update(self, x, batch_mean, batch_var)
        if self.prior is None:
            return super().call(inputs, training=False, mask=mask)
        n = ops.cast(ops.shape(x)[0], compute_dtype)
        w_source = self.prior / (self.prior + n) if self.prior > 0 else ops.zeros((), compute_dtype)
        w_target = 1.0 - w_source
        mean = w_source * ops.cast(self.moving_mean, compute_dtype) + w_target * batch_mean
        variance = w_source * ops.cast(self.moving_variance, compute_dtype) + w_target * batch_var
        outputs = ops.batch_normalization(
            x=x,
            mean=mean,
            variance=variance,
            axis=self.axis,
            offset=ops.cast(self.beta, compute_dtype) if self.center else None,
            scale=ops.cast(self.gamma, compute_dtype) if self.scale else None,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "prior": self.prior}
