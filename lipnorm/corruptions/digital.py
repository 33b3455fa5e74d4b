"""Digital corruptions of CIFAR-10-C and ImageNet-C as batched, seedable TF ops.

Hendrycks & Dietterich (2019): brightness, contrast, saturate, pixelate,
jpeg_compression and elastic_transform. Every function follows the family contract
of `lipnorm.corruptions`: fn(images, seed, c) on float32 (batch, H, W, C) batches in
[0, 1] with C = 1 or 3 and a stateless seed of shape [2]; only elastic_transform is
random. Grayscale batches go through the colour corruptions (brightness, saturate,
jpeg_compression) as three equal channels and come back as the mean of the three.

Filter and resampling matrices are constants built in Python when the graph is
traced, so pixelate and elastic_transform need H and W known then (the batch size
need not be).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from lipnorm.corruptions import filters
from lipnorm.errors import LipnormError

# make_cifar_c.py (hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py), the
# `c = [...]` list at the top of each function of the same name; elastic_transform's
# entries are (alpha, sigma, affine range) in pixels, written as there with IMSIZE = 32.
CIFAR: dict[str, tuple[Any, ...]] = {
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "elastic_transform": (
        (32 * 0, 32 * 0, 32 * 0.08),
        (32 * 0.05, 32 * 0.2, 32 * 0.07),
        (32 * 0.08, 32 * 0.06, 32 * 0.06),
        (32 * 0.1, 32 * 0.04, 32 * 0.05),
        (32 * 0.1, 32 * 0.03, 32 * 0.03),
    ),
}

# make_imagenet_c.py (hendrycks/robustness, ImageNet-C/create_c/make_imagenet_c.py),
# same functions. elastic_transform is written as there, with 244 where 224 was meant
# (the file's own comment: "244 should have been 224, but ultimately nothing is
# incorrect"); the published ImageNet-C was made with these values.
IMAGENET: dict[str, tuple[Any, ...]] = {
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "jpeg_compression": (25, 18, 15, 10, 7),
    "elastic_transform": (
        (244 * 2, 244 * 0.7, 244 * 0.1),
        (244 * 2, 244 * 0.08, 244 * 0.2),
        (244 * 0.05, 244 * 0.01, 244 * 0.02),
        (244 * 0.07, 244 * 0.01, 244 * 0.02),
        (244 * 0.12, 244 * 0.01, 244 * 0.02),
    ),
}


def _as_rgb(fn: Callable[[tf.Tensor], tf.Tensor], images: tf.Tensor, what: str) -> tf.Tensor:
    """fn on RGB images; a grayscale batch is tiled to RGB and the result averaged back."""
    if filters.channel_count(images, what) == 3:
        return fn(images)
    return tf.reduce_mean(fn(tf.tile(images, [1, 1, 1, 3])), axis=-1, keepdims=True)


# --------------------------------------------------------------------------- colour


def brightness(images: tf.Tensor, seed: tf.Tensor, c: float) -> tf.Tensor:
    """In HSV: V <- clip(V + c, 0, 1), back to RGB.

    Reference: make_cifar_c.py / make_imagenet_c.py `brightness` (skimage
    rgb2hsv / hsv2rgb; tf.image uses the same hexcone model). Deterministic; the seed
    is unused. On gray (S = 0) this is clip(x + c), as imagecorruptions does for gray.
    """
    del seed
    images = tf.convert_to_tensor(images, tf.float32)
    return _as_rgb(lambda x: _brightness_rgb_compiled(x, float(c)), images, "brightness")


def _brightness_rgb(x: tf.Tensor, c: float) -> tf.Tensor:
    h, s, v = tf.unstack(tf.image.rgb_to_hsv(x), axis=-1)
    return tf.clip_by_value(tf.image.hsv_to_rgb(tf.stack([h, s, tf.clip_by_value(v + c, 0.0, 1.0)], axis=-1)),
                            0.0, 1.0)


def saturate(images: tf.Tensor, seed: tf.Tensor, c: tuple[float, float]) -> tf.Tensor:
    """In HSV: S <- clip(S c[0] + c[1], 0, 1), back to RGB.

    Reference: make_cifar_c.py / make_imagenet_c.py `saturate` (skimage rgb2hsv /
    hsv2rgb). Deterministic; the seed is unused. Grayscale: the three equal channels
    have hue 0 (red), so c[1] > 0 tints them red; we return the mean of the three
    channels (imagecorruptions returns the red one, i.e. the unchanged gray).
    """
    del seed
    images = tf.convert_to_tensor(images, tf.float32)
    return _as_rgb(lambda x: _saturate_rgb_compiled(x, float(c[0]), float(c[1])), images, "saturate")


def _saturate_rgb(x: tf.Tensor, scale: float, shift: float) -> tf.Tensor:
    h, s, v = tf.unstack(tf.image.rgb_to_hsv(x), axis=-1)
    s = tf.clip_by_value(s * scale + shift, 0.0, 1.0)
    return tf.clip_by_value(tf.image.hsv_to_rgb(tf.stack([h, s, v], axis=-1)), 0.0, 1.0)


def contrast(images: tf.Tensor, seed: tf.Tensor, c: float) -> tf.Tensor:
    """clip((x - m) c + m, 0, 1), m the mean of each image and channel over its pixels.

    Reference: make_cifar_c.py / make_imagenet_c.py `contrast`. Deterministic; the
    seed is unused. Exact up to float32 rounding.
    """
    del seed
    return _contrast_compiled(tf.convert_to_tensor(images, tf.float32), float(c))


def _contrast(images: tf.Tensor, c: float) -> tf.Tensor:
    means = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
    return tf.clip_by_value((images - means) * c + means, 0.0, 1.0)


# TF's RGB <-> HSV kernels are scalar loops; XLA lowers them to vectorized elementwise code and
# fuses the round trip with the clipping: brightness and saturate 2.8-3.7x faster through corrupt(),
# contrast 1.5x (32 and 224 px); a few values in 10^5 land one uint8 level apart (float32 rounding).
_brightness_rgb_compiled = tf.function(_brightness_rgb, jit_compile=True)
_saturate_rgb_compiled = tf.function(_saturate_rgb, jit_compile=True)
_contrast_compiled = tf.function(_contrast, jit_compile=True)


# ------------------------------------------------------------------------ pixelate


def pil_box_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of PIL's BOX resampling along one axis (Image.resize).

    Output pixel i averages the input pixels j whose centres fall in the box of width
    s = n_in / n_out around its centre (i + 1/2) s: -1/2 < (j + 1/2 - (i + 1/2) s) / s
    <= 1/2, restricted to PIL's rounded window [int(centre - s/2 + 1/2),
    int(centre + s/2 + 1/2)) -- whole pixels, unlike tf.image.resize 'area', which
    weighs partly covered pixels by their overlap. Computed in float64 in PIL's order of
    operations (libImaging/Resample.c, precompute_coeffs) so that ties fall the same way.
    For n_out > n_in (upscaling) every row holds a single 1 at floor((i + 1/2) n_in / n_out).
    """
    scale = float(n_in) / n_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    centre = (np.arange(n_out, dtype=np.float64)[:, None] + 0.5) * scale
    lo = np.maximum(np.trunc(centre - support + 0.5), 0)
    hi = np.minimum(np.trunc(centre + support + 0.5), n_in)
    j = np.arange(n_in, dtype=np.float64)[None, :]
    arg = (j - centre + 0.5) * (1.0 / filterscale)
    weights = ((arg > -0.5) & (arg <= 0.5) & (j >= lo) & (j < hi)).astype(np.float64)
    return weights / weights.sum(axis=1, keepdims=True)


def _pixelate_upsample(sums: tf.Tensor, counts: tf.Tensor, margin: float, rows: tf.Tensor,
                       cols: tf.Tensor) -> tf.Tensor:
    # (sh, B, sw, C) vertical window sums -> rounded levels -> (B, H, W, C) by pixel repetition.
    small = tf.floor(sums * (1.0 / counts)[:, None, None, None] + (0.5 + margin)) * (1.0 / 255.0)
    return tf.transpose(tf.gather(tf.gather(small, rows, axis=0), cols, axis=2), [1, 0, 2, 3])


# XLA fuses the rounding, both repetition gathers and the move back to batch-first into one pass
# over the output (the segment sums before it have no XLA kernel).
_pixelate_upsample_compiled = tf.function(_pixelate_upsample, jit_compile=True)


def pixelate(images: tf.Tensor, seed: tf.Tensor, c: float) -> tf.Tensor:
    """Box-average down to int(H c) x int(W c), then back up to H x W by pixel repetition.

    Reference: make_cifar_c.py / make_imagenet_c.py `pixelate`: PIL resize of the uint8
    image with Image.BOX down and Image.BOX up. We reproduce PIL exactly on images at
    uint8 levels. Each downscale pass is a sorted segment sum over PIL's BOX windows
    (`pil_box_matrix`). PIL does the horizontal pass, rounds to uint8 (half up), then
    the vertical pass and rounds again; so do we (sums of a few levels are exact in
    float32, and a margin of a quarter of the smallest step 1/n keeps ties rounding up
    when TF's division is off by an ulp). PIL's BOX upscale reads exactly one pixel per
    output pixel, floor((i + 1/2) n_small / n) -- which is also what imagecorruptions'
    NEAREST upscale reads -- so it is a gather. tf.image.resize 'area' would not do: it
    weighs partly covered pixels by their overlap (measured: mean 2-4 uint8 levels off
    at 32 px). Deterministic; the seed is unused. Not XLA-compilable as a whole
    (SegmentSum); its last step is.
    """
    del seed
    images = tf.convert_to_tensor(images, tf.float32)
    h, w = filters.static_size(images, "pixelate")
    sh, sw = int(h * c), int(w * c)
    if sh < 1 or sw < 1:
        raise LipnormError(f"pixelate with factor {c} needs images of at least {math.ceil(1 / c)} pixels a side, "
                           f"got {h}x{w}")

    def windows(n_in: int, n_out: int) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, float]:
        """(sources, window of each source, pixels per window, rounding margin) of one axis.

        For 32 and 224 px and the tables' factors PIL's windows partition the axis
        (sources = None: every pixel once, in order); for some other sizes they skip a
        pixel or share one, and the pass first gathers the pixels window by window.
        """
        member = pil_box_matrix(n_in, n_out) > 0
        window, source = np.nonzero(member)
        counts = member.sum(axis=1).astype(np.float32)
        if np.array_equal(source, np.arange(n_in)):
            source = None
        return source, window.astype(np.int32), counts, 0.25 / float(counts.max())

    # Each pass sums along the leading axis, so a segment sum adds whole (B, H, C) slabs: 1.7x
    # faster at 224 px than summing 3-value rows in (B, H, W, C) order.
    source, window, count_w, margin_w = windows(w, sw)
    x = tf.transpose(images, [2, 0, 1, 3])  # (W, B, H, C)
    x = x if source is None else tf.gather(x, source)
    sums = tf.math.segment_sum(x, window)  # (sw, B, H, C)
    levels = tf.floor(sums * (255.0 / count_w)[:, None, None, None] + (0.5 + margin_w))
    source, window, count_h, margin_h = windows(h, sh)
    x = tf.transpose(levels, [2, 1, 0, 3])  # (H, B, sw, C)
    x = x if source is None else tf.gather(x, source)
    rows = np.floor((np.arange(h) + 0.5) * (sh / h)).astype(np.int32)
    cols = np.floor((np.arange(w) + 0.5) * (sw / w)).astype(np.int32)
    return _pixelate_upsample_compiled(tf.math.segment_sum(x, window), count_h, margin_h, rows, cols)


# ---------------------------------------------------------------------------- jpeg


def jpeg_compression(images: tf.Tensor, seed: tf.Tensor, c: int) -> tf.Tensor:
    """Round trip through a baseline JPEG of quality c (4:2:0 chroma), per image.

    Reference: make_cifar_c.py / make_imagenet_c.py `jpeg_compression`: PIL
    save(format='JPEG', quality=c), then decode. We encode with tf.io.encode_jpeg (TF's
    libjpeg-turbo, same quantisation tables for a quality, 4:2:0 as PIL's default) and
    decode with the accurate integer DCT (PIL's libjpeg default; TF's default is the
    fast one). JPEG has no batched kernel: the round trip runs per image (tf.map_fn).
    The input is rounded to uint8 levels first, as the reference's is a uint8 image.
    Deterministic; the seed is unused.
    """
    del seed
    images = tf.convert_to_tensor(images, tf.float32)
    quality = int(c)

    def rgb(x: tf.Tensor) -> tf.Tensor:
        levels = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)

        def round_trip(image: tf.Tensor) -> tf.Tensor:
            data = tf.io.encode_jpeg(image, format="rgb", quality=quality)
            return tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")

        out = tf.map_fn(round_trip, levels, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
        return tf.reshape(tf.cast(out, tf.float32) / 255.0, tf.shape(x))

    out = _as_rgb(rgb, images, "jpeg_compression")
    out.set_shape(images.shape)
    return out


# ----------------------------------------------------------------------- elastic


def _fold_mirror(i: tf.Tensor, n: int) -> tf.Tensor:
    """Index folded into [0, n) as OpenCV's BORDER_REFLECT_101: ... c b | a b c ... (edge once)."""
    if n == 1:
        return tf.zeros_like(i)
    m = tf.math.floormod(i, 2 * n - 2)
    return tf.where(m < n, m, 2 * n - 2 - m)


def _fold_reflect(i: tf.Tensor, n: int) -> tf.Tensor:
    """Index folded into [0, n) as scipy.ndimage mode 'reflect': ... b a | a b ... (edge twice)."""
    m = tf.math.floormod(i, 2 * n)
    return tf.where(m < n, m, 2 * n - 1 - m)


def bilinear_sample(images: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor,
                    fold: Callable[[tf.Tensor, int], tf.Tensor]) -> tf.Tensor:
    """images (B, H, W, C) read at real positions rows, cols (B, H', W'), linear in each axis.

    The four neighbours of a position outside the image are folded back by `fold`
    (index, size) -> index, as scipy.ndimage.map_coordinates(order=1) and cv2.remap /
    warpAffine(INTER_LINEAR) extend the image by their border mode.
    """
    h, w = filters.static_size(images, "bilinear_sample")
    r0 = tf.floor(rows)
    c0 = tf.floor(cols)
    fr = (rows - r0)[..., None]
    fc = (cols - c0)[..., None]
    r0 = tf.cast(r0, tf.int32)
    c0 = tf.cast(c0, tf.int32)
    shape = tf.shape(images)
    # One flat gather per neighbour: row index b*H*W + r*W + c into (B*H*W, C).
    base = tf.reshape(tf.range(shape[0]) * (h * w), [-1, 1, 1])
    ra, rb = base + fold(r0, h) * w, base + fold(r0 + 1, h) * w
    ca, cb = fold(c0, w), fold(c0 + 1, w)
    flat = tf.reshape(images, tf.stack([-1, shape[3]]))
    top_left = tf.gather(flat, ra + ca)
    top = top_left + (tf.gather(flat, ra + cb) - top_left) * fc
    bottom_left = tf.gather(flat, rb + ca)
    bottom = bottom_left + (tf.gather(flat, rb + cb) - bottom_left) * fc
    return top + (bottom - top) * fr


# XLA fuses the index arithmetic, the four gathers and the interpolation into one pass over
# the pixels: on a 2-core CPU 4-5x faster than TF running them op by op (4.1 -> 0.8 ms for
# four 224 px RGB images; 1.1 -> 0.23 ms for 32 at 32 px), the same values to 1e-7. It
# compiles once per input shape, inside tf.data and tf.function alike.
_bilinear_sample_compiled = tf.function(bilinear_sample, jit_compile=True)


def _affine_points(h: int, w: int) -> np.ndarray:
    """The reference's three anchor points, as OpenCV (x, y) pairs.

    As in make_*_c.py: centre = (H // 2, W // 2), half side = min(H, W) // 3, and the
    points (centre + s), (centre[0] + s, centre[1] - s), (centre - s), with the row
    size in the x slot (the same for square images).
    """
    centre = np.array([h // 2, w // 2], np.float64)
    s = min(h, w) // 3
    return np.array([centre + s, [centre[0] + s, centre[1] - s], centre - s])


def elastic_transform_with_draws(images: tf.Tensor, shifts: tf.Tensor, noise_x: tf.Tensor,
                                 noise_y: tf.Tensor, c: tuple[float, float, float]) -> tf.Tensor:
    """elastic_transform for given random draws (see `elastic_transform`).

    shifts (B, 3, 2): the anchor points' offsets in OpenCV (x, y) order, uniform in
    [-c[2], c[2]]; noise_x, noise_y (B, H, W): the raw displacement noise, uniform in
    [-1, 1], for the column and the row coordinate.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    alpha, sigma, _ = (float(v) for v in c)
    h, w = filters.static_size(images, "elastic_transform")
    batch = tf.shape(images)[0]

    # 1. Random affine: warpAffine maps pts1 -> pts2, i.e. output (x, y) reads the input
    # at A (x, y, 1) with A the affine map pts2 -> pts1; solve for it per image.
    pts1 = tf.constant(_affine_points(h, w), tf.float64)
    pts2 = pts1 + tf.cast(shifts, tf.float64)
    lhs = tf.concat([pts2, tf.ones(tf.stack([batch, 3, 1]), tf.float64)], axis=-1)
    a = tf.cast(tf.linalg.solve(lhs, tf.broadcast_to(pts1, tf.shape(pts2))), tf.float32)  # (B, 3, 2) = A^T
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    grid = tf.constant(np.stack([xs, ys, np.ones_like(xs)], axis=-1).reshape(h * w, 3))
    src = tf.reshape(tf.einsum("pk,bkj->bpj", grid, a), tf.stack([batch, h, w, 2]))
    warped = _bilinear_sample_compiled(images, src[..., 1], src[..., 0], _fold_mirror)
    if alpha == 0.0:
        return tf.clip_by_value(warped, 0.0, 1.0)

    # 2. Smooth random displacement fields, then 3. resample at (y + dy, x + dx).
    kernel = filters.gaussian_kernel_1d(sigma, 3.0) if sigma > 1e-15 else np.ones(1)  # scipy: identity

    def smooth(noise: tf.Tensor) -> tf.Tensor:
        noise = tf.convert_to_tensor(noise, tf.float32)[..., None]
        return filters.separable_filter(noise, kernel, kernel, "reflect")[..., 0] * alpha

    dx, dy = smooth(noise_x), smooth(noise_y)
    out = _bilinear_sample_compiled(warped, ys[None] + dy, xs[None] + dx, _fold_reflect)
    return tf.clip_by_value(out, 0.0, 1.0)


def elastic_transform(images: tf.Tensor, seed: tf.Tensor, c: tuple[float, float, float]) -> tf.Tensor:
    """Random affine warp, then a smooth random displacement field; c = (alpha, sigma, affine range).

    Reference: make_cifar_c.py / make_imagenet_c.py `elastic_transform` (the two are
    the same procedure with different tables; imagecorruptions 1.1.2 ships a different
    one, without the affine step and with size-relative parameters):
    1. the three anchor points (`_affine_points`) move by uniform [-c[2], c[2]] offsets;
       the affine map through the three pairs warps the image (cv2.warpAffine, bilinear,
       BORDER_REFLECT_101);
    2. dx, dy = alpha * G_sigma * U(-1, 1) per pixel, G_sigma scipy's Gaussian filter
       with mode 'reflect' and truncate 3 (`filters.separable_filter`: a banded matrix
       product per axis, taps wider than the image folded back as scipy does);
    3. out(y, x) = warped(y + dy, x + dx), bilinear, scipy mode 'reflect'
       (map_coordinates order=1), clipped to [0, 1].
    All channels share the displacement, so grayscale needs no conversion. Given the
    same random draws (`elastic_transform_with_draws`) we match the OpenCV + scipy
    pipeline to within one uint8 level on under 0.01 % of the pixels (float32 here,
    float64 fields there). The draws come from TF's stateless RNG, so the images differ
    from the reference's draw for draw but not in distribution.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    h, w = filters.static_size(images, "elastic_transform")
    shifts, noise_x, noise_y = elastic_draws(tf.shape(images)[0], h, w, seed, c)
    return elastic_transform_with_draws(images, shifts, noise_x, noise_y, c)


def elastic_draws(batch: tf.Tensor, h: int, w: int, seed: tf.Tensor,
                  c: tuple[float, float, float]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """elastic_transform's random draws per image, as the reference makes them:
    anchor shifts (batch, 3, 2) uniform in [-c[2], c[2]], and two (batch, h, w) fields
    uniform in [-1, 1] (column then row displacement noise)."""
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    shifts = tf.random.stateless_uniform(tf.stack([batch, 3, 2]), seeds[0], -float(c[2]), float(c[2]))
    noise_x = tf.random.stateless_uniform(tf.stack([batch, h, w]), seeds[1], -1.0, 1.0)
    noise_y = tf.random.stateless_uniform(tf.stack([batch, h, w]), seeds[2], -1.0, 1.0)
    return shifts, noise_x, noise_y


CORRUPTIONS: dict[str, Callable[[tf.Tensor, tf.Tensor, Any], tf.Tensor]] = {
    "brightness": brightness,
    "contrast": contrast,
    "saturate": saturate,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
    "elastic_transform": elastic_transform,
}
