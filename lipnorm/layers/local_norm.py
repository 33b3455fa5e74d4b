"""LocalNorm: batch normalization over K groups of the batch, each with its own affine."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lipnorm")
class LocalNorm(keras.layers.Layer):
    """Normalizes each of `groups` blocks of consecutive examples on its own.

    A batch of B examples is viewed as K = `groups` blocks of m = B / K
    consecutive examples. For group k and channel c the statistics are taken
    over the m examples and every non-channel axis (H, W for conv features,
    nothing else for dense features):

        y = gamma[k, c] * (x - mu[k, c]) / sqrt(var[k, c] + epsilon) + beta[k, c]

    Unlike BatchNormalization there are no moving averages: the statistics
    always come from the current inputs, in training and in inference alike,
    so that a test batch is normalized by its own (possibly corrupted)
    statistics. Variances are the biased (population) estimate, as in
    BatchNormalization's training branch.

    Args:
        groups: number of groups K (>= 1). The batch size must be a multiple
            of K; the layer raises an error naming both numbers otherwise.
        axis: the channel axis. Default -1 (channels last).
        epsilon: small float added to the variance. Default 1e-3.
        center: add the per-group offset `beta`. Default True.
        scale: multiply by the per-group `gamma`. Default True.
        beta_initializer, gamma_initializer, beta_regularizer,
        gamma_regularizer, beta_constraint, gamma_constraint: as in
            `keras.layers.BatchNormalization`.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a tensor of rank >= 2 whose batch size is a multiple of
            `groups`.
        training: accepted for API compatibility; the layer behaves the same
            in training and inference.
        mask: accepted so LocalNorm can stand where BatchNormalization stood;
            masked positions are not excluded from the statistics.

    Weights:
        gamma, beta: shape `(groups, channels)`.

    Reference:
        Yin et al., "LocalNorm: Robust Image Classification through
        Dynamically Regularized Normalization", ICANN 2021
        (arXiv:1902.06550).
    """

    def __init__(
        self,
        groups: int = 1,
        axis: int = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
            raise ValueError(
                f"LocalNorm needs an integer groups >= 1. Received: groups={groups!r}"
            )
        if epsilon <= 0:
            raise ValueError(f"LocalNorm needs epsilon > 0. Received: epsilon={epsilon}")
        self.groups = groups
        self.axis = int(axis)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_constraint = keras.constraints.get(beta_constraint)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2:
            raise ValueError(
                f"LocalNorm needs inputs of rank >= 2 (batch, ..., channels). "
                f"Received: input_shape={input_shape}"
            )
        axis = self.axis % rank
        if axis == 0:
            raise ValueError("LocalNorm cannot normalize over the batch axis (axis=0).")
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(
                f"LocalNorm needs a known channel dimension on axis {self.axis}. "
                f"Received: input_shape={input_shape}"
            )
        self._channel_axis = axis
        shape = (self.groups, channels)
        self.gamma = None
        self.beta = None
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=True,
                autocast=False,
            )
        self.input_spec = keras.InputSpec(ndim=rank, axes={axis: channels})

    @property
    def sees_spatial_features(self) -> bool:
        """False for dense (batch, channels) features: one image then has zero variance."""
        return self.input_spec is None or self.input_spec.ndim > 2

    def call(self, inputs, training=None, mask=None):  # mask: accepted as BN does, not used
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, compute_dtype)
        rank = len(x.shape)
        if self._channel_axis != rank - 1:
            x = ops.moveaxis(x, self._channel_axis, -1)
        moved_shape = ops.shape(x)
        channels = x.shape[-1]
        x = _check_divisible(x, moved_shape[0], self.groups)
        # (B, ..., C) -> (K, m * P, C): statistics over a group's m examples and P positions.
        grouped = ops.reshape(x, (self.groups, -1, channels))
        mean, variance = ops.moments(grouped, axes=[1], keepdims=True)
        # y = x * a + b with per-(group, channel) a, b: two passes over x instead of three.
        a = ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            a = a * ops.cast(self.gamma, compute_dtype)[:, None, :]
        b = -mean * a
        if self.beta is not None:
            b = b + ops.cast(self.beta, compute_dtype)[:, None, :]
        y = grouped * a + b
        y = ops.reshape(y, moved_shape)
        if self._channel_axis != rank - 1:
            y = ops.moveaxis(y, -1, self._channel_axis)
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        base_config = super().get_config()
        config = {
            "groups": self.groups,
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": keras.initializers.serialize(self.beta_initializer),
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": keras.constraints.serialize(self.beta_constraint),
            "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
        }
        return {**base_config, **config}


def _check_divisible(x, batch, groups: int):
    """Returns x, after a check (at trace time if the batch is static, else at run time)."""
    if groups == 1:
        return x
    if isinstance(batch, int):
        if batch % groups:
            raise ValueError(_divisibility_message(batch, groups))
        return x
    import tensorflow as tf  # dynamic batch: only a runtime check can see it

    check = tf.debugging.assert_equal(
        tf.math.floormod(batch, groups),
        tf.cast(0, batch.dtype),
        message=_divisibility_message("this batch", groups),
    )
    with tf.control_dependencies([check]):
        return tf.identity(x)


def _divisibility_message(batch, groups: int) -> str:
    return (
        f"LocalNorm with groups={groups} got a batch of size {batch}, which does not "
        f"split into {groups} equal groups. Use a batch size that is a multiple of "
        f"{groups}, or lipnorm.evaluation.predict(), which pads the last batch."
    )
