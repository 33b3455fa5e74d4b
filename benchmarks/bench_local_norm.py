"""LocalNorm train step over BatchNormalization's (goal <= 1.05x); VOTING and SINGLE-VOTING over BATCH
evaluation (goal <= 1.1 K) and SINGLE over BATCH (goal <= 1.3x: one pass with a group index per image).

python benchmarks/bench_local_norm.py   (MNIST net, batch 100, K = 10, as in the paper)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trainers  # noqa: E402,F401  (the app's TensorFlow settings: oneDNN on, before TF loads)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.timing import fastest_seconds, mnist_like, train_step_seconds  # noqa: E402
from lipnorm import models  # noqa: E402
from lipnorm.evaluation import make_predictor  # noqa: E402
from lipnorm.layers import NormSpec  # noqa: E402

BATCH, GROUPS = 100, 10


def _compiled(norm: str):
    _, info = mnist_like(1)
    model = models.build("localnorm_mnist_net", info, NormSpec(norm, GROUPS, group_size=BATCH // GROUPS))
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
    draws = tf.random.uniform([BATCH])
    predictors = {mode: make_predictor(model, mode) for mode in ("batch", "voting", "single", "single_voting")}

    def over_set(predictor):
        return lambda: [predictor.fn(images[start:start + BATCH], draws).numpy() for start in range(0, 1000, BATCH)]

    timings = fastest_seconds({mode: over_set(p) for mode, p in predictors.items()})
    print(f"evaluation of 1000 images, batch {BATCH}, K = {GROUPS}: "
          + ", ".join(f"{mode.upper()} {t * 1000:.1f} ms" for mode, t in timings.items()))
    for mode in ("voting", "single_voting"):
        ratio = timings[mode] / timings["batch"]
        print(f"{mode.upper()} / BATCH {ratio:.2f}x = {ratio / GROUPS:.2f} K (goal <= 1.1 K)")
    print(f"SINGLE / BATCH {timings['single'] / timings['batch']:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    main()
