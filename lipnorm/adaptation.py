"""Test-time adaptation of BatchNorm statistics (Schneider et al. 2020; Benz et al. 2021).

Scenarios, all through `adapt(model, data, scenario=..., prior=N)`:
- "adhoc": every test image is normalized with its own statistics blended
  with the source statistics (n = 1).
- "partial": every set of `batch` test images (default 8) adapts with itself.
- "fixed": statistics are estimated once on the first `samples` images of
  `data` (all of it when samples is None: "full" adaptation), blended with
  the source statistics with n = the number of images used, and stored in the
  model, which is returned with plain BatchNormalization layers.

The estimation is one streaming pass with exact running sums (Chan et al.'s
pairwise merge of count, mean and sum of squared deviations, in float64), so
it equals the statistics of the concatenated set. During that pass each layer
normalizes with its batch's blended statistics (the "partial" rule), so later
layers see inputs normalized the way adaptation will normalize them.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from lipnorm import convert
from lipnorm.errors import LipnormError
from lipnorm.set_inference import map_sets, to_probabilities
from lipnorm.layers.adaptive_batch_norm import AdaptiveBN

SCENARIOS = ("none", "adhoc", "partial", "fixed")

Data = Union[np.ndarray, tf.Tensor, tf.data.Dataset, Iterable]


class _Sink:
    """Exact running per-channel count, mean and M2 of one layer's inputs."""

    def __init__(self, channels: int):
        self.count = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.mean = tf.Variable(tf.zeros([channels], tf.float64), trainable=False)
        self.m2 = tf.Variable(tf.zeros([channels], tf.float64), trainable=False)

    def reset(self) -> None:
        for v in (self.count, self.mean, self.m2):
            v.assign(tf.zeros_like(v))

    def update(self, layer: AdaptiveBN, x: tf.Tensor, mean_b: tf.Tensor, var_b: tf.Tensor) -> None:
        """Merges one batch, given the (biased) moments the layer computed for it."""
        shape = tf.shape(x)
        count = tf.cast(tf.reduce_prod(tf.gather(shape, layer._reduction_axes)), tf.float64)
        mean_b = tf.cast(tf.reshape(mean_b, [-1]), tf.float64)
        m2_b = tf.cast(tf.reshape(var_b, [-1]), tf.float64) * count
        total = self.count + count
        delta = mean_b - self.mean
        self.m2.assign_add(m2_b + tf.square(delta) * self.count * count / total)
        self.mean.assign_add(delta * count / total)
        self.count.assign(total)

    def variance(self) -> np.ndarray:
        return (self.m2 / tf.maximum(self.count, 1.0)).numpy()


def adaptive_layers(model: keras.Model) -> list[AdaptiveBN]:
    return convert.layers_of_type(model, AdaptiveBN)


class StatisticsCollector:
    """Attaches exact statistics sinks to a model's AdaptiveBN layers.

    Any forward pass in inference traced after attaching records each layer's
    input statistics; `images` counts the samples seen.
    """

    def __init__(self, model: keras.Model):
        self.layers = adaptive_layers(model)
        if not self.layers:
            raise LipnormError(f"model {model.name!r} has no AdaptiveBN layers to collect statistics from")
        self.sinks = []
        for layer in self.layers:
            sink = _Sink(int(layer.moving_mean.shape[0]))
            object.__setattr__(layer, "stats_sink", sink)
            self.sinks.append(sink)
        self.images = 0

    def reset(self) -> None:
        for sink in self.sinks:
            sink.reset()
        self.images = 0

    def statistics(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {l.name: (s.mean.numpy(), s.variance()) for l, s in zip(self.layers, self.sinks)}

    def detach(self) -> None:
        for layer in self.layers:
            object.__setattr__(layer, "stats_sink", None)


def as_batches(data: Data, batch_size: int, limit: Optional[int] = None) -> Iterable[tf.Tensor]:
    """Yields float32 image batches from an array, a dataset of images or of (image, label)."""
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if isinstance(spec, tuple):
            data = data.map(lambda *xs: xs[0])
            spec = data.element_spec
        if len(spec.shape) == 3:  # unbatched images
            data = data.batch(batch_size)
        if limit is not None:
            data = data.unbatch().take(limit).batch(batch_size)
        seen = False
        for batch in data:
            seen = True
            yield tf.cast(batch, tf.float32)
        if not seen:
            raise LipnormError("the adaptation data set is empty")
        return
    array = np.asarray(data)
    if array.size == 0:
        raise LipnormError("the adaptation data set is empty")
    if not np.issubdtype(array.dtype, np.number):
        raise LipnormError(f"adaptation data must be numeric images, got dtype {array.dtype}")
    if limit is not None:
        array = array[:limit]
    for start in range(0, len(array), batch_size):
        yield tf.convert_to_tensor(array[start: start + batch_size], tf.float32)


def _check_shape(model: keras.Model, batch: tf.Tensor) -> None:
    expected = tuple(model.inputs[0].shape[1:])
    got = tuple(batch.shape[1:])
    if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got)):
        raise LipnormError(
            f"adaptation images have shape {got} but model {model.name!r} takes {expected}"
        )


def check_prior(prior: Optional[float]) -> None:
    if prior is not None and not prior >= 0:
        raise LipnormError(f"the adaptation prior N must be >= 0 (or None for none), got {prior}")


@dataclasses.dataclass
class Adapted:
    """An adapted model and how to predict with it.

    `set_size` is the number of images that adapt together (1: ad hoc,
    `batch`: partial, None: the model's statistics are fixed).
    """

    model: keras.Model
    scenario: str
    set_size: Optional[int]

    def predict_fn(self):
        """tf.function images -> probabilities, adapting per set of `set_size` images."""
        probs = to_probabilities(self.model)
        model = self.model
        if self.set_size is None:
            return tf.function(lambda images: probs(model(images, training=False)))
        size = self.set_size
        return tf.function(lambda images: map_sets(lambda s: probs(model(s, training=False)), images, size))

    def predict(self, images, batch_size: int = 128) -> np.ndarray:
        fn = self.predict_fn()
        return np.concatenate([fn(b).numpy() for b in as_batches(images, batch_size)])


def adapt(
    model: keras.Model,
    data: Optional[Data] = None,
    *,
    scenario: str = "partial",
    prior: Optional[float] = 16.0,
    batch: int = 8,
    samples: Optional[int] = 32,
    batch_size: int = 128,
) -> Adapted:
    """Adapts `model`'s BatchNorm statistics (see the module docstring).

    Args:
        model: any functional/Sequential keras model with BatchNormalization.
        data: target images for "fixed" (array, or dataset of images or
            (image, label)); unused by the other scenarios.
        scenario: one of SCENARIOS.
        prior: N, the pseudo sample size of the source statistics.
        batch: n for "partial".
        samples: images used by "fixed" (None: all of `data`).
        batch_size: batch size of the "fixed" estimation pass.
    """
    if scenario not in SCENARIOS:
        raise LipnormError(f"unknown adaptation {scenario!r}; choose from {', '.join(SCENARIOS)}")
    check_prior(prior)
    convert.require_batchnorm(model)
    if scenario == "none":
        return Adapted(model, scenario, None)
    if scenario == "adhoc":
        if prior == 0:
            _warn_dense_zero_variance(model)
        return Adapted(convert.batchnorm_to_adaptive(model, prior), scenario, 1)
    if scenario == "partial":
        if batch < 1:
            raise LipnormError(f"--adapt_batch must be >= 1, got {batch}")
        return Adapted(convert.batchnorm_to_adaptive(model, prior), scenario, batch)
    if data is None:
        raise LipnormError("the 'fixed' adaptation needs target images to estimate statistics from")
    if samples is not None and samples < 1:
        raise LipnormError(f"--adapt_samples must be >= 1, got {samples}")
    adaptive = convert.batchnorm_to_adaptive(model, prior)
    estimate_and_store(adaptive, data, prior, samples, batch_size)
    return Adapted(convert.adaptive_to_batchnorm(adaptive), scenario, None)


class Estimator:
    """Estimates target statistics of an AdaptiveBN model in one streaming pass.

    The forward pass is traced once and reused by every `run`, so estimating
    on many data sets (one per noise cell) costs one pass each, not a retrace.
    """

    def __init__(self, adaptive: keras.Model):
        self.model = adaptive
        self.collector = StatisticsCollector(adaptive)
        self._forward = tf.function(lambda x: adaptive(x, training=False))

    def run(self, data: Data, samples: Optional[int], batch_size: int) -> int:
        """Collects the exact statistics of `data` (its first `samples` images); returns n."""
        self.collector.reset()
        for images in as_batches(data, batch_size, samples):
            _check_shape(self.model, images)
            self._forward(images)
            self.collector.images += int(images.shape[0])
        return self.collector.images

    def blended(self, prior: Optional[float]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(mean, variance) per AdaptiveBN layer, in model order, blended from source and the last run."""
        n = self.collector.images
        w_source = 1.0 if prior is None else prior / (prior + n)
        out = []
        for layer, sink in zip(self.collector.layers, self.collector.sinks):
            mean = w_source * np.asarray(layer.moving_mean) + (1 - w_source) * sink.mean.numpy()
            var = w_source * np.asarray(layer.moving_variance) + (1 - w_source) * sink.variance()
            out.append((mean.astype(np.float32), var.astype(np.float32)))
        return out

    def store(self, layers: list, prior: Optional[float]) -> None:
        """Writes the blended statistics of the last run into `layers` (BN layers in model order)."""
        for layer, (mean, var) in zip(layers, self.blended(prior)):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(var)

    def detach(self) -> None:
        self.collector.detach()


def estimate_and_store(
    adaptive: keras.Model, data: Data, prior: Optional[float], samples: Optional[int], batch_size: int
) -> int:
    """One streaming pass over `data`; stores the blended statistics as moving statistics.

    Returns the number of images used.
    """
    estimator = Estimator(adaptive)
    try:
        n = estimator.run(data, samples, batch_size)
    finally:
        estimator.detach()
    estimator.store(estimator.collector.layers, prior)
    for layer in estimator.collector.layers:
        layer.prior = None
    return n


def _warn_dense_zero_variance(model: keras.Model) -> None:
    import logging

    dense = [l.name for l in convert.require_batchnorm(model) if l.input_spec is not None and l.input_spec.ndim == 2]
    if dense:
        logging.warning(
            "ad hoc adaptation with prior N=0: BatchNorm layers %s see dense features, whose "
            "variance over one image is 0; their output is beta alone. Use N > 0 (e.g. 16).",
            ", ".join(dense),
        )
