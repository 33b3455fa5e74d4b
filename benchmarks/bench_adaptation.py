"""AdaptiveBN inference over plain BN inference (goal <= 1.05x), and full-set estimation over one plain pass (goal <= 1.2x).

python benchmarks/bench_adaptation.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from benchmarks.timing import median_seconds, mnist_like  # noqa: E402
from lipnorm import adaptation, convert, models  # noqa: E402
from lipnorm.layers import NormSpec  # noqa: E402

BATCH, N = 100, 2000


def main() -> None:
    ds, info = mnist_like(N)
    images = tf.concat([b for b, _ in ds.batch(BATCH)], 0)
    model = models.build("localnorm_mnist_net", info, NormSpec("batch"))
    adaptive = convert.batchnorm_to_adaptive(model, 16.0)
    plain_fn = tf.function(lambda x: model(x, training=False))
    adapt_fn = tf.function(lambda x: adaptive(x, training=False))

    def over_set(fn):
        for start in range(0, N, BATCH):
            fn(images[start:start + BATCH]).numpy()

    plain = median_seconds(lambda: over_set(plain_fn))
    adapted = median_seconds(lambda: over_set(adapt_fn))
    print(f"inference over {N} images, batch {BATCH}: BN {plain * 1000:.1f} ms, AdaptiveBN(N=16) {adapted * 1000:.1f} ms, "
          f"ratio {adapted / plain:.3f}x (goal <= 1.05x)")
    estimator = convert.batchnorm_to_adaptive(model, 16.0)
    full = median_seconds(lambda: adaptation.estimate_and_store(estimator, images, 16.0, None, BATCH), repeats=3)
    print(f"full-set estimation over {N} images {full * 1000:.1f} ms, ratio to one plain pass {full / plain:.3f}x (goal <= 1.2x)")


if __name__ == "__main__":
    main()
