"""A TENT step (forward, backward to gamma/beta, update) over a plain inference pass on the same batch (goal <= 2.5x).

The step's prediction is its own forward pass (predict="before"); predicting after the update
(the default) adds one more forward pass, timed too.

python benchmarks/bench_tent.py [--model=resnet20] [--rounds=11]   (default: the MNIST net, batch 200)
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trainers  # noqa: E402,F401  (the app's TensorFlow settings: oneDNN on, before TF loads)

import tensorflow as tf  # noqa: E402

from benchmarks.timing import bn_model_and_images, interleaved_seconds, median_ratio  # noqa: E402
from lipnorm.adaptation import Tent  # noqa: E402

BATCH = 200


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="localnorm_mnist_net")
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    model, images = bn_model_and_images(args.model, BATCH)
    plain = tf.function(lambda x: model(x, training=False))
    step, step_then_predict = Tent(model, lr=1e-3, predict="before"), Tent(model, lr=1e-3, predict="after")
    samples = interleaved_seconds({
        "plain": lambda: plain(images).numpy(),
        "tent": lambda: step.adapt(images),
        "after": lambda: step_then_predict.adapt(images),
    }, rounds=args.rounds)
    t = {name: min(times) for name, times in samples.items()}
    print(f"{args.model}, batch {BATCH}: inference {t['plain'] * 1000:.1f} ms, TENT step {t['tent'] * 1000:.1f} ms, "
          f"ratio {t['tent'] / t['plain']:.2f}x (median per round {median_ratio(samples, 'tent', 'plain'):.2f}x; "
          f"goal <= 2.5x); with the prediction after the update {t['after'] * 1000:.1f} ms, "
          f"{t['after'] / t['plain']:.2f}x")


if __name__ == "__main__":
    main()
