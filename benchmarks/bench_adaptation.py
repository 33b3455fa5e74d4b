"""AdaptiveBN inference over plain BN inference (goal <= 1.15x), and full-set estimation over one plain pass:
the streaming estimator (goal <= 1.2x) and the exact, layer-by-layer one (one pass per BN layer).

python benchmarks/bench_adaptation.py [--model=resnet20] [--rounds=15]   (default: the MNIST net on 28x28x1;
CIFAR architectures get random 32x32x3 images)
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trainers  # noqa: E402,F401  (the app's TensorFlow settings: oneDNN on, before TF loads)

import tensorflow as tf  # noqa: E402

from benchmarks.timing import bn_model_and_images, interleaved_seconds, median_ratio  # noqa: E402
from lipnorm import adaptation, surgery  # noqa: E402

BATCH, N = 100, 2000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="localnorm_mnist_net")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    model, images = bn_model_and_images(args.model, N)
    adaptive = surgery.batchnorm_to_adaptive(model, 16.0)
    plain_fn = tf.function(lambda x: model(x, training=False))
    adapt_fn = tf.function(lambda x: adaptive(x, training=False))
    # Estimators are traced once (as the evaluation grid reuses them).
    streaming = adaptation.Estimator(surgery.batchnorm_to_adaptive(model, 16.0), 16.0, "streaming")
    exact = adaptation.Estimator(surgery.batchnorm_to_adaptive(model, 16.0), 16.0, "exact")
    layers = len(exact.layers)

    def over_set(fn):
        return lambda: [fn(images[start:start + BATCH]).numpy() for start in range(0, N, BATCH)]

    samples = interleaved_seconds({
        "plain": over_set(plain_fn),
        "adaptive": over_set(adapt_fn),
        "streaming": lambda: streaming.estimate(images, None, BATCH),
        "exact": lambda: exact.estimate(images, None, BATCH),
    }, rounds=args.rounds)
    t = {name: min(times) for name, times in samples.items()}
    print(f"{args.model}: inference over {N} images, batch {BATCH}: BN {t['plain'] * 1000:.1f} ms, "
          f"AdaptiveBN(N=16) {t['adaptive'] * 1000:.1f} ms, ratio {t['adaptive'] / t['plain']:.3f}x "
          f"(median per round {median_ratio(samples, 'adaptive', 'plain'):.3f}x; goal <= 1.15x)")
    print(f"full-set estimation over {N} images, streaming {t['streaming'] * 1000:.1f} ms, "
          f"ratio to one plain pass {t['streaming'] / t['plain']:.3f}x "
          f"(median per round {median_ratio(samples, 'streaming', 'plain'):.3f}x; goal <= 1.2x)")
    print(f"full-set estimation over {N} images, exact (layer by layer, {layers} BN layers) "
          f"{t['exact'] * 1000:.1f} ms, ratio to one plain pass {t['exact'] / t['plain']:.3f}x "
          f"(median per round {median_ratio(samples, 'exact', 'plain'):.3f}x)")


if __name__ == "__main__":
    main()
