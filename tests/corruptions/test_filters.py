"""lipnorm.corruptions.filters against numpy / scipy re-derivations."""

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import tensorflow as tf

from lipnorm.corruptions import filters
from lipnorm.errors import LipnormError

NP_PAD = {"nearest": "edge", "reflect": "symmetric", "mirror": "reflect", "wrap": "wrap"}


def _batch(shape, seed=0):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


@pytest.mark.parametrize("mode", sorted(NP_PAD))
@pytest.mark.parametrize("n,before,after", [(5, 2, 3), (4, 9, 7), (1, 2, 2)])
def test_border_indices_match_np_pad(mode, n, before, after):
    if mode == "mirror" and n == 1:
        expected = np.zeros(before + n + after, int)
    else:
        expected = np.pad(np.arange(n), (before, after), mode=NP_PAD[mode])
    np.testing.assert_array_equal(filters.border_indices(n, before, after, mode), expected)


def test_unknown_mode_and_unknown_size_raise():
    with pytest.raises(LipnormError, match="unknown border mode"):
        filters.border_indices(4, 1, 1, "reflect101")

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])])
    def f(x):
        return filters.gaussian_filter(x, 1.0)

    with pytest.raises(LipnormError, match="height and width known"):
        f.get_concrete_function()


@pytest.mark.parametrize("mode", ["nearest", "reflect", "mirror", "wrap"])
@pytest.mark.parametrize("sigma", [0.4, 1.0, 3.0, 6.0])
def test_gaussian_filter_matches_scipy(mode, sigma):
    x = _batch((2, 20, 27, 3))
    ours = filters.gaussian_filter(tf.constant(x), sigma, mode).numpy()
    ref = ndi.gaussian_filter(x.astype(np.float64), sigma=(0, sigma, sigma, 0), mode=mode, truncate=4.0)
    np.testing.assert_allclose(ours, ref, atol=2e-6)


@pytest.mark.parametrize("mode", ["nearest", "reflect", "mirror", "wrap"])
@pytest.mark.parametrize("sigma,channels", [(0.7, 3), (1.5, 1), (2.0, 3)])
def test_gaussian_filter_on_long_axes_matches_scipy(mode, sigma, channels):
    # 130 x 100 px: both bands are cut into blocks (130 leaves a partial last block), except
    # under 'wrap', whose folded taps fall outside the blocks' windows (the dense path).
    x = _batch((2, 130, 100, channels))
    k = filters.gaussian_kernel_1d(sigma)
    blocked = [filters.banded_blocks(filters.axis_matrix(n, k, mode)) is not None for n in (130, 100)]
    assert blocked == ([False, False] if mode == "wrap" else [True, True])
    ours = filters.gaussian_filter(tf.constant(x), sigma, mode).numpy()
    ref = ndi.gaussian_filter(x.astype(np.float64), sigma=(0, sigma, sigma, 0), mode=mode, truncate=4.0)
    np.testing.assert_allclose(ours, ref, atol=2e-6)


def test_banded_blocks_reproduce_the_matrix_product():
    m = filters.axis_matrix(224, filters.gaussian_kernel_1d(3.0), "nearest")
    windows, weights = filters.banded_blocks(m)
    assert windows.shape == (7, 32 + 2 * 12) and weights.shape == (7, 32, 32 + 2 * 12)
    x = np.random.default_rng(3).uniform(size=(224, 5))
    np.testing.assert_allclose(np.einsum("bkl,blr->bkr", weights, x[windows]).reshape(224, 5), m @ x, atol=1e-6)
    # No blocks where they would not pay (a band over half the axis) or not hold ('wrap').
    assert filters.banded_blocks(filters.axis_matrix(32, filters.gaussian_kernel_1d(1.0), "nearest")) is None
    assert filters.banded_blocks(filters.axis_matrix(224, filters.gaussian_kernel_1d(1.0), "wrap")) is None


def test_filter2d_low_rank_kernel_on_long_axes():
    kernel = np.random.default_rng(4).normal(size=(7, 7))  # rank 7: seven blocked separable terms
    x = _batch((2, 100, 96, 1))
    ours = filters.filter2d(tf.constant(x), kernel, "mirror").numpy()
    ref = ndi.correlate(x[..., 0].astype(np.float64), kernel[None], mode="mirror")[..., None]
    np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 3), (7, 7), (5, 9), (9, 11), (21, 21)])
@pytest.mark.parametrize("mode", ["mirror", "nearest"])
def test_filter2d_is_correlation_with_border(shape, mode):
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=shape)
    x = _batch((2, 16, 19, 1))
    ours = filters.filter2d(tf.constant(x), kernel, mode).numpy()
    ref = ndi.correlate(x[..., 0].astype(np.float64), kernel[None], mode=mode)[..., None]
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_fft_length_is_the_smallest_7_smooth_length():
    def smooth(m):
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 1100):
        assert filters.fft_length(n) == next(m for m in range(n, 2 * n + 1) if smooth(m)), n
    assert filters.fft_length(244) == 245  # 224 px and defocus severity 5's 21-tap kernel
    assert [filters.fft_length(n) for n in (232, 2187, 4097)] == [240, 2187, 4116]  # 3^7; 2^2 3 7^3


def test_fft_filter_at_a_padded_length_is_exact():
    # 57 + 16 = 73 is prime, the FFT runs at 75 (and 61 + 16 = 77 at 80): the zeros past the
    # border padding must not leak into the crop.
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(17, 17))
    x = _batch((2, 57, 61, 3))
    ours = filters.filter2d(tf.constant(x), kernel, "mirror").numpy()
    ref = ndi.correlate(x.astype(np.float64), kernel[None, :, :, None], mode="mirror")
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_box_filter_and_rgb():
    x = _batch((2, 9, 11, 3))
    ours = filters.box_filter(tf.constant(x), 3).numpy()
    ref = ndi.uniform_filter(x.astype(np.float64), size=(1, 3, 3, 1), mode="mirror")
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def _scipy_clipped_zoom(img, z):
    # Hendrycks' clipped_zoom, per axis: centre crop ceil(n / z), scipy zoom order 1, centre trim.
    h, w = img.shape[:2]
    ch, cw = math.ceil(h / z), math.ceil(w / z)
    top, left = (h - ch) // 2, (w - cw) // 2
    out = ndi.zoom(img[top:top + ch, left:left + cw], (z, z, 1), order=1)
    t, l_ = (out.shape[0] - h) // 2, (out.shape[1] - w) // 2
    return out[t:t + h, l_:l_ + w]


@pytest.mark.parametrize("size,z", [((32, 32), 1.06), ((32, 32), 2.25), ((24, 40), 1.3), ((224, 224), 4.5)])
def test_center_zoom_matches_scipy_zoom(size, z):
    x = _batch((2,) + size + (3,))
    ours = filters.center_zoom(tf.constant(x), z).numpy()
    for b in range(2):
        np.testing.assert_allclose(ours[b], _scipy_clipped_zoom(x[b].astype(np.float64), z), atol=2e-6)


def test_axis_matrix_is_the_correlation():
    k = np.array([0.1, 0.2, 0.4, 0.3, 0.05])
    x = np.random.default_rng(2).uniform(size=11)
    for mode in ("nearest", "mirror"):
        ref = ndi.correlate1d(x, k, mode=mode)
        np.testing.assert_allclose(filters.axis_matrix(11, k, mode) @ x, ref, atol=1e-6)


@pytest.mark.parametrize("mode", ["nearest", "reflect", "mirror", "wrap", "constant"])
@pytest.mark.parametrize("axis", [1, 2])
def test_correlate1d_matches_scipy_in_float64(mode, axis):
    x = np.random.default_rng(3).uniform(size=(2, 6, 9, 2))
    k = np.array([0.1, -0.2, 0.4, 0.3, 0.05, 0.2, 0.15])  # wider than the 6-pixel axis
    ours = filters.correlate1d(tf.constant(x), k, axis, mode)
    assert ours.dtype == tf.float64
    np.testing.assert_allclose(ours.numpy(), ndi.correlate1d(x, k, axis=axis, mode=mode), atol=1e-14)
    sigma_only_rows = filters.gaussian_filter_axes(tf.constant(x), 0.8, (1,), mode)
    np.testing.assert_allclose(sigma_only_rows.numpy(), ndi.gaussian_filter1d(x, 0.8, axis=1, mode=mode), atol=1e-14)


def test_gray_or_rgb_check():
    with pytest.raises(LipnormError, match="1 or 3"):
        filters.static_size(tf.zeros([1, 4, 4, 2]), "x", gray_or_rgb=True)
    assert filters.static_size(tf.zeros([1, 4, 5, 2]), "x") == (4, 5)
    assert filters.channel_count(tf.zeros([1, 4, 5, 3]), "x") == 3
