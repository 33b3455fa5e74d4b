"""Timing helpers shared by the benchmarks.

The machines this runs on share cores with other work, so a single timing can be
off by 2x. Candidates are therefore timed interleaved (A, B, A, B, ...) after a
warm-up, and each one's minimum is kept: the minimum is the run least disturbed
by other work (as `timeit` recommends), and interleaving gives both candidates
the same chances.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping

import keras
import tensorflow as tf

from lipnorm import models
from lipnorm.data.base import DatasetInfo
from lipnorm.layers import NormSpec


def interleaved_seconds(
    candidates: Mapping[str, Callable[[], object]], rounds: int = 7, warmup: int = 2
) -> dict[str, list[float]]:
    """{name: `rounds` timings of candidates[name](), taken interleaved after `warmup` calls each}."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def fastest_seconds(candidates: Mapping[str, Callable[[], object]], rounds: int = 7, warmup: int = 2) -> dict[str, float]:
    """{name: the fastest of `rounds` interleaved timings of candidates[name]()}."""
    return {name: min(t) for name, t in interleaved_seconds(candidates, rounds, warmup).items()}


def median_ratio(samples: Mapping[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of numerator/denominator timed in the same round.

    Neighbouring timings share the machine's state, so the per-round ratio is
    steadier than a ratio of minima when the load changes during the run.
    """
    return statistics.median(a / b for a, b in zip(samples[numerator], samples[denominator]))


def bn_model_and_images(model_name: str, n: int) -> tuple[keras.Model, tf.Tensor]:
    """The BatchNorm `model_name` and n random images of its input shape.

    28x28x1 for the MNIST networks, 32x32x3 for the CIFAR architectures.
    """
    shape = (28, 28, 1) if "mnist" in model_name or "lipschitz" in model_name else (32, 32, 3)
    ds, info = mnist_like(n, shape=shape)
    images, _ = next(iter(ds.batch(n)))
    return models.build(model_name, info, NormSpec("batch")), images


def mnist_like(n: int, seed: int = 0, shape=(28, 28, 1)) -> tuple[tf.data.Dataset, DatasetInfo]:
    """n random images (28x28 by default) with labels (timings do not depend on pixel values)."""
    g = tf.random.Generator.from_seed(seed)
    x = g.uniform([n, *shape])
    y = g.uniform([n], maxval=10, dtype=tf.int32)
    channels = shape[-1]
    info = DatasetInfo("random", tuple(shape), 10, n, n, (0.13,) * channels, (0.31,) * channels, "random")
    return tf.data.Dataset.from_tensor_slices((x, y)), info


def train_steps(model, batch, steps: int = 10) -> Callable[[], object]:
    """A callable running `steps` training steps of a compiled model on one fixed batch."""
    x, y = batch
    ds = tf.data.Dataset.from_tensors((x, y)).repeat(steps).prefetch(2)
    return lambda: model.fit(ds, epochs=1, verbose=0)


def train_step_seconds(models: Mapping[str, object], batch, steps: int = 10, rounds: int = 7) -> dict[str, float]:
    """Seconds per training step of each compiled model, timed interleaved on the same batch."""
    seconds = fastest_seconds({k: train_steps(m, batch, steps) for k, m in models.items()}, rounds=rounds)
    return {k: s / steps for k, s in seconds.items()}
