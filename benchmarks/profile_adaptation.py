"""Where AdaptiveBN's inference time goes: kernel time per batch in the normalization layers and elsewhere.

python benchmarks/profile_adaptation.py [--model=resnet20] [--steps=30]

Runs plain BN and AdaptiveBN(N=16) inference on the same random batch of 100 under the
TensorFlow profiler, and sums the duration of every executed kernel by kind (convolutions and matmuls, including
those into which Grappler folded a BatchNorm and ReLU; normalization and its elementwise
ops; the rest). A third model, AdaptiveBN whose batch moments are replaced by the stored
ones, shows what the moments kernel costs: without it Grappler folds the normalization and
ReLU into the convolution, which the moments kernel prevents (it needs the convolution's
output itself).
"""

import argparse
import collections
import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from benchmarks.timing import bn_model_and_images  # noqa: E402
from lipnorm import convert  # noqa: E402
from lipnorm.layers import AdaptiveBN  # noqa: E402

BATCH = 100


def _stored_moments(layer, x, one_pass):
    return tf.cast(layer.moving_mean, tf.float32), tf.cast(layer.moving_variance, tf.float32)


def _kind(kernel: str) -> str:
    if "Conv2D" in kernel or "MatMul" in kernel:
        return "conv/matmul"  # _FusedConv2D included: Grappler may fold BN and ReLU into it
    if "BatchNorm" in kernel or kernel == "ChannelMoments" or kernel in ("Mul", "AddV2", "Sub", "Rsqrt", "Relu", "Reshape"):
        return "normalization"
    return "other"


def kernel_ms_per_step(fn, x, steps: int) -> dict[str, float]:
    """Summed kernel milliseconds per call of fn(x), by kind of kernel."""
    for _ in range(3):
        fn(x)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            fn(x).numpy()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logdir, "plugins/profile/*/*.xplane.pb"))[0], "rb") as f:
            space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if "/" not in name or ":" not in name:  # executor bookkeeping, not a kernel
                    continue
                totals[_kind(name.rsplit(":", 1)[1])] += event.duration_ps / 1e9 / steps
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="localnorm_mnist_net")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    model, x = bn_model_and_images(args.model, BATCH)
    candidates = {"plain BN": model, "AdaptiveBN(N=16)": convert.batchnorm_to_adaptive(model, 16.0)}
    original = AdaptiveBN._fused_moments
    AdaptiveBN._fused_moments = _stored_moments  # traced below, so only that model uses it
    try:
        without = convert.batchnorm_to_adaptive(model, 16.0)
        fn = tf.function(lambda images: without(images, training=False))
        fn(x)
    finally:
        AdaptiveBN._fused_moments = original
    fns = {name: tf.function(lambda images, m=m: m(images, training=False)) for name, m in candidates.items()}
    fns["AdaptiveBN without the moments kernel"] = fn
    print(f"{args.model}, batch {BATCH}: kernel time per batch (ms)")
    for name, f in fns.items():
        t = kernel_ms_per_step(f, x, args.steps)
        print(f"  {name:40s} " + "   ".join(f"{k} {t.get(k, 0):5.2f}" for k in ("conv/matmul", "normalization", "other"))
              + f"   total {sum(t.values()):5.2f}")


if __name__ == "__main__":
    main()
