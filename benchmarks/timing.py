"""Timing helpers shared by the benchmarks: warm up, then the median of repeats."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import tensorflow as tf

from lipnorm.data.base import DatasetInfo


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mnist_like(n: int, seed: int = 0) -> tuple[tf.data.Dataset, DatasetInfo]:
    """n random 28x28 images with labels (timings do not depend on pixel values)."""
    g = tf.random.Generator.from_seed(seed)
    x = g.uniform([n, 28, 28, 1])
    y = g.uniform([n], maxval=10, dtype=tf.int32)
    info = DatasetInfo("mnist-like", (28, 28, 1), 10, n, n, (0.13,), (0.31,), "random")
    return tf.data.Dataset.from_tensor_slices((x, y)), info


def train_step_seconds(model, batch, steps: int = 20) -> float:
    """Seconds per training step of a compiled model on one fixed batch."""
    x, y = batch
    ds = tf.data.Dataset.from_tensors((x, y)).repeat(steps).prefetch(2)
    model.fit(ds, epochs=1, verbose=0)  # traces
    return median_seconds(lambda: model.fit(ds, epochs=1, verbose=0), repeats=3, warmup=0) / steps
