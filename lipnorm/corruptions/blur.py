"""Blur corruptions of CIFAR-10-C / ImageNet-C as batched, seedable TF ops.

defocus_blur, glass_blur, motion_blur, zoom_blur (the benchmark's 15) and
gaussian_blur (held out), each fn(images, seed, c) on float32 (batch, H, W, C)
images in [0, 1] with C = 1 or 3, c one entry of `CIFAR` or `IMAGENET`.
Formulas follow Hendrycks' make_cifar_c.py / make_imagenet_c.py
(hendrycks/robustness, ImageNet-C/create_c/) and, for any image size and the
ImageMagick-free motion blur, bethgelab/imagecorruptions 1.1.2
(imagecorruptions/corruptions.py). Each function's docstring states where we
differ. H and W must be known when the graph is built.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import tensorflow as tf

from lipnorm.corruptions import filters


def _arange(start: float, stop: float, step: float) -> tuple[float, ...]:
    # The zoom factors exactly as np.arange makes them in the reference scripts.
    return tuple(float(z) for z in np.arange(start, stop, step))


# Severity tables. CIFAR: make_cifar_c.py (32 px); IMAGENET: make_imagenet_c.py (224 px), the
# same values as imagecorruptions' corruptions.py. One entry per severity 1..5, in each
# function's own argument order:
#   defocus_blur  (disk radius, anti-alias sigma)            defocus_blur()
#   glass_blur    (sigma, max_delta, iterations)             glass_blur()
#   motion_blur   (radius, sigma); angle ~ U(-45, 45) deg    motion_blur()
#   zoom_blur     zoom factors (np.arange as in the script)  zoom_blur()
#   gaussian_blur sigma                                      gaussian_blur()
CIFAR = {
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": (_arange(1, 1.06, 0.01), _arange(1, 1.11, 0.01), _arange(1, 1.16, 0.01),
                  _arange(1, 1.21, 0.01), _arange(1, 1.26, 0.01)),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1),
}
IMAGENET = {
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "zoom_blur": (_arange(1, 1.11, 0.01), _arange(1, 1.16, 0.01), _arange(1, 1.21, 0.02),
                  _arange(1, 1.26, 0.02), _arange(1, 1.31, 0.03)),
    "gaussian_blur": (1, 2, 3, 4, 6),
}

# Slack when flooring blurred values to uint8 levels (glass_blur): the reference computes in
# float64, we in float32, and a uniform region must land on its own level, not the one below.
_FLOOR_SLACK = 2e-3


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The reference's disk(): an anti-aliased, normalised disk, trimmed of its zero margin.

    The aliased disk is 1 where x^2 + y^2 <= radius^2 on the grid -8..8 (radius <= 8) or
    -radius..radius, divided by its sum, then cv2.GaussianBlur'd with a 3x3 (radius <= 8) or 5x5
    kernel of sigma alias_blur and OpenCV's default border (BORDER_REFLECT_101). Rows and
    columns that are zero on every side are dropped (they do not change the filtered image).
    """
    if radius <= 8:
        grid, ksize = np.arange(-8, 9), 3
    else:
        grid, ksize = np.arange(-int(radius), int(radius) + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    disk /= disk.sum()
    g = filters.cv2_gaussian_kernel_1d(ksize, alias_blur)
    r = ksize // 2
    padded = np.pad(disk.astype(np.float64), r, mode="reflect")  # numpy 'reflect' = BORDER_REFLECT_101
    rows = sum(g[i] * padded[i:i + disk.shape[0], :] for i in range(ksize))
    out = sum(g[j] * rows[:, j:j + disk.shape[1]] for j in range(ksize))
    out = out.astype(np.float32)
    nz = np.nonzero(out)
    c = out.shape[0] // 2
    half = int(max(np.abs(nz[0] - c).max(), np.abs(nz[1] - c).max()))
    return out[c - half:c + half + 1, c - half:c + half + 1]


def defocus_blur(images: tf.Tensor, seed: tf.Tensor, c: tuple[float, float]) -> tf.Tensor:
    """Defocus: clip(x * disk), the anti-aliased disk kernel of disk_kernel(radius, alias_blur).

    As the reference, cv2.filter2D per channel: correlation with BORDER_REFLECT_101. Deterministic
    (seed unused). Exact up to float32 rounding (and OpenCV's DFT path for large kernels).
    """
    del seed
    radius, alias = c
    return tf.clip_by_value(filters.filter2d(images, disk_kernel(radius, alias), "mirror"), 0.0, 1.0)


def gaussian_blur(images: tf.Tensor, seed: tf.Tensor, c: float) -> tf.Tensor:
    """Gaussian blur: clip(skimage.filters.gaussian(x, sigma=c)) - border 'nearest', truncate 4.

    Deterministic (seed unused); exact up to float32 rounding.
    """
    del seed
    return tf.clip_by_value(filters.gaussian_filter(images, float(c), "nearest", 4.0), 0.0, 1.0)


def zoom_blur(images: tf.Tensor, seed: tf.Tensor, c: tuple[float, ...]) -> tf.Tensor:
    """Zoom blur: clip((x + sum_z clipped_zoom(x, z)) / (len(c) + 1)) over the zoom factors z in c.

    clipped_zoom is filters.center_zoom (centre crop, scipy.ndimage.zoom order=1 resize, centre
    trim). Deterministic (seed unused); exact up to float32 rounding.
    """
    del seed
    total = images
    for z in c:
        total = total + filters.center_zoom(images, z)
    return tf.clip_by_value(total / float(len(c) + 1), 0.0, 1.0)


def motion_kernel(radius: int, sigma: float) -> np.ndarray:
    """Weights of the motion-blur taps 0 .. 2 radius: exp(-i^2 / (2 sigma^2)), normalised (one-sided)."""
    width = 2 * int(radius) + 1
    k = np.exp(-(np.arange(width, dtype=np.float64) ** 2) / (2.0 * float(sigma) ** 2))
    return k / k.sum()


# The tap loop of motion_blur is compiled with XLA, which fuses each tap's gather with its
# multiply-add: 2-9x faster on CPUs than TF's kernels one by one. One trace serves every shape
# (sizes are read at run time); XLA compiles once per concrete shape (~0.3 s). False: plain TF.
XLA_MOTION_TAPS = True


def _motion_taps(images: tf.Tensor, dx: tf.Tensor, dy: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    # sum_i weights[:, i] * images[clip(y + dy[:, i]), clip(x + dx[:, i])] for float32 images,
    # tap 0 being the image itself.
    shape = tf.shape(images)
    n, h, w = shape[0], shape[1], shape[2]
    flat = tf.reshape(images, tf.stack([-1, shape[3]]))
    base = (tf.range(n) * (h * w))[:, None, None]

    def body(i, acc):
        rows = tf.clip_by_value(tf.range(h)[None, :] + tf.gather(dy, i, axis=1)[:, None], 0, h - 1)
        cols = tf.clip_by_value(tf.range(w)[None, :] + tf.gather(dx, i, axis=1)[:, None], 0, w - 1)
        index = tf.reshape(base + rows[:, :, None] * w + cols[:, None, :], [-1])
        shifted = tf.reshape(tf.gather(flat, index), shape)
        return i + 1, acc + tf.gather(weights, i, axis=1)[:, None, None, None] * shifted

    first = weights[:, 0][:, None, None, None] * images
    return tf.while_loop(lambda i, acc: i < tf.shape(weights)[1], body, (tf.constant(1), first))[1]


_motion_taps_xla = tf.function(
    _motion_taps, jit_compile=True,
    input_signature=[tf.TensorSpec([None, None, None, None], tf.float32), tf.TensorSpec([None, None], tf.int32),
                     tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.float32)])


def motion_blur_with_angles(images: tf.Tensor, radius: int, sigma: float, angles: tf.Tensor) -> tf.Tensor:
    """imagecorruptions' _motion_blur (ImageMagick's MotionBlurImage kernel) with per-image angles.

    out[y, x] = sum_i k_i in[y + ceil(i sin(a) - 1/2), x + ceil(i cos(a) - 1/2)], k = motion_kernel,
    i = 0 .. 2 radius, pixels outside repeat the edge, a in degrees per image (batch,). Taps from
    the first that leaves the image (|offset| >= H or W) on are dropped without renormalising, as in
    the reference. Unclipped. The taps run in a graph loop, one gather each (XLA-compiled when
    XLA_MOTION_TAPS), so the graph stays small for wide kernels. MNIST-C's ImageMagick blur
    (mnist_c.motion_blur_with_angles) shares the kernel but repeats the edge for every tap instead of
    dropping taps, as ImageMagick itself does; its offsets and sums round differently, so it is kept apart.
    """
    h, w = filters.static_size(images, "motion_blur")
    k = tf.constant(motion_kernel(radius, sigma), tf.float32)
    a = tf.cast(angles, tf.float32) * (math.pi / 180.0)
    taps = tf.range(k.shape[0], dtype=tf.float32)[None, :]
    dy = tf.math.ceil(taps * tf.sin(a)[:, None] - 0.5)  # (batch, taps)
    dx = tf.math.ceil(taps * tf.cos(a)[:, None] - 0.5)
    weights = tf.where((tf.abs(dy) < h) & (tf.abs(dx) < w), k[None, :], 0.0)
    run = _motion_taps_xla if XLA_MOTION_TAPS else _motion_taps
    out = run(tf.cast(images, tf.float32), tf.cast(dx, tf.int32), tf.cast(dy, tf.int32), weights)
    return tf.cast(out, images.dtype)


def motion_blur(images: tf.Tensor, seed: tf.Tensor, c: tuple[int, float]) -> tf.Tensor:
    """Motion blur along a random direction: angle ~ U(-45, 45) degrees per image.

    The kernel is imagecorruptions' port of ImageMagick's MotionBlurImage (motion_blur_with_angles),
    for both tables; given the angles it matches imagecorruptions exactly. Hendrycks' scripts call
    ImageMagick itself (Wand, not installed here to compare), which reads and writes 8-bit PNGs.
    """
    radius, sigma = c
    n = tf.shape(images)[0:1]
    angles = tf.random.stateless_uniform(n, seed, minval=-45.0, maxval=45.0)
    return tf.clip_by_value(motion_blur_with_angles(images, int(radius), float(sigma), angles), 0.0, 1.0)


def glass_sources(deltas: tf.Tensor, h: int, w: int, d: int) -> tf.Tensor:
    """Where every pixel reads from after one pass of the reference's local pixel 'swaps'.

    The reference visits (row, col) for row = H-d .. d+1 and col = W-d .. d+1 (descending,
    row-major) and executes `x[h, w], x[h', w'] = x[h', w'], x[h, w]` with (h', w') = (h + dy, w + dx),
    dx, dy ~ U{-d .. d-1}. On an (H, W, 3) numpy array x[h, w] is a view, so this statement COPIES
    x[h', w'] into x[h, w] and leaves x[h', w'] as it was (not a swap). Sequentially, pixel p then
    holds the original value of p' = p + delta_p, unless p' was already visited (inside the region and
    later in raster order: dy > 0, or dy = 0 and dx > 0), in which case it holds what p' ended with.
    That recursion is followed here by pointer doubling, which gives exactly the sequential result:
    at most log2(H W) gathers, stopping once the pointers no longer move (chains are short: 4 doublings
    for d = 2 at 224 px, none for d = 1, whose offsets never point later).

    deltas: int32 (batch, H, W, 2) offsets (dy, dx) for every pixel (those outside the visited region
    are ignored). Returns int32 (batch, H * W): the flat source index of every flat pixel.
    """
    rows = tf.range(h)[:, None] + tf.zeros([1, w], tf.int32)
    cols = tf.zeros([h, 1], tf.int32) + tf.range(w)[None, :]
    in_region = lambda r, q: (r >= d + 1) & (r <= h - d) & (q >= d + 1) & (q <= w - d)  # noqa: E731
    dy, dx = deltas[..., 0], deltas[..., 1]
    r2, c2 = rows + dy, cols + dx
    visited = in_region(rows, cols)[None]
    later = (dy > 0) | ((dy == 0) & (dx > 0))
    chain = visited & in_region(r2, c2) & later
    target = tf.where(visited, r2 * w + c2, rows * w + cols)
    n = tf.shape(deltas)[0]
    flat = tf.reshape(tf.range(h * w), [1, h * w]) + tf.zeros([n, 1], tf.int32)
    target = tf.reshape(target, [n, h * w])
    chain = tf.reshape(chain, [n, h * w])
    pointer = tf.where(chain, target, flat)  # follow the chain to the pixel whose value is final
    terminal = tf.where(chain, flat, target)  # an unchained pixel reads its target's original value

    def double(i, pointer, _):
        ahead = tf.gather(pointer, pointer, batch_dims=1)
        return i + 1, ahead, tf.reduce_any(ahead != pointer)

    limit = max(1, math.ceil(math.log2(h * w)))
    _, pointer, _ = tf.while_loop(lambda i, _, moving: moving & (i < limit), double,
                                  (tf.constant(0), pointer, tf.constant(True)))
    return tf.gather(terminal, pointer, batch_dims=1)


# XLA fuses the chain set-up and each doubling step's gather and test: 2.5-5x faster on a 2-core CPU
# than TF's kernels one by one (3.9 -> 1.4 ms per pass for four 224 px images at severity 3), the same
# integers. Compiled once per shape.
_glass_sources_compiled = tf.function(glass_sources, jit_compile=True)


def glass_blur_with_deltas(images: tf.Tensor, sigma: float, deltas: list[tf.Tensor], d: int) -> tf.Tensor:
    """glass_blur given its random offsets: one int32 (batch, H, W, 2) tensor of (dy, dx) per pass.

    x1 = floor(255 gaussian(x, sigma)) / 255 (skimage gaussian: border 'nearest', truncate 4; the
    reference's np.uint8 in the middle, with a slack of 2e-3 levels for float32), then one pass of
    local pixel copies per entry of deltas (glass_sources; d = max_delta sets the visited region,
    offsets lie in -d .. d-1), then clip(gaussian(x2, sigma)).
    """
    h, w = filters.static_size(images, "glass_blur")
    ch = images.shape[-1]
    x = filters.gaussian_filter(images, float(sigma), "nearest", 4.0)
    x = tf.floor(tf.clip_by_value(x, 0.0, 1.0) * 255.0 + _FLOOR_SLACK) / 255.0
    n = tf.shape(images)[0]
    flat = tf.reshape(x, [n, h * w, ch])
    for d_pass in deltas:
        flat = tf.gather(flat, _glass_sources_compiled(d_pass, h, w, int(d)), batch_dims=1)
    x = tf.reshape(flat, tf.shape(images))
    return tf.clip_by_value(filters.gaussian_filter(x, float(sigma), "nearest", 4.0), 0.0, 1.0)


def glass_blur(images: tf.Tensor, seed: tf.Tensor, c: tuple[float, int, int]) -> tf.Tensor:
    """Glass: Gaussian blur, floor to uint8 levels, `iterations` passes of local pixel copies, blur again.

    Per pass every pixel of the region reads a neighbour at (dy, dx) ~ U{-d .. d-1}^2 with the
    reference's sequential semantics (glass_sources: exact, not an approximation; same distribution,
    TF's random numbers); see glass_blur_with_deltas. The visited region is rows/cols d+1 .. size-d
    of the actual image (make_*_c.py hard-code 32 or 224; imagecorruptions uses the image size, as we
    do). imagecorruptions on a 2-D grayscale array swaps for real (scalar elements); we copy for every
    channel count, as the benchmark's RGB runs did.
    """
    sigma, d, iterations = float(c[0]), int(c[1]), int(c[2])
    h, w = filters.static_size(images, "glass_blur")
    n = tf.shape(images)[0]
    deltas = [tf.random.stateless_uniform(tf.stack([n, h, w, 2]), tf.random.experimental.stateless_fold_in(seed, it),
                                          minval=-d, maxval=d, dtype=tf.int32)
              for it in range(iterations)]
    return glass_blur_with_deltas(images, sigma, deltas, d)


CORRUPTIONS: dict[str, Callable[[tf.Tensor, tf.Tensor, object], tf.Tensor]] = {
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "gaussian_blur": gaussian_blur,
}
