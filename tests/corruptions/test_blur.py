"""Blur corruptions: contract, severities, and fidelity to imagecorruptions / the published formulas.

Fidelity runs on real MNIST digits, tinted and upsampled to RGB. The reference is the
`imagecorruptions` package (ImageNet parameters) called here, with its two breakages on current
libraries shimmed (skimage's removed `multichannel`, numpy's removed `np.float_`); the CIFAR table
is checked against short re-derivations with scipy / skimage / OpenCV. Random corruptions are
compared with the same random numbers fed to both sides (exact up to float32), and on their own
randomness by the 5 % rule on per-image statistics.
"""

import numpy as np
import pytest
import tensorflow as tf

from lipnorm.corruptions import blur
from tests.corruptions.helpers import (  # noqa: F401 (ic is a fixture)
    assert_contract, assert_maps_over_tf_data, assert_stats_match_reference, ic, level_diff, mean_change,
    mnist_digits, reference, rgb_digits)

DETERMINISTIC = ("defocus_blur", "gaussian_blur", "zoom_blur")
TABLES = {"cifar": blur.CIFAR, "imagenet": blur.IMAGENET}


# ----------------------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def digits():
    """64 real MNIST digits in [0, 1], float32."""
    return mnist_digits(64, np.float32)


# ---------------------------------------------------------------------------------------- contract

def test_tables_have_five_severities():
    for table in TABLES.values():
        assert set(table) == set(blur.CORRUPTIONS)
        assert all(len(v) == 5 for v in table.values())
    assert len(blur.CIFAR["zoom_blur"][4]) == 26 and len(blur.IMAGENET["zoom_blur"][4]) == 11


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize("name", sorted(blur.CORRUPTIONS))
def test_contract(name, table):
    assert_contract(blur.CORRUPTIONS[name], TABLES[table][name][4], 32 if table == "cifar" else 48, 1,
                    name in DETERMINISTIC)


def test_tf_data_map():
    assert_maps_over_tf_data(blur.CORRUPTIONS, blur.CIFAR)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_severity_grows(digits, table):
    size = 32 if table == "cifar" else 64
    x = tf.constant(rgb_digits(digits, 8, size).astype(np.float32) / 255)
    for name, fn in blur.CORRUPTIONS.items():
        dist = mean_change(fn, x, TABLES[table][name], [0, 7])
        if name == "glass_blur":  # the published parameters are not ordered by strength
            assert dist[4] > dist[0] and dist[2] > dist[1]
        elif name == "motion_blur" and table == "cifar":  # (6, 2) and (8, 2): the extra taps weigh ~0
            assert all(b >= a - 1e-3 for a, b in zip(dist, dist[1:])) and dist[4] > dist[0]
        else:
            assert all(b > a for a, b in zip(dist, dist[1:])), (name, dist)


# ------------------------------------------------------------------------- deterministic fidelity

@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_match_imagecorruptions(ic, digits, name):
    for size, n in ((32, 4), (224, 2)):
        u8 = rgb_digits(digits, n, size, seed=1)
        x = tf.constant(u8.astype(np.float32) / 255)
        for sev in range(1, 6):
            ours = blur.CORRUPTIONS[name](x, tf.constant([0, 0]), blur.IMAGENET[name][sev - 1]).numpy()
            assert level_diff(ours, reference(ic, name, u8, sev, range(n))) <= 1.0, (name, size, sev)


def test_deterministic_match_cifar_formulas(digits):
    cv2 = pytest.importorskip("cv2", reason="defocus reference needs OpenCV")
    skimage_filters = pytest.importorskip("skimage.filters", reason="gaussian reference needs scikit-image")
    import scipy.ndimage as ndi

    u8 = rgb_digits(digits, 4, 32, seed=2)
    x01 = u8.astype(np.float64) / 255
    x = tf.constant(x01, tf.float32)

    def disk(radius, alias):  # make_cifar_c.py's disk(): aliased disk, then cv2.GaussianBlur
        grid = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)
        xx, yy = np.meshgrid(grid, grid)
        d = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
        return cv2.GaussianBlur(d / d.sum(), ksize=(3, 3) if radius <= 8 else (5, 5), sigmaX=alias)

    def zoom(img, z):
        ch = int(np.ceil(32 / z))
        top = (32 - ch) // 2
        out = ndi.zoom(img[top:top + ch, top:top + ch], (z, z, 1), order=1)
        t = (out.shape[0] - 32) // 2
        return out[t:t + 32, t:t + 32]

    for sev in range(1, 6):
        r, a = blur.CIFAR["defocus_blur"][sev - 1]
        k = disk(r, a)
        ref = np.stack([np.stack([cv2.filter2D(im[..., ch], -1, k) for ch in range(3)], -1) for im in x01])
        ours = blur.defocus_blur(x, None, (r, a)).numpy()
        assert level_diff(ours, np.clip(ref, 0, 1) * 255) <= 1.0

        s = blur.CIFAR["gaussian_blur"][sev - 1]
        ref = np.stack([skimage_filters.gaussian(im, sigma=s, channel_axis=-1) for im in x01])
        assert level_diff(blur.gaussian_blur(x, None, s).numpy(), np.clip(ref, 0, 1) * 255) <= 1.0

        zs = blur.CIFAR["zoom_blur"][sev - 1]
        ref = np.stack([(im + sum(zoom(im, z) for z in zs)) / (len(zs) + 1) for im in x01.astype(np.float32)])
        assert level_diff(blur.zoom_blur(x, None, zs).numpy(), np.clip(ref, 0, 1) * 255) <= 1.0


def test_disk_kernel_matches_opencv():
    cv2 = pytest.importorskip("cv2", reason="needs OpenCV")
    for radius, alias in blur.IMAGENET["defocus_blur"] + blur.CIFAR["defocus_blur"]:
        grid = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)
        xx, yy = np.meshgrid(grid, grid)
        d = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
        ref = cv2.GaussianBlur(d / d.sum(), ksize=(3, 3) if radius <= 8 else (5, 5), sigmaX=alias)
        ours = blur.disk_kernel(radius, alias)
        c, h = ref.shape[0] // 2, ours.shape[0] // 2
        np.testing.assert_allclose(ours, ref[c - h:c + h + 1, c - h:c + h + 1], atol=1e-7)
        assert ref.sum() == pytest.approx(ours.sum(), abs=1e-6)  # nothing outside was dropped


# ------------------------------------------------------------------------------------ motion blur

def test_motion_blur_matches_imagecorruptions_given_angle(ic, digits):
    for size, n in ((32, 3), (224, 2)):
        u8 = rgb_digits(digits, n, size, seed=3)
        x = tf.constant(u8.astype(np.float32) / 255)
        angles = []
        for s in range(n):  # imagecorruptions' motion_blur draws its angle first
            np.random.seed(s)
            angles.append(np.random.uniform(-45, 45))
        for sev in range(1, 6):
            radius, sigma = blur.IMAGENET["motion_blur"][sev - 1]
            ours = blur.motion_blur_with_angles(x, radius, sigma, tf.constant(angles, tf.float32)).numpy()
            ref = reference(ic, "motion_blur", u8, sev, range(n))
            assert level_diff(np.clip(ours, 0, 1), ref) <= 1.0, (size, sev)


def test_motion_blur_statistics(ic, digits):
    # 224 px: on small images these kernels mostly repeat the edge, and the mean then swings with the angle.
    u8 = rgb_digits(digits, 20, 224, seed=4)
    assert_stats_match_reference(ic, blur.motion_blur, "motion_blur", blur.IMAGENET["motion_blur"], u8, (2, 4),
                                 seed=5, first_reference_seed=100)


# ------------------------------------------------------------------------------------- glass blur

def _sequential_glass_pass(img, deltas, d):
    # The reference's loop on an (H, W, C) array: `x[p], x[q] = x[q], x[p]` with views copies x[q] to x[p].
    h, w = img.shape[:2]
    img = img.copy()
    for hh in range(h - d, d, -1):
        for ww in range(w - d, d, -1):
            dy, dx = deltas[hh, ww]
            img[hh, ww], img[hh + dy, ww + dx] = img[hh + dy, ww + dx], img[hh, ww]
    return img


# glass_blur runs the XLA-compiled glass_sources; both must be the sequential loop.
SOURCES = [blur.glass_sources, blur._glass_sources_compiled]


@pytest.mark.parametrize("sources", SOURCES, ids=["graph", "xla"])
@pytest.mark.parametrize("h,w,d", [(12, 10, 1), (20, 17, 2), (32, 32, 4), (9, 9, 4)])
def test_glass_sources_are_the_sequential_loop(h, w, d, sources):
    rng = np.random.default_rng(h + d)
    deltas = rng.integers(-d, d, size=(3, h, w, 2)).astype(np.int32)
    src = sources(tf.constant(deltas), h, w, d).numpy()
    for b in range(3):
        ids = np.repeat(np.arange(h * w).reshape(h, w, 1), 3, axis=2)
        np.testing.assert_array_equal(_sequential_glass_pass(ids, deltas[b], d)[..., 0].ravel(), src[b])


@pytest.mark.parametrize("sources", SOURCES, ids=["graph", "xla"])
def test_glass_sources_follow_long_chains(sources):
    # Every pixel reads its right neighbour, visited later: chains span the row (7 doublings, not 0-4).
    h, w, d = 6, 70, 2
    deltas = np.zeros((1, h, w, 2), np.int32)
    deltas[..., 1] = 1
    src = sources(tf.constant(deltas), h, w, d).numpy()
    ids = np.repeat(np.arange(h * w).reshape(h, w, 1), 3, axis=2)
    expected = _sequential_glass_pass(ids, deltas[0], d)[..., 0].ravel()
    np.testing.assert_array_equal(src[0], expected)
    assert expected.reshape(h, w)[3, d + 1] == 3 * w + w - d + 1, "the chain runs past the region's end"


def _glass_deltas(seeds, size, d, iterations):
    # imagecorruptions' draws: per pass, per visited pixel (rows, then columns, descending) (dx, dy).
    out = [np.zeros((len(seeds), size, size, 2), np.int32) for _ in range(iterations)]
    m = len(range(size - d, d, -1))
    for b, s in enumerate(seeds):
        np.random.seed(s)
        for it in range(iterations):
            draws = np.random.randint(-d, d, size=(m, m, 2))
            out[it][b, d + 1:size - d + 1, d + 1:size - d + 1] = draws[::-1, ::-1, ::-1]
    return [tf.constant(v) for v in out]


def test_glass_blur_matches_imagecorruptions_given_offsets(ic, digits):
    u8 = rgb_digits(digits, 2, 32, seed=5)
    x = tf.constant(u8.astype(np.float32) / 255)
    for sev in range(1, 6):
        sigma, d, iterations = blur.IMAGENET["glass_blur"][sev - 1]
        ours = blur.glass_blur_with_deltas(x, sigma, _glass_deltas([0, 1], 32, d, iterations), d).numpy()
        assert level_diff(ours, reference(ic, "glass_blur", u8, sev, [0, 1])) <= 0.1, sev


def test_glass_blur_statistics(ic, digits):
    u8 = rgb_digits(digits, 16, 32, seed=6)
    assert_stats_match_reference(ic, blur.glass_blur, "glass_blur", blur.IMAGENET["glass_blur"], u8, (1, 5),
                                 seed=6, first_reference_seed=200)


def test_glass_blur_region_is_the_image():
    # For max_delta 1 the reference visits rows and columns 2 .. 31 of a 32-pixel image
    # (range(32 - 1, 1, -1)); with every offset (-1, -1) each visited pixel copies the original
    # pixel up-left of it, and everything else stays.
    src = blur.glass_sources(tf.fill([1, 32, 32, 2], -1), 32, 32, 1).numpy().reshape(32, 32)
    ids = np.arange(1024).reshape(32, 32)
    np.testing.assert_array_equal(src[2:, 2:], ids[2:, 2:] - 33)
    np.testing.assert_array_equal(src[:2], ids[:2])
    np.testing.assert_array_equal(src[:, :2], ids[:, :2])
