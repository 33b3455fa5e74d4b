"""LocalNorm train step over BatchNormalization's (goal <= 1.05x) and VOTING over BATCH evaluation (goal <= 1.1 K).

python benchmarks/bench_local_norm.py   (MNIST net, batch 100, K = 10, as in the paper)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.timing import fastest_seconds, mnist_like, train_step_seconds  # noqa: E402
from lipnorm import models  # noqa: E402
from lipnorm.evaluation.modes import make_predict_fn  # noqa: E402
from lipnorm.layers import NormSpec  # noqa: E402

BATCH, GROUPS = 100, 10


def _compiled(norm: str):
    _, info = mnist_like(1)
    model = models.build("localnorm_mnist_net", info, NormSpec(norm, GROUPS))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main() -> None:
    ds, _ = mnist_like(1000)
    x, y = next(iter(ds.batch(BATCH)))
    step = train_step_seconds({norm: _compiled(norm) for norm in ("batch", "local")}, (x, y))
    print(f"train step: BatchNorm {step['batch'] * 1000:.2f} ms, LocalNorm {step['local'] * 1000:.2f} ms, "
          f"ratio {step['local'] / step['batch']:.3f}x (goal <= 1.05x; paper 1.10-1.20x)")
    model = _compiled("local")
    images = tf.concat([b for b, _ in ds.batch(BATCH)], 0)
    seed = tf.constant([0, 0], tf.int64)

    def over_set(fn):
        return lambda: [fn(images[start:start + BATCH], seed).numpy() for start in range(0, 1000, BATCH)]

    timings = fastest_seconds({mode: over_set(make_predict_fn(model, mode, BATCH)) for mode in ("batch", "voting")})
    ratio = timings["voting"] / timings["batch"]
    print(f"evaluation of 1000 images: BATCH {timings['batch'] * 1000:.1f} ms, VOTING {timings['voting'] * 1000:.1f} ms, "
          f"ratio {ratio:.2f}x = {ratio / GROUPS:.2f} K (goal <= 1.1 K, K = {GROUPS})")


if __name__ == "__main__":
    main()
