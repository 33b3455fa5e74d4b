"""The robustness sweep: every (noise, severity) x evaluation mode x adaptation.

Noise is applied inside the tf.data pipeline (stateless RNG seeded per cell
and per batch, so a cell's noisy images are the same in every run) and every
test example is evaluated: nothing is dropped for batch divisibility.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from lipnorm import adaptation, convert
from lipnorm.errors import LipnormError
from lipnorm.evaluation import modes as modes_lib
from lipnorm.evaluation.shift import shift_from_collector
from lipnorm.noise.registry import NoiseCell, apply as apply_noise


@dataclasses.dataclass(frozen=True)
class Row:
    """One evaluation result with all its coordinates."""

    noise: str
    severity: float
    mode: str
    adapt: str
    accuracy: float
    shift: float
    examples: int

    COLUMNS = ("noise", "severity", "mode", "adapt", "accuracy", "shift", "examples")


@dataclasses.dataclass(frozen=True)
class AdaptSettings:
    scenarios: tuple[str, ...] = ("none",)
    prior: Optional[float] = 16.0
    batch: int = 8
    samples: Optional[int] = 32


def noisy_batches(
    test: tf.data.Dataset, cell: NoiseCell, batch_size: int, seed: int, clip: bool
) -> tf.data.Dataset:
    """Batches of (noisy images, labels, per-batch seed) for one grid cell."""
    base = tf.constant(seed, tf.int64) * 1_000_003 + cell.seed_offset

    def add_noise(index, batch):
        images, labels = batch
        step_seed = tf.stack([base, index])
        return apply_noise(images, cell, step_seed, clip), labels, step_seed

    return (
        test.batch(batch_size)
        .enumerate()
        .map(add_noise, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def _accuracy(predict, batches: tf.data.Dataset) -> tuple[float, int]:
    correct = total = 0
    for images, labels, seed in batches:
        probs = predict(images, seed)
        correct += int(tf.reduce_sum(tf.cast(tf.argmax(probs, -1, output_type=tf.int32) == labels, tf.int32)))
        total += int(labels.shape[0])
    if total == 0:
        raise LipnormError("the test split is empty: nothing to evaluate")
    return correct / total, total


class _FixedAdaptation:
    """The "fixed" scenario for every cell with one traced estimation and one traced predictor.

    Equivalent to adaptation.adapt(model, cell_images, scenario="fixed") per cell,
    but the models are built once and only their statistics change per cell.
    """

    def __init__(self, model: keras.Model, adapt: AdaptSettings, batch_size: int):
        self.settings = adapt
        self.batch_size = batch_size
        self.estimator = adaptation.Estimator(convert.batchnorm_to_adaptive(model, adapt.prior))
        self.model = convert.adaptive_to_batchnorm(convert.batchnorm_to_adaptive(model, None))
        self.layers = convert.require_batchnorm(self.model)  # same order as the estimator's layers
        self._predict = adaptation.Adapted(self.model, "fixed", None).predict_fn()

    def estimate(self, images: tf.data.Dataset) -> None:
        self.estimator.run(images, self.settings.samples, self.batch_size)
        self.estimator.store(self.layers, self.settings.prior)

    def predict(self, images, seed):
        return self._predict(images)


def evaluate(
    model: keras.Model,
    test: tf.data.Dataset,
    cells: Sequence[NoiseCell],
    batch_size: int,
    eval_modes: Sequence[str] = ("batch",),
    adapt: AdaptSettings = AdaptSettings(),
    vote: str = "mean",
    clip: bool = True,
    seed: int = 0,
    shift: bool = True,
) -> list[Row]:
    """Accuracy of `model` on `test` (unbatched (image, label)) for every combination.

    Models with LocalNorm are evaluated in each of `eval_modes`; other models
    in mode "standard". Models with BatchNorm are evaluated under each
    adaptation scenario, and (with `shift`) get the label-free shift metric
    of every cell (NaN where it does not apply).
    """
    has_local = modes_lib.groups_of(model) is not None
    has_bn = bool(convert._batchnorms(model))
    scenarios = tuple(adapt.scenarios)
    if any(s != "none" for s in scenarios) and not has_bn:
        convert.require_batchnorm(model)
    mode_list = tuple(eval_modes) if has_local else (modes_lib.STANDARD,)
    for mode in mode_list:
        modes_lib.check_mode(mode)
    if has_local and any(s != "none" for s in scenarios):
        raise LipnormError("--adapt applies to BatchNorm models; LocalNorm models use --eval_mode")

    predictors = {}
    collector = None
    fixed = _FixedAdaptation(model, adapt, batch_size) if "fixed" in scenarios else None
    for mode in mode_list:
        for scenario in scenarios:
            if scenario == "none" and has_bn and shift:
                observed = convert.batchnorm_to_adaptive(model, None)
                collector = adaptation.StatisticsCollector(observed)
                predictors[mode, scenario] = modes_lib.make_predict_fn(observed, mode, batch_size, vote)
            elif scenario == "none":
                predictors[mode, scenario] = modes_lib.make_predict_fn(model, mode, batch_size, vote)
            elif scenario in ("adhoc", "partial"):
                adapted = adaptation.adapt(
                    model, scenario=scenario, prior=adapt.prior, batch=adapt.batch
                ).predict_fn()
                predictors[mode, scenario] = lambda images, seed, f=adapted: f(images)
            elif scenario not in adaptation.SCENARIOS:
                adaptation.adapt(model, scenario=scenario)  # raises the unknown-name error

    rows = []
    for cell in cells:
        batches = noisy_batches(test, cell, batch_size, seed, clip)
        cell_shift = math.nan
        first = len(rows)
        if collector is not None:
            collector.reset()
        for mode in mode_list:
            for scenario in scenarios:
                if scenario == "fixed":
                    fixed.estimate(batches.map(lambda x, y, s: x))
                    predict = fixed.predict
                else:
                    predict = predictors[mode, scenario]
                accuracy, total = _accuracy(predict, batches)
                if scenario == "none" and collector is not None and math.isnan(cell_shift):
                    cell_shift = shift_from_collector(collector).overall
                rows.append(Row(cell.noise, cell.severity, mode, scenario, accuracy, cell_shift, total))
        rows[first:] = [dataclasses.replace(r, shift=cell_shift) for r in rows[first:]]
    return rows
