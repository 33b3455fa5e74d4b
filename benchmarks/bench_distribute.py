"""Examples/second of training and of the evaluation grid on 1 and 2 replicas (logical CPU devices here).

python benchmarks/bench_distribute.py [--model=localnorm_mnist_net] [--steps=20]

Two logical devices split this machine's two cores; on GPUs, `--strategy=mirrored` takes every GPU.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trainers  # noqa: E402,F401  (the app's TensorFlow settings: oneDNN on, before TF loads)

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402

from benchmarks.timing import mnist_like  # noqa: E402
from lipnorm import models  # noqa: E402
from lipnorm.distribute import distribute, make_strategy  # noqa: E402
from lipnorm.evaluation import grid  # noqa: E402
from lipnorm.layers import NormSpec  # noqa: E402
from lipnorm.noise import parse_grid  # noqa: E402

BATCH = 200


def _rates(strategy, model_name: str, steps: int) -> tuple[float, float]:
    replicas = strategy.num_replicas_in_sync
    ds, info = mnist_like(BATCH * steps)
    with strategy.scope():
        model = models.build(model_name, info, NormSpec("batch"))
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train = distribute(strategy, ds.batch(BATCH, drop_remainder=True).cache(), BATCH)
    model.fit(train, epochs=1, steps_per_epoch=steps, verbose=0)  # warm-up: traces
    start = time.perf_counter()
    model.fit(train, epochs=1, steps_per_epoch=steps, verbose=0)
    train_rate = BATCH * steps / (time.perf_counter() - start)
    cells = parse_grid("agn:1")
    grid.evaluate(model, ds.take(BATCH), cells, BATCH, shift=False, strategy=strategy)  # warm-up
    start = time.perf_counter()
    rows = grid.evaluate(model, ds, cells, BATCH, shift=False, strategy=strategy)
    eval_rate = sum(r.examples for r in rows) / (time.perf_counter() - start)
    print(f"{replicas} replica(s): training {train_rate:.0f} examples/s, evaluation grid {eval_rate:.0f} examples/s")
    return train_rate, eval_rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="localnorm_mnist_net")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    one = _rates(make_strategy("default"), args.model, args.steps)
    two = _rates(make_strategy("mirrored"), args.model, args.steps)
    print(f"{args.model}, batch {BATCH}: 2 replicas / 1: training {two[0] / one[0]:.2f}x, "
          f"evaluation {two[1] / one[1]:.2f}x (2 logical devices on the same 2 cores: no more compute to share)")


if __name__ == "__main__":
    main()
