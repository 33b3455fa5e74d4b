"""Input pipeline throughput vs training-step throughput on CIFAR-shaped data (goal: pipeline >= 3x).

python benchmarks/bench_input_pipeline.py [--model=resnet20] [--batch=128]

The pipeline is the trainer's own: uint8 arrays -> [0, 1] floats -> shuffle ->
batch -> paper augmentation (pad-crop + flip) -> prefetch. The step is one
training step of the model on a fixed batch (no input pipeline involved).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trainers  # noqa: E402,F401  (the app's TensorFlow settings: oneDNN on, before TF loads)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.timing import train_step_seconds  # noqa: E402
from lipnorm import models  # noqa: E402
from lipnorm.data.augment import for_dataset  # noqa: E402
from lipnorm.data.base import from_arrays, train_pipeline  # noqa: E402
from lipnorm.data.cifar10 import STATS  # noqa: E402
from lipnorm.layers import NormSpec  # noqa: E402


def pipeline_examples_per_second(splits, batch: int, batches: int = 60) -> float:
    ds = train_pipeline(splits.train, batch, seed=0, augment=for_dataset("cifar10", 32, seed=0)).repeat()
    it = iter(ds)
    for _ in range(5):  # warm up (shuffle buffer fill, tracing)
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    r = np.random.default_rng(0)
    n = 10_000
    x = r.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = r.integers(0, 10, n).astype(np.int32)
    splits = from_arrays("cifar10-like", (x, y), (x[:100], y[:100]), 255.0, "random", stats=STATS)
    pipeline = pipeline_examples_per_second(splits, args.batch)
    model = models.build(args.model, splits.info, NormSpec("batch"))
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = (x[: args.batch].astype("float32") / 255.0, y[: args.batch])
    step = train_step_seconds({"step": model}, batch, steps=5, rounds=3)["step"]
    training = args.batch / step
    print(f"input pipeline: {pipeline:,.0f} examples/s; {args.model} training step: {training:,.0f} examples/s "
          f"(batch {args.batch}); ratio {pipeline / training:.1f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
