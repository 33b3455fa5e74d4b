"""Helpers shared by the corruption tests: real MNIST digits, test images, the imagecorruptions
reference, and the statistics rules. Not a test module; the test modules import from here.
"""

import functools
import os

import numpy as np
import pytest
import tensorflow as tf

from lipnorm.data.idx import read_idx
from tests.conftest import mnist_subset_dir

# ------------------------------------------------------------------------------------------- images


@functools.lru_cache(maxsize=1)
def _mnist_train_images(path):
    return read_idx(os.path.join(path, "train-images-idx3-ubyte.gz"))


def mnist_digits(n, dtype=np.float64):
    """The first n real MNIST training digits, (n, 28, 28) of `dtype` in [0, 1].

    Skips (fails under LIPNORM_REQUIRE_DATA=1, as in CI) without the subset: tests.conftest.mnist_subset_dir.
    """
    return _mnist_train_images(mnist_subset_dir())[:n].astype(dtype) / 255.0


def levels(x):
    """Float images in [0, 1] as uint8 levels, rounded (float64)."""
    return np.round(np.asarray(x, np.float64) * 255.0)


def synthetic(n, size, channels=3, seed=0):
    """Smooth random colour images at uint8 levels, float32 in [0, 1] (no data needed)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, (n, 4, 4, channels)).astype(np.float32)
    images = tf.clip_by_value(tf.image.resize(coarse, (size, size), method="bicubic"), 0.0, 1.0)
    return np.round(images.numpy() * 255.0) / 255.0


def photo_like(n, size, seed=0):
    """uint8 (n, size, size, 3): real MNIST digits, upsampled and tinted, over smooth colour."""
    digits = mnist_digits(n, np.float32)[..., None]
    digits = tf.image.resize(digits, (size, size), method="bilinear").numpy()
    rng = np.random.default_rng(seed)
    background = synthetic(n, size, seed=seed + 1)
    tint = rng.uniform(0.0, 1.0, (n, 1, 1, 3))
    return np.round(np.clip(0.8 * background * (1.0 - digits) + tint * digits, 0.0, 1.0) * 255.0).astype(np.uint8)


def rgb_digits(digits, n, size, seed=0):
    """n deterministic uint8 RGB images: digits tinted on a tinted, gently graded background."""
    rng = np.random.default_rng(seed)
    fg = rng.uniform(0.3, 1.0, (n, 1, 1, 3)).astype(np.float32)
    bg = rng.uniform(0.0, 0.5, (n, 1, 1, 3)).astype(np.float32)
    x = tf.image.resize(digits[:n, :, :, None], (size, size), method="bilinear").numpy()
    yy, xx = np.mgrid[0:size, 0:size] / size
    grad = (0.3 * yy + 0.2 * xx)[None, :, :, None] * rng.uniform(-1, 1, (n, 1, 1, 3))
    return np.round(np.clip(bg + grad + x * (fg - bg), 0, 1) * 255).astype(np.uint8)


# ------------------------------------------------------------------------------------ contract


def assert_contract(fn, c, size, image_seed, deterministic):
    """fn(images, seed, c) traced for an unknown batch of (size, size) RGB and grey images: same shape,
    float32 in [0, 1], the same output for the same seed, another for another seed unless deterministic."""
    for channels in (3, 1):
        x = tf.random.stateless_uniform((3, size, size, channels), [image_seed, channels])
        f = tf.function(lambda x, s: fn(x, s, c),
                        input_signature=[tf.TensorSpec([None, size, size, channels]), tf.TensorSpec([2], tf.int32)])
        a = f(x, tf.constant([3, 4])).numpy()
        assert a.shape == x.shape and a.dtype == np.float32
        assert a.min() >= 0.0 and a.max() <= 1.0
        np.testing.assert_array_equal(a, f(x, tf.constant([3, 4])).numpy())
        assert np.array_equal(a, f(x, tf.constant([3, 5])).numpy()) == deterministic


def assert_maps_over_tf_data(corruptions, table):
    """Every corruption, with the table's severity-3 parameter, maps over a tf.data batch stream (2, 2, 1)."""
    ds = tf.data.Dataset.from_tensor_slices(tf.random.uniform((5, 32, 32, 3))).batch(2)
    for name, fn in corruptions.items():
        out = list(ds.map(lambda b, fn=fn, name=name: fn(b, tf.constant([1, 2]), table[name][2])))
        assert [o.shape[0] for o in out] == [2, 2, 1]


def mean_change(fn, x, params, seed):
    """mean |fn(x) - x| for each parameter in `params` (one per severity), with one seed."""
    return [float(tf.reduce_mean(tf.abs(fn(x, tf.constant(seed), c) - x))) for c in params]


def graph_and_eager_over_batches(fn, c, atol):
    """fn on 6 images, traced for an unknown batch (equal to eager within `atol`: Grappler may turn a
    division into a multiplication by the reciprocal) and mapped over tf.data batches of 4; returns
    (eager output, the mapped batches)."""
    images = synthetic(6, 32)
    seed = tf.constant([7, 8], tf.int32)
    graph = tf.function(lambda x: fn(x, seed, c), input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32)])
    eager = fn(tf.constant(images), seed, c).numpy()
    np.testing.assert_allclose(graph(tf.constant(images)).numpy(), eager, rtol=0, atol=atol)
    parts = [b.numpy() for b in tf.data.Dataset.from_tensor_slices(images).batch(4).map(lambda x: fn(x, seed, c))]
    assert [p.shape for p in parts] == [(4, 32, 32, 3), (2, 32, 32, 3)]
    return eager, parts


# ---------------------------------------------------------------------------- imagecorruptions


@pytest.fixture(scope="module")
def ic():
    """imagecorruptions' corruptions module, runnable on current numpy / scikit-image.

    Shims its two breakages on current libraries while the module's tests run: skimage's removed
    `multichannel` argument and numpy's removed `np.float_`.
    """
    pytest.importorskip("imagecorruptions", reason="fidelity reference: pip install imagecorruptions==1.1.2")
    import imagecorruptions.corruptions as icc
    import skimage.filters

    original = icc.gaussian

    def gaussian(*args, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return skimage.filters.gaussian(*args, **kwargs)

    had_float_ = hasattr(np, "float_")
    icc.gaussian = gaussian
    if not had_float_:
        np.float_ = np.float64
    yield icc
    icc.gaussian = original
    if not had_float_:
        del np.float_


def reference(ic, name, u8, severity, seeds):
    """imagecorruptions' `name` on each uint8 image, numpy seeded per image; float in [0, 255]."""
    from PIL import Image
    out = []
    for im, s in zip(u8, seeds):
        np.random.seed(s)
        out.append(np.clip(getattr(ic, name)(Image.fromarray(im), severity), 0, 255))
    return np.stack(out).astype(np.float64)


# ------------------------------------------------------------------------------- statistics rules


def truncated(x):
    """Our float output as the published uint8 files store it: np.uint8(x * 255) truncates."""
    return np.floor(np.asarray(x, np.float64) * 255.0 + 1e-3)


def level_diff(ours01, ref255):
    """Mean |difference| in uint8 levels after both are rounded to levels."""
    return float(np.abs(np.round(np.asarray(ours01, np.float64) * 255) - np.round(ref255)).mean())


def diff_stats(corrupted_levels, clean_u8):
    """Mean over images of the per-image mean and standard deviation of corrupted - clean."""
    d = (np.asarray(corrupted_levels, np.float64) - clean_u8).reshape(len(clean_u8), -1)
    return d.mean(axis=1).mean(), d.std(axis=1).mean()


def assert_level_stats_close(ours, ref, clean_u8):
    """The issue's rule on uint8 levels: per-image mean and std of (corrupted - clean) within 5 % of the reference's.

    For the mean, 5 % of the reference's mean or of its spread, whichever is larger:
    zero-mean noise has a mean near 0 where a relative bound means nothing.
    """
    m_o, s_o = diff_stats(ours, clean_u8)
    m_r, s_r = diff_stats(ref, clean_u8)
    assert abs(s_o - s_r) <= 0.05 * s_r, (s_o, s_r)
    assert abs(m_o - m_r) <= 0.05 * max(abs(m_r), s_r), (m_o, m_r, s_r)


def assert_stats_close(ours01, ref255, clean_u8, rel=0.05, abs_mean=0.5 / 255):
    """The 5 % rule: mean and std of (corrupted - clean) per image, averaged over the batch.

    Each average may instead lie within three standard errors of the other (two-sample, from the
    per-image spread): for some corruptions (fog's means) the spread between images is too wide
    for 5 % to be resolvable with a test-sized batch. Means near zero get an absolute floor of
    half a level (5 % of ~0 is no tolerance).
    """
    clean = clean_u8.astype(np.float64) / 255
    d_o = np.round(np.asarray(ours01, np.float64) * 255) / 255 - clean
    d_r = np.round(ref255) / 255 - clean
    n = len(d_o)
    for stat, floor in ((lambda d: d.mean(axis=(1, 2, 3)), abs_mean), (lambda d: d.std(axis=(1, 2, 3)), 0.0)):
        a, b = stat(d_o), stat(d_r)
        se = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / n)
        assert abs(a.mean() - b.mean()) <= max(rel * abs(b.mean()), floor, 3 * se), (a.mean(), b.mean(), se)


def assert_stats_match_reference(ic, fn, name, params, u8, severities, seed, first_reference_seed):
    """fn with the five-severity `params` on the uint8 images `u8` and seeds [seed, severity] has the
    per-image statistics of imagecorruptions' `name` with seeds first_reference_seed, +1, ... (ImageNet
    parameters, assert_stats_close)."""
    x = tf.constant(u8.astype(np.float32) / 255)
    for sev in severities:
        ours = fn(x, tf.constant([seed, sev]), params[sev - 1]).numpy()
        reference_seeds = range(first_reference_seed, first_reference_seed + len(u8))
        assert_stats_close(ours, reference(ic, name, u8, sev, reference_seeds), u8)
