"""The robustness sweep: every (noise, severity) cell x evaluation variant -> one Row each.

A variant is a LocalNorm evaluation mode (models with LocalNorm) or a BN
adaptation scenario (models with BatchNorm). Noise is applied inside the
tf.data pipeline, generated per block of RANDOM_BLOCK test images with a
stateless seed from (seed, cell, block index), so a cell's noisy images are
the same whatever the evaluation batch size, and the same in the per-epoch
probe (`cell_accuracy` on the first test images) as in the final grid. Every
test example is evaluated: nothing is dropped for batch divisibility.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from lipnorm import adaptation, corruptions, surgery
from lipnorm.errors import ArgumentError, LipnormError
from lipnorm.evaluation import modes as modes_lib
from lipnorm.evaluation.batching import RANDOM_BLOCK, block_seed, round_up
from lipnorm.layers.lookup import batchnorm_layers, local_norm_grouping
from lipnorm.noise.registry import NoiseCell, apply as apply_noise, grid_table, parse_grid  # noqa: F401


@dataclasses.dataclass(frozen=True)
class Row:
    """One evaluation result with all its coordinates.

    `shift` is the label-free BN shift of the cell for the unadapted model,
    `adapted_shift` the shift the variant's adaptation leaves (NaN where it
    does not apply).
    """

    noise: str
    severity: float
    mode: str
    adapt: str
    accuracy: float
    shift: float
    adapted_shift: float
    examples: int

    COLUMNS = ("noise", "severity", "mode", "adapt", "accuracy", "shift", "adapted_shift", "examples")


SCENARIOS = (*adaptation.SCENARIOS, "tent")


@dataclasses.dataclass(frozen=True)
class TentSettings:
    """TENT's settings in a grid (see lipnorm.adaptation.Tent); `batch` images adapt together."""

    lr: float = 1e-3
    optimizer: str = "adam"
    steps: int = 1
    episodic: bool = False
    predict: str = "after"
    prior: Optional[float] = 0.0
    max_entropy: Optional[float] = None
    batch: int = 200


@dataclasses.dataclass(frozen=True)
class AdaptSettings:
    """Adaptation scenarios of a grid and their parameters (see lipnorm.adaptation.adapt and Tent)."""

    scenarios: tuple[str, ...] = ("none",)
    prior: Optional[float] = 16.0
    batch: int = 8
    samples: Optional[int] = 32
    estimator: str = "streaming"
    tent: TentSettings = TentSettings()


def noisy_batches(
    test: tf.data.Dataset, cell, batch_size: int, seed: int, clip: bool
) -> tf.data.Dataset:
    """Batches of (images, labels, per-image uniform draws) of one grid cell.

    A NoiseCell's noise is generated from `test` per block of RANDOM_BLOCK
    images seeded by the block's index; a cell read from a published corrupted
    set (`lipnorm.data.corrupted.CorruptedCell`, with its own `dataset`) is
    taken as it is. Then rebatched to `batch_size`.
    """
    if batch_size < 1:
        raise ArgumentError("batch_size", batch_size, ">= 1")
    published = getattr(cell, "dataset", None)

    def add_noise(block, batch):
        images, labels = batch
        if published is None:
            images = _noise_function(cell, clip)(images, block_seed(seed, cell.stream, block))
        draws = tf.random.stateless_uniform([RANDOM_BLOCK], block_seed(seed, "draws", block))
        return images, labels, draws[: tf.shape(labels)[0]]

    return (
        (test if published is None else published).batch(RANDOM_BLOCK)
        .enumerate()
        .map(add_noise, num_parallel_calls=tf.data.AUTOTUNE)
        .rebatch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


@functools.lru_cache(maxsize=256)  # a grid's cells, reused across its evaluations; bounded for long sessions
def _noise_function(cell: NoiseCell, clip: bool) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """apply_noise for one cell as a tf.function: traced once per image shape, reused by every pipeline.

    tf.data traces a map function again whenever a pipeline is built, and a corruption's graph is
    hundreds of ops: tracing it again cost 2.2 s per evaluation of the 75 CIFAR-10-C cells (about
    30 ms a cell), whatever the number of images.
    """
    return tf.function(lambda images, seed: apply_noise(images, cell, seed, clip))


def accuracy(
    predictor: modes_lib.Predictor, batches: tf.data.Dataset, strategy: Optional[tf.distribute.Strategy] = None
) -> tuple[float, int]:
    """(accuracy, examples) of `predictor` over (images, labels, draws) batches.

    With a `strategy` of several replicas, every batch is split over the
    replicas (in shares of whole blocks, `predictor.multiple`) and run through
    `strategy.run`; the correct counts are summed over replicas. An image's
    prediction depends only on its block, so the result is the single-device
    one, row for row.
    """
    step = _distributed_counts(predictor, strategy) if strategy is not None and strategy.num_replicas_in_sync > 1 \
        else _counts(predictor)
    correct = total = 0
    for images, labels, draws in batches:
        c, n = step(images, labels, draws)
        correct, total = correct + int(c), total + int(n)
    if total == 0:
        raise LipnormError("the test split is empty: nothing to evaluate")
    return correct / total, total


def _counts(predictor: modes_lib.Predictor):
    def counts(images, labels, draws):
        probs = predictor.fn(images, draws)
        hits = tf.reduce_sum(tf.cast(tf.argmax(probs, -1, output_type=tf.int32) == labels, tf.int32))
        return hits, tf.shape(labels)[0]

    return counts


def _distributed_counts(predictor: modes_lib.Predictor, strategy: tf.distribute.Strategy):
    replicas = strategy.num_replicas_in_sync
    block = predictor.multiple

    def share(images, labels, draws, replica):
        """This replica's rows: consecutive whole blocks (an empty share runs one image and counts none)."""
        n = tf.shape(labels)[0]
        per = (n + replicas * block - 1) // (replicas * block) * block
        start = tf.minimum(replica * per, n)
        end = tf.minimum(start + per, n)
        rows = tf.range(start, tf.maximum(end, start + 1)) % n
        valid = tf.cast(rows < end, tf.int32) * tf.cast(tf.range(tf.size(rows)) < end - start, tf.int32)
        return tf.gather(images, rows), tf.gather(labels, rows), tf.gather(draws, rows), valid

    def replica_counts(images, labels, draws, valid):
        probs = predictor.fn(images, draws)
        hits = tf.cast(tf.argmax(probs, -1, output_type=tf.int32) == labels, tf.int32)
        return tf.reduce_sum(hits * valid), tf.reduce_sum(valid)

    @tf.function
    def counts(images, labels, draws):
        shares = strategy.experimental_distribute_values_from_function(
            lambda context: share(images, labels, draws, context.replica_id_in_sync_group)
        )
        hits, valid = strategy.run(replica_counts, args=shares)
        return strategy.reduce("SUM", hits, axis=None), strategy.reduce("SUM", valid, axis=None)

    return counts


def cell_accuracy(
    predictor: modes_lib.Predictor, test: tf.data.Dataset, cell: NoiseCell, batch_size: int, seed: int, clip: bool
) -> tuple[float, int]:
    """The accuracy of one cell, with the noise the grid draws for it."""
    batch = round_up(batch_size, predictor.multiple)
    return accuracy(predictor, noisy_batches(test, cell, batch, seed, clip))


class _Variant:
    """One (mode, scenario) column of the grid: its predictor, refreshed per cell where it adapts."""

    def __init__(self, model, mode, scenario, adapt: AdaptSettings, vote, batch_size, shift: bool, strategy=None):
        self.mode, self.scenario = mode, scenario
        self.estimator = None
        self.sinks = None
        if scenario == "fixed":  # estimation runs on one device: plain variables
            self.estimator = adaptation.Estimator(
                surgery.batchnorm_to_adaptive(model, adapt.prior), adapt.prior, adapt.estimator
            )
        self.adapt = adapt
        self.batch_size = batch_size
        # Shift: the model's layers observe the statistics of their inputs (AdaptiveBN, prior None).
        self.observe = shift and scenario in ("none", "fixed")
        with strategy.scope() if strategy is not None else contextlib.nullcontext():  # replicas share the clone
            if scenario == "fixed":
                target = surgery.adaptive_to_batchnorm(surgery.batchnorm_to_adaptive(model, None))
            elif scenario in ("adhoc", "partial"):
                target = adaptation.adapt(model, scenario=scenario, prior=adapt.prior, batch=adapt.batch).model
            else:
                target = model
            if self.observe:
                target = surgery.batchnorm_to_adaptive(target, None)
                # Attached for the variant's life (the clone is its own), so every trace feeds them.
                self.sinks = adaptation.statistics.attach_sinks(target)
        self.predictor = modes_lib.make_predictor(target, mode, vote)
        self.model = target
        self.multiple = self.predictor.multiple

    def evaluate(self, test, cell, batches: tf.data.Dataset, seed: int, clip: bool, strategy=None) -> tuple[float, int]:
        """(accuracy, examples) of the cell, after the variant adapted to it."""
        if self.estimator is not None:
            statistics = self.estimator.estimate(batches.map(lambda x, y, d: x), self.adapt.samples, self.batch_size)
            adaptation.store(self.model, statistics)
        for sink in self.sinks or ():
            sink.reset()
        return accuracy(self.predictor, batches, strategy)

    def shift(self) -> float:
        if not self.observe:
            return math.nan
        return adaptation.shift_of(adaptation.statistics.adaptive_layers(self.model), self.sinks).overall


class _TentVariant:
    """TENT over each cell's stream in batches of `tent.batch`, reset to the source model for every cell."""

    scenario = "tent"

    def __init__(self, model, mode, settings: TentSettings):
        self.mode = mode
        self.settings = settings
        self.tent = adaptation.Tent(
            model, lr=settings.lr, optimizer=settings.optimizer, steps=settings.steps, episodic=settings.episodic,
            predict=settings.predict, prior=settings.prior, max_entropy=settings.max_entropy,
        )
        self.multiple = 1  # TENT batches the stream itself
        self.stats = []

    def evaluate(self, test, cell, batches: tf.data.Dataset, seed: int, clip: bool, strategy=None) -> tuple[float, int]:
        self.tent.reset()
        stream = noisy_batches(test, cell, self.settings.batch, seed, clip)
        labels = np.concatenate([y.numpy() for _, y, _ in stream])
        if len(labels) == 0:
            raise LipnormError("the test split is empty: nothing to evaluate")
        probs = self.tent.run(stream.map(lambda x, y, d: x), self.settings.batch)
        self.stats.append((cell, self.tent.stats))
        return float(np.mean(np.argmax(probs, -1) == labels)), len(labels)

    def shift(self) -> float:
        return math.nan


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
    progress: Optional[Callable[[int, int, "Row"], None]] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
) -> list[Row]:
    """Accuracy of `model` on `test` (unbatched (image, label)) for every cell and variant.

    Models with LocalNorm are evaluated in each of `eval_modes`; other models
    in mode "standard". Models with BatchNorm are evaluated under each
    adaptation scenario (reset for every cell), among them "tent" (TENT,
    which LocalNorm models take too, in mode "batch") and, with `shift`, get
    the label-free shift metric of every cell before and after adaptation.
    `batch_size` only sets how many images go through the model at once.
    `progress(done, total, row)` is called after every row. With a
    `strategy` of several replicas (the model built in its scope), the
    batches of the unadapted, ad hoc, partial and fixed variants run on every
    replica with the single-device results (statistics estimation and TENT
    run on each worker's first device).
    """
    table = grid_table(list(cells))
    if table is not None:
        corruptions.check_image_shape(table, test.element_spec[0].shape)
    expected = tuple(model.inputs[0].shape[1:])
    for cell in cells:
        published = getattr(cell, "dataset", None)
        if published is not None and tuple(published.element_spec[0].shape) != expected:
            raise LipnormError(f"the corrupted set's images have shape {tuple(published.element_spec[0].shape)} "
                               f"but the model takes {expected}")
    has_local = local_norm_grouping(model) is not None
    scenarios = tuple(adapt.scenarios)
    for scenario in scenarios:
        if scenario not in SCENARIOS:
            raise ArgumentError("adapt", scenario, f"one of {', '.join(SCENARIOS)}")
    if has_local and any(s not in ("none", "tent") for s in scenarios):
        raise LipnormError("BN statistics adaptation applies to BatchNorm models; LocalNorm models use the "
                           "evaluation modes (and TENT)")
    if any(s in ("adhoc", "partial", "fixed") for s in scenarios):
        adaptation.normalize_prior(adapt.prior)
    mode_list = tuple(eval_modes) if has_local else (modes_lib.STANDARD,)
    for mode in mode_list:
        modes_lib.check_mode(mode)
    shift = shift and bool(batchnorm_layers(model))
    variants = []
    for m in mode_list:
        for s in scenarios:
            if s != "tent":
                variants.append(_Variant(model, m, s, adapt, vote, batch_size, shift, strategy))
            elif m in ("batch", modes_lib.STANDARD):  # TENT adapts on whole batches: LocalNorm's BATCH mode
                variants.append(_TentVariant(model, m, adapt.tent))
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    batch = round_up(batch_size, replicas * int(np.lcm.reduce([v.multiple for v in variants])))
    rows, total = [], len(cells) * len(variants)
    for cell in cells:
        batches = noisy_batches(test, cell, batch, seed, clip)
        first = len(rows)
        for variant in variants:
            acc, examples = variant.evaluate(test, cell, batches, seed, clip, strategy)
            rows.append(Row(cell.noise, cell.severity, variant.mode, variant.scenario, acc, math.nan,
                            variant.shift(), examples))
            if progress is not None:
                progress(len(rows), total, rows[-1])
        before = next((r.adapted_shift for r in rows[first:] if r.adapt == "none"), math.nan)
        rows[first:] = [dataclasses.replace(r, shift=before) for r in rows[first:]]
    return rows
