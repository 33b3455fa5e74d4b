"""Test-time adaptation of BatchNorm statistics (Schneider et al. 2020; Benz et al. 2021).

Scenarios, all through `adapt(model, data, scenario=..., prior=N)`:
- "none": the model as it is.
- "adhoc": every test image is normalized with its own statistics blended
  with the source statistics (n = 1).
- "partial": every set of `batch` consecutive test images (default 8) adapts
  with itself.
- "fixed": statistics are estimated once on the first `samples` images of
  `data` (all of it when samples is None: "full" adaptation), blended with
  the source statistics with n = the number of images used, and stored in the
  model, which is returned with plain BatchNormalization layers. `estimator`
  chooses how (see `lipnorm.adaptation.statistics`): "streaming" (default), the
  reference code's one pass, or "exact", the statistics of the concatenated set
  layer by layer (one pass per BN layer). Both are equal when the images fit one
  estimation batch (the default 32 samples do); on whole test sets they were
  within 3.1 accuracy points of each other (streaming ahead on 5 of 6 MNIST-net
  cells by up to 0.8, exact ahead on ResNet-20 by up to 3.1;
  benchmarks/compare_estimators.sh, README).
The prior N is the pseudo sample size of the source statistics; N = infinity
(or None) is plain BN.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from lipnorm import surgery
from lipnorm.adaptation.statistics import Estimator
from lipnorm.adaptation.streams import Data, image_batches
from lipnorm.errors import ArgumentError, LipnormError
from lipnorm.evaluation.batching import round_up
from lipnorm.evaluation.modes import STANDARD, Predictor, make_predictor
from lipnorm.layers.lookup import batchnorm_layers, require_batchnorm

SCENARIOS = ("none", "adhoc", "partial", "fixed")


def normalize_prior(prior: Optional[float]) -> Optional[float]:
    """N as a float, with infinity as None (plain BN); raises for N < 0 or NaN."""
    if prior is None:
        return None
    prior = float(prior)
    if math.isnan(prior) or prior < 0:
        raise ArgumentError("prior", prior, ">= 0 (or None/inf for no adaptation)")
    return None if math.isinf(prior) else prior


@dataclasses.dataclass
class Adapted:
    """An adapted model: plain BN (none, fixed) or AdaptiveBN adapting per set of `set_size` images."""

    model: keras.Model
    scenario: str
    set_size: Optional[int] = None

    def predictor(self) -> Predictor:
        return make_predictor(self.model, STANDARD)

    def predict(self, images, batch_size: int = 128) -> np.ndarray:
        predictor = self.predictor()
        return np.concatenate([
            predictor.fn(batch, tf.zeros(tf.shape(batch)[:1])).numpy()
            for batch in image_batches(images, round_up(batch_size, predictor.multiple))
        ])


def adapt(
    model: keras.Model,
    data: Optional[Data] = None,
    *,
    scenario: str = "partial",
    prior: Optional[float] = 16.0,
    batch: int = 8,
    samples: Optional[int] = 32,
    batch_size: int = 128,
    estimator: str = "streaming",
) -> Adapted:
    """Adapts `model`'s BatchNorm statistics (see the module docstring).

    Args:
        model: any functional/Sequential keras model with BatchNormalization.
        data: target images for "fixed" (array, or dataset of images or
            (image, label)); unused by the other scenarios.
        scenario: one of SCENARIOS.
        prior: N >= 0, the pseudo sample size of the source statistics
            (None or infinity: no adaptation).
        batch: n of "partial" (>= 1).
        samples: images "fixed" estimates from (None: all of `data`).
        batch_size: images per model call while estimating.
        estimator: "exact" or "streaming", for "fixed".
    """
    if scenario not in SCENARIOS:
        raise ArgumentError("scenario", scenario, f"one of {', '.join(SCENARIOS)}")
    prior = normalize_prior(prior)
    require_batchnorm(model)
    if scenario == "none":
        return Adapted(model, scenario)
    if scenario in ("adhoc", "partial"):
        size = 1 if scenario == "adhoc" else batch
        if isinstance(size, bool) or int(size) != size or size < 1:
            raise ArgumentError("batch", batch, "an integer >= 1")
        if size == 1 and prior == 0:
            _warn_dense_zero_variance(model)
        return Adapted(surgery.batchnorm_to_adaptive(model, prior, set_size=int(size)), scenario, int(size))
    if data is None:
        raise LipnormError("the 'fixed' adaptation needs target images (data=...) to estimate statistics from")
    adaptive = surgery.batchnorm_to_adaptive(model, prior)
    statistics = Estimator(adaptive, prior, estimator).estimate(data, samples, batch_size)
    fixed = surgery.adaptive_to_batchnorm(surgery.batchnorm_to_adaptive(model, None))
    store(fixed, statistics)
    return Adapted(fixed, scenario)


def store(model: keras.Model, statistics: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Writes (mean, variance) per BN layer, in model order, into the layers' moving statistics."""
    for layer, (mean, var) in zip(batchnorm_layers(model), statistics):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(var)


def _warn_dense_zero_variance(model: keras.Model) -> None:
    dense = [l.name for l in batchnorm_layers(model) if l.input_spec is not None and l.input_spec.ndim == 2]
    if dense:
        logging.warning(
            "ad hoc adaptation with prior N=0: BatchNorm layers %s see dense features, whose "
            "variance over one image is 0; their output is beta alone. Use N > 0 (e.g. 16).",
            ", ".join(dense),
        )
