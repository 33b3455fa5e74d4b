"""Lipschitz train step over the plain train step, same net and batch (floor ~2x, goal <= 2.05x).

python benchmarks/bench_lipschitz.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trainers  # noqa: E402,F401  (the app's TensorFlow settings: oneDNN on, before TF loads)

import keras  # noqa: E402

from benchmarks.timing import mnist_like, train_step_seconds  # noqa: E402
from lipnorm import models  # noqa: E402
from lipnorm.layers import NormSpec  # noqa: E402
from lipnorm.training import LipschitzModel  # noqa: E402

BATCH = 100


def _compiled(lip_lambda: float):
    _, info = mnist_like(1)
    model = models.build("localnorm_mnist_net", info, NormSpec("batch"))
    if lip_lambda:
        model = LipschitzModel.wrap(model, lip_lambda=lip_lambda, lip_k=1.0, lip_sigma=0.1)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main() -> None:
    ds, _ = mnist_like(BATCH)
    batch = next(iter(ds.batch(BATCH)))
    step = train_step_seconds({"plain": _compiled(0.0), "lipschitz": _compiled(0.1)}, batch)
    plain, lip = step["plain"], step["lipschitz"]
    print(f"train step, batch {BATCH}: plain {plain * 1000:.2f} ms, Lipschitz {lip * 1000:.2f} ms, "
          f"ratio {lip / plain:.3f}x (floor ~2x, goal <= 2.05x)")


if __name__ == "__main__":
    main()
