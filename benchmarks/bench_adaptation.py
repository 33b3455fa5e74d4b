"""AdaptiveBN inference over plain BN inference (goal <= 1.05x), and full-set estimation over one plain pass (goal <= 1.2x).

python benchmarks/bench_adaptation.py [--model=resnet20] [--rounds=15]   (default: the MNIST net on 28x28x1;
CIFAR architectures get random 32x32x3 images)
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from benchmarks.timing import bn_model_and_images, interleaved_seconds, median_ratio  # noqa: E402
from lipnorm import adaptation, convert  # noqa: E402

BATCH, N = 100, 2000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="localnorm_mnist_net")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    model, images = bn_model_and_images(args.model, N)
    adaptive = convert.batchnorm_to_adaptive(model, 16.0)
    plain_fn = tf.function(lambda x: model(x, training=False))
    adapt_fn = tf.function(lambda x: adaptive(x, training=False))
    # The estimator is traced once (as the evaluation grid reuses it); each run is one streaming pass.
    estimator = adaptation.Estimator(convert.batchnorm_to_adaptive(model, 16.0))

    def over_set(fn):
        return lambda: [fn(images[start:start + BATCH]).numpy() for start in range(0, N, BATCH)]

    samples = interleaved_seconds({
        "plain": over_set(plain_fn),
        "adaptive": over_set(adapt_fn),
        "estimate": lambda: estimator.blended(16.0) if estimator.run(images, None, BATCH) else None,
    }, rounds=args.rounds)
    t = {name: min(times) for name, times in samples.items()}
    print(f"{args.model}: inference over {N} images, batch {BATCH}: BN {t['plain'] * 1000:.1f} ms, "
          f"AdaptiveBN(N=16) {t['adaptive'] * 1000:.1f} ms, ratio {t['adaptive'] / t['plain']:.3f}x "
          f"(median per round {median_ratio(samples, 'adaptive', 'plain'):.3f}x; goal <= 1.05x)")
    print(f"full-set estimation over {N} images {t['estimate'] * 1000:.1f} ms, "
          f"ratio to one plain pass {t['estimate'] / t['plain']:.3f}x "
          f"(median per round {median_ratio(samples, 'estimate', 'plain'):.3f}x; goal <= 1.2x)")


if __name__ == "__main__":
    main()
