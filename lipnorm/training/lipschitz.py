"""Lipschitz-regularized training (Usama & Chang, arXiv:1811.09008)."""

from __future__ import annotations

import keras
import tensorflow as tf

from lipnorm.errors import LipnormError

PENALTIES = ("hinge", "squared_hinge")
SLOPE_ON = ("logits", "probabilities")
_DEFAULTS = {
    "lip_lambda": 0.0, "lip_k": 1.0, "lip_sigma": 0.1,
    "lip_penalty": "hinge", "lip_on": "logits", "seed": 0,
}


def check_lipschitz_args(lip_lambda: float, lip_k: float, lip_sigma: float, penalty: str, on: str) -> None:
    for name, value in (("lip_lambda", lip_lambda), ("lip_k", lip_k), ("lip_sigma", lip_sigma)):
        if not value >= 0:
            raise LipnormError(f"--{name} must be >= 0, got {value}")
    if lip_lambda > 0 and lip_sigma == 0:
        raise LipnormError(
            "--lip_sigma=0 with --lip_lambda > 0 divides by a zero perturbation; "
            "set --lip_sigma > 0 (e.g. 0.1) or --lip_lambda=0"
        )
    if penalty not in PENALTIES:
        raise LipnormError(f"unknown --lip_penalty {penalty!r}; choose from {', '.join(PENALTIES)}")
    if on not in SLOPE_ON:
        raise LipnormError(f"unknown --lip_on {on!r}; choose from {', '.join(SLOPE_ON)}")


def slope_penalty(clean, perturbed, eps, lip_k: float, penalty: str):
    """Per-example slope ||f(x+eps) - f(x)|| / ||eps|| and the penalty on (slope - K)."""
    batch = tf.shape(eps)[0]
    out_diff = tf.reshape(tf.cast(perturbed - clean, tf.float32), [batch, -1])
    in_norm = tf.norm(tf.reshape(tf.cast(eps, tf.float32), [batch, -1]), axis=1)
    slope = tf.norm(out_diff, axis=1) / in_norm
    excess = tf.nn.relu(slope - lip_k)
    return slope, excess if penalty == "hinge" else tf.square(excess)


@keras.saving.register_keras_serializable(package="lipnorm")
class LipschitzModel(keras.Model):
    """A functional model trained with a finite-difference Lipschitz penalty.

    Each training step draws eps ~ Normal(0, lip_sigma^2) with the input's
    shape and runs two forward passes, f(x) and f(x + eps), each with the
    statistics of its own batch (BatchNorm/LocalNorm never mix clean and
    perturbed examples). Per example, slope = ||f(x+eps) - f(x)||_2 / ||eps||_2
    and

        loss = task loss + lip_lambda * mean(penalty(slope - lip_k)),

    penalty(t) = max(0, t) ("hinge") or max(0, t)^2 ("squared_hinge").
    Gradients flow through both passes. BatchNorm moving statistics are
    updated from the clean pass only (the perturbed pass's updates are rolled
    back), so evaluation statistics describe clean data as in plain training.
    With lip_lambda=0 the second pass is skipped and the step is a plain
    Keras step. A batch whose loss or gradients are not finite is skipped
    (no weight update) and counted in `skipped_batches`.

    Args:
        inputs, outputs, name: as for a functional `keras.Model`.
        lip_lambda: weight lambda >= 0 of the penalty.
        lip_k: target Lipschitz constant K >= 0.
        lip_sigma: standard deviation of the perturbation (> 0 when lambda > 0).
        lip_penalty: "hinge" or "squared_hinge".
        lip_on: measure f on "logits" (the model's outputs) or on
            "probabilities" (their softmax).
        seed: seed of the perturbation noise.

    Reference:
        Usama & Chang, "Towards Robust Neural Networks with Lipschitz
        Continuity", IWDW 2018 (arXiv:1811.09008).
    """

    # The constructor keeps Functional's signature (inputs, outputs, name,
    # **kwargs) so that keras treats this class as functional: get_config,
    # clone_model and from_config then keep the layer graph.
    def __init__(self, inputs, outputs, name=None, **kwargs):
        lip = {key: kwargs.pop(key, default) for key, default in _DEFAULTS.items()}
        check_lipschitz_args(lip["lip_lambda"], lip["lip_k"], lip["lip_sigma"], lip["lip_penalty"], lip["lip_on"])
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.lip_lambda = float(lip["lip_lambda"])
        self.lip_k = float(lip["lip_k"])
        self.lip_sigma = float(lip["lip_sigma"])
        self.lip_penalty = lip["lip_penalty"]
        self.lip_on = lip["lip_on"]
        self.seed = int(lip["seed"])
        self.noise_seed = keras.random.SeedGenerator(self.seed)
        self.lip_loss_tracker = keras.metrics.Mean(name="lip_loss")
        self.lip_slope_tracker = keras.metrics.Mean(name="lip_slope")
        self.skipped_batches = keras.Variable(0, dtype="int64", trainable=False, name="skipped_batches")

    @property
    def metrics(self):
        return [*super().metrics, self.lip_loss_tracker, self.lip_slope_tracker]

    def _f(self, y):
        return tf.nn.softmax(tf.cast(y, tf.float32), -1) if self.lip_on == "probabilities" else y

    def _moving_statistics(self) -> list:
        return [
            v for layer in self._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in layer.non_trainable_variables
        ]

    def _penalty(self, x, y_pred):
        eps = keras.random.normal(tf.shape(x), stddev=self.lip_sigma, seed=self.noise_seed, dtype=x.dtype)
        moving = self._moving_statistics()
        saved = [tf.identity(v.value) for v in moving]
        perturbed = self(x + eps, training=True)
        with tf.control_dependencies([perturbed]):
            restores = [v.assign(s) for v, s in zip(moving, saved)]
        with tf.control_dependencies(restores):
            slope, pen = slope_penalty(self._f(y_pred), self._f(perturbed), eps, self.lip_k, self.lip_penalty)
        return self.lip_lambda * tf.reduce_mean(pen), slope

    def train_step(self, data):
        if self.lip_lambda == 0:
            return super().train_step(data)
        from keras.src.losses.loss import scale_loss_for_distribution, unscale_loss_for_distribution

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        moving = self._moving_statistics()
        before = [tf.identity(v.value) for v in moving]
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            task_loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            lip_loss, slope = self._penalty(x, y_pred)
            loss = task_loss + scale_loss_for_distribution(tf.cast(lip_loss, task_loss.dtype))
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.trainable_variables)
        checks = [tf.math.is_finite(tf.cast(loss, tf.float32))]
        if not isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            # Under mixed precision, overflowing scaled gradients are the loss-scale
            # optimizer's business: it skips the step and lowers the scale itself.
            checks += [tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None]
        finite = tf.reduce_all(checks)

        finite = self._update_if(finite, grads, moving, before)
        # A skipped batch contributes nothing to the logged averages.
        weight = tf.cast(finite, tf.float32) * tf.cast(tf.shape(x)[0], tf.float32)
        self._loss_tracker.update_state(
            tf.where(finite, unscale_loss_for_distribution(loss), tf.zeros_like(loss)), sample_weight=weight
        )
        self.lip_loss_tracker.update_state(tf.where(finite, lip_loss, 0.0), sample_weight=weight)
        self.lip_slope_tracker.update_state(
            tf.where(finite, tf.reduce_mean(slope), 0.0), sample_weight=weight
        )
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _update_if(self, finite, grads, moving, before):
        """Applies `grads` if every replica's batch was finite; else restores BN statistics and counts a skip.

        Returns the (all-replica) finite flag. Under a tf.distribute strategy the
        optimizer synchronizes replicas (merge_call), which a tf.cond in a replica
        context cannot contain, so the condition is taken in the cross-replica
        context, as keras' LossScaleOptimizer does.
        """

        def apply(grads):
            self.optimizer.apply(grads, self.trainable_variables)
            return tf.constant(True)

        def skip(values):  # no weight update, and BN statistics as they were before the batch
            for v, value in zip(moving, values):
                v.assign(value)
            self.skipped_batches.assign_add(1)
            return tf.constant(False)

        context = tf.distribute.get_replica_context()
        if not tf.distribute.has_strategy() or context is None or context.num_replicas_in_sync == 1:
            tf.cond(finite, lambda: apply(grads), lambda: skip(before))
            return finite
        failed = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(finite), tf.int32))
        finite = tf.equal(failed, 0)

        def cross_replica(strategy, finite, grads, before):
            def apply_all():
                strategy.extended.call_for_each_replica(apply, args=(grads,))
                return tf.constant(True)

            first = strategy.experimental_local_results  # every replica holds the same values
            return tf.cond(first(finite)[0], apply_all, lambda: skip([first(v)[0] for v in before]))

        context.merge_call(cross_replica, args=(finite, grads, before))
        return finite

    def test_step(self, data):
        logs = super().test_step(data)
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if self.lip_lambda > 0:
            y_pred = self(x, training=False)
            eps = keras.random.normal(tf.shape(x), stddev=self.lip_sigma, seed=self.noise_seed, dtype=x.dtype)
            slope, pen = slope_penalty(self._f(y_pred), self._f(self(x + eps, training=False)), eps,
                                       self.lip_k, self.lip_penalty)
            self.lip_loss_tracker.update_state(self.lip_lambda * tf.reduce_mean(pen))
            self.lip_slope_tracker.update_state(tf.reduce_mean(slope))
        return {**logs, "lip_loss": self.lip_loss_tracker.result(), "lip_slope": self.lip_slope_tracker.result()}

    def get_config(self):
        return {**super().get_config(), **{key: getattr(self, key) for key in _DEFAULTS}}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from keras.src.models.functional import functional_from_config

        config = dict(config)
        lip = {key: config.pop(key) for key in _DEFAULTS if key in config}
        plain = functional_from_config(keras.Model, config, custom_objects=custom_objects)
        return cls(plain.inputs, plain.outputs, name=plain.name, **lip)

    @classmethod
    def wrap(cls, model: keras.Model, **lip) -> "LipschitzModel":
        """A LipschitzModel sharing `model`'s layers and weights."""
        return cls(model.inputs, model.outputs, name=model.name, **lip)
