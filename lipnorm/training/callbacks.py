"""Callbacks: stop on a non-finite loss, LocalNorm group spread, noisy-accuracy probe."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from lipnorm.errors import LipnormError
from lipnorm.noise.registry import NoiseCell, apply as apply_noise


class NonFiniteLoss(LipnormError):
    pass


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises NonFiniteLoss at the first NaN/inf loss.

    Raising (rather than setting stop_training) skips on_epoch_end, so
    BackupAndRestore keeps the last good epoch's checkpoint.
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(
                f"the training loss became {float(loss)} at epoch {self.epoch + 1}, step {batch + 1}; "
                "training stopped and the checkpoint of the last finished epoch is kept. "
                "Lower --learning_rate (or add --lip_lambda guards) and run the same command to resume."
            )


class GroupSpread(keras.callbacks.Callback):
    """Writes LocalNorm's per-group gamma/beta statistics (Yin et al., Figure 6).

    For each LocalNorm layer: the mean and variance over groups of the
    channel-averaged gamma and beta, and histograms of every group's values.
    """

    def __init__(self, log_dir: str, layers: Sequence[keras.layers.Layer]):
        super().__init__()
        self.layers = list(layers)
        self.writer = tf.summary.create_file_writer(log_dir)

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default(step=epoch):
            for layer in self.layers:
                for name in ("gamma", "beta"):
                    weight = getattr(layer, name, None)
                    if weight is None:
                        continue
                    per_group = np.asarray(weight).mean(axis=1)
                    tf.summary.scalar(f"localnorm/{layer.name}/{name}_group_mean", per_group.mean())
                    tf.summary.scalar(f"localnorm/{layer.name}/{name}_group_var", per_group.var())
                    for k in range(per_group.shape[0]):
                        tf.summary.histogram(f"localnorm/{layer.name}/{name}_group{k}", np.asarray(weight)[k])
        self.writer.flush()


class NoisyAccuracyProbe(keras.callbacks.Callback):
    """Every epoch: accuracy on a fixed validation subset under a few noise levels.

    Writes `noisy_accuracy/<noise>_<severity>` scalars to TensorBoard and adds
    them to the epoch logs. The noisy subset is drawn once (fixed seed), so
    the curves show the model changing, not the noise.
    """

    def __init__(
        self,
        log_dir: str,
        images: np.ndarray,
        labels: np.ndarray,
        cells: Sequence[NoiseCell],
        batch_size: int,
        clip: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.batch_size = batch_size
        self.labels = np.asarray(labels)
        self.sets = {}
        for cell in cells:
            noisy = apply_noise(tf.constant(images, tf.float32), cell, tf.constant([seed, cell.seed_offset], tf.int64), clip)
            self.sets[f"{cell.noise}_{cell.severity:g}"] = noisy.numpy()
        self._predict: Optional[tf.types.experimental.GenericFunction] = None

    def on_epoch_end(self, epoch, logs=None):
        from lipnorm.evaluation.modes import make_predict_fn

        if self._predict is None:
            self._predict = make_predict_fn(self.model, "batch", self.batch_size)
        results = {}
        for tag, images in self.sets.items():
            correct = 0
            for start in range(0, len(images), self.batch_size):
                probs = self._predict(images[start: start + self.batch_size], tf.constant([0, start], tf.int64))
                correct += int(np.sum(np.argmax(probs, -1) == self.labels[start: start + self.batch_size]))
            results[f"noisy_accuracy/{tag}"] = correct / len(images)
        with self.writer.as_default(step=epoch):
            for name, value in results.items():
                tf.summary.scalar(name, value)
        self.writer.flush()
        if logs is not None:
            logs.update(results)
