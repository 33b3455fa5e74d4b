"""Per-channel batch moments (mean, biased variance) for AdaptiveBN on TensorFlow, with their gradient.

Two kernels compute them. The one-pass `ChannelMoments` kernel (channel_moments.cc) reads the
features once; it is built with the machine's C++ compiler against the installed TensorFlow on
first use (about 7 s) and cached, the way TF custom ops of research code (e.g. StyleGAN2's) are.
Where it cannot be built or cannot run (no compiler, a GPU, XLA, a SavedModel being written,
LIPNORM_CUSTOM_KERNELS=0), TF's fused batch-norm kernel in training mode serves instead: same
numbers, but it reads the features twice and writes a normalized copy, which made AdaptiveBN
inference ~8% slower than BatchNormalization on the MNIST net (benchmarks/bench_adaptation.py).
Graphs traced while a SavedModel is written never contain the custom op, so exported models
load anywhere.

Both return the biased (population) variance over every axis but the last, and both carry the
full gradient d/dx (TF's fused kernel alone gives none through its mean and variance outputs).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Optional

import tensorflow as tf
from absl import logging

SWITCH_ENV = "LIPNORM_CUSTOM_KERNELS"  # "0" keeps TF's own kernels
CACHE_ENV = "LIPNORM_KERNEL_CACHE"  # where built kernels are kept (default ~/.cache/lipnorm/kernels)
SOURCE = Path(__file__).with_name("channel_moments.cc")
_LOAD_LOCK = threading.Lock()  # replicas of tf.distribute trace in threads: build once


class KernelBuildError(RuntimeError):
    """The one-pass kernel could not be built or loaded (the message says why)."""


def batch_moments(x: tf.Tensor, one_pass: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean and biased variance of float32 `x` over every axis but the last (channels).

    Args:
        x: float32 features, rank 2 or 4, channels last.
        one_pass: allow the one-pass kernel (callers pass False where it cannot be traced, e.g.
            inside tf.vectorized_map, which has no converter for it).
    """
    kernel = _one_pass_kernel if one_pass and one_pass_kernel_applies() else _fused_kernel_moments

    @tf.custom_gradient
    def moments(x):
        mean, variance = kernel(x)

        def grad(d_mean, d_variance):
            count = tf.cast(tf.size(x) // tf.shape(x)[-1], x.dtype)
            d_mean = tf.zeros_like(mean) if d_mean is None else d_mean
            d_variance = tf.zeros_like(variance) if d_variance is None else d_variance
            # d var / dx = 2 (x - mean) / count: the term through the mean sums to zero.
            return (d_mean + 2.0 * d_variance * (x - mean)) / count

        return (mean, variance), grad

    return moments(x)


def one_pass_kernel_applies() -> bool:
    """Whether the graph being built can use the one-pass kernel (and it is built and loaded)."""
    if os.environ.get(SWITCH_ENV, "1") == "0" or tf.config.list_physical_devices("GPU"):
        return False
    try:  # private TF modules: if they move, stay on TF's kernels rather than guess
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
        from tensorflow.python.saved_model import save_context
    except ImportError:
        return False
    if save_context.in_save_context() or control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()):
        return False  # a SavedModel must load without the library; XLA cannot compile custom ops
    return _library() is not None


def build_library(cache_dir: Optional[Path] = None) -> Path:
    """Compiles channel_moments.cc for the installed TensorFlow (or finds it built) and returns the .so path.

    Raises:
        KernelBuildError: no C++ compiler, or the compiler failed (its last lines are in the message).
    """
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if not compiler:
        raise KernelBuildError("no C++ compiler found (install g++, or set CXX)")
    flags = ["-std=c++17", "-shared", "-fPIC", "-O3", "-w", *tf.sysconfig.get_compile_flags(),
             *tf.sysconfig.get_link_flags()]
    key = hashlib.sha256("\0".join([SOURCE.read_text(), tf.__version__, compiler, *flags]).encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lipnorm" / "kernels")
    target = cache_dir / f"channel_moments-{key}.so"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(suffix=".so", dir=cache_dir)
    os.close(fd)
    try:
        result = subprocess.run([compiler, str(SOURCE), "-o", partial, *flags], capture_output=True, text=True,
                                timeout=600)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            raise KernelBuildError(f"{compiler} failed (exit {result.returncode}):\n{tail}")
        os.replace(partial, target)  # atomic: parallel builds (pytest -n) never load half a file
    except (OSError, subprocess.TimeoutExpired) as e:
        raise KernelBuildError(f"{compiler} could not run: {e}") from e
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    logging.info("built the one-pass moments kernel: %s", target)
    return target


def _library() -> Optional[ModuleType]:
    with _LOAD_LOCK:
        return _load_library()


@functools.cache
def _load_library() -> Optional[ModuleType]:
    try:
        return tf.load_op_library(str(build_library()))
    except (RuntimeError, tf.errors.OpError, OSError) as e:  # KernelBuildError, no home directory, bad .so
        logging.warning(
            "AdaptiveBN: cannot build its one-pass moments kernel (%s); using TensorFlow's fused batch-norm "
            "kernel instead (same numbers, ~8%% slower on CPU). Set %s=0 to skip this attempt.", e, SWITCH_ENV)
        return None


def _one_pass_kernel(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return _library().channel_moments(x)


def as_maps(x: tf.Tensor) -> tf.Tensor:
    """NHWC features as they are; dense features [n, C] as [n, 1, 1, C], the shape TF's fused kernels take."""
    return x if len(x.shape) == 4 else tf.reshape(x, [-1, 1, 1, x.shape[-1]])


def _fused_kernel_moments(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    channels = x.shape[-1]
    _, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(as_maps(x), tf.ones([channels]), tf.zeros([channels]),
                                                         is_training=True)
    if None in x.shape:
        count = tf.cast(tf.size(x) // channels, tf.float32)
    else:
        count = float(x.shape.num_elements() // channels)
    # The kernel reports the Bessel-corrected variance; adaptation uses the biased one.
    return mean, unbiased * ((count - 1.0) / count)
