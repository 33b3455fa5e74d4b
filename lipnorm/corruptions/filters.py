"""Shared image operations for the corruption families, batched and in-graph.

Images are float (batch, H, W, C) tensors; H and W must be known when the graph
is built (the batch size need not be). Filter kernels are constants built in
Python from the severity parameters when the graph is traced.

Border modes use scipy.ndimage's names; the equivalents elsewhere:

    ours       scipy.ndimage  OpenCV               skimage / np.pad  tf.pad
    'nearest'  'nearest'      BORDER_REPLICATE     'edge'            -
    'reflect'  'reflect'      BORDER_REFLECT       'symmetric'       'SYMMETRIC'
    'mirror'   'mirror'       BORDER_REFLECT_101   'reflect'         'REFLECT'
    'wrap'     'wrap'         BORDER_WRAP          'wrap'            -

(OpenCV's default border, used by cv2.filter2D, cv2.blur and cv2.GaussianBlur,
is BORDER_REFLECT_101 = 'mirror'; skimage.filters.gaussian defaults to 'nearest'.)
A pad wider than the image folds back into it as in scipy and OpenCV (a gather;
tf.pad where it can).

Speed on CPUs, where TF's depthwise convolution is slow for one kernel shared by
all channels: kernels up to 3 taps per axis are sums of shifted slices, longer
separable ones matmuls with banded matrices (measured faster than XLA-fused
slices, too; on long axes the band is cut into blocks, `banded_blocks`), large
2-D kernels an FFT. All are exact up to float32 rounding.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from lipnorm.errors import LipnormError

MODES = ("nearest", "reflect", "mirror", "wrap")


def channel_count(images: tf.Tensor, what: str) -> int:
    """C of a (batch, H, W, C) tensor of grayscale or RGB images; LipnormError unless C is 1 or 3."""
    if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
        raise LipnormError(f"{what} needs (batch, height, width, 1 or 3) images, got shape {images.shape}")
    return int(images.shape[-1])


def static_size(images: tf.Tensor, what: str, gray_or_rgb: bool = False) -> tuple[int, int]:
    """(H, W) of a (batch, H, W, C) tensor; LipnormError when unknown at trace time.

    gray_or_rgb: also require C = 1 or 3 (`channel_count`).
    """
    if gray_or_rgb:
        channel_count(images, what)
    if images.shape.rank != 4:
        raise LipnormError(f"{what} needs a (batch, height, width, channels) batch, got shape {images.shape}")
    h, w = images.shape[1], images.shape[2]
    if h is None or w is None:
        raise LipnormError(f"{what} needs the image height and width known when the graph is built, got {images.shape}")
    return int(h), int(w)


def border_indices(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of every position of a length-n axis padded by (before, after).

    Entry i of the result (0 <= i < before + n + after) is the index in [0, n)
    that the padded position i - before reads under `mode` (see the module doc).
    """
    if mode not in MODES:
        raise LipnormError(f"unknown border mode {mode!r}; known: {', '.join(MODES)}")
    i = np.arange(-before, n + after)
    if mode == "nearest":
        return np.clip(i, 0, n - 1)
    if mode == "wrap":
        return np.mod(i, n)
    if mode == "reflect":  # ... c b a | a b c ... (edge repeated)
        j = np.mod(i, 2 * n)
        return np.where(j < n, j, 2 * n - 1 - j)
    if n == 1:  # mirror of a single pixel
        return np.zeros_like(i)
    j = np.mod(i, 2 * n - 2)  # ... c b | a b c ... (edge not repeated)
    return np.where(j < n, j, 2 * n - 2 - j)


def pad(images: tf.Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> tf.Tensor:
    """Pads axes 1 and 2 of a (batch, H, W, C) tensor by border rule `mode`."""
    h, w = static_size(images, "padding")
    most = max(top, bottom, left, right)
    tf_mode = {"reflect": "SYMMETRIC", "mirror": "REFLECT"}.get(mode, "SYMMETRIC" if mode == "nearest" else None)
    limit = {"reflect": min(h, w), "mirror": min(h, w) - 1}.get(mode, 1)
    if tf_mode is not None and most <= limit:  # tf.pad's kernel is faster than a gather
        return tf.pad(images, [[0, 0], [top, bottom], [left, right], [0, 0]], mode=tf_mode)
    if top or bottom:
        images = tf.gather(images, border_indices(h, top, bottom, mode), axis=1)
    if left or right:
        images = tf.gather(images, border_indices(w, left, right, mode), axis=2)
    return images


def gaussian_kernel_1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage.gaussian_filter1d's kernel: exp(-x^2 / (2 sigma^2)), |x| <= int(truncate sigma + 0.5), sum 1."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / float(sigma)) ** 2)
    return k / k.sum()


def cv2_gaussian_kernel_1d(ksize: int, sigma: float) -> np.ndarray:
    """cv2.getGaussianKernel(ksize, sigma) for sigma > 0: exp(-(i - (ksize-1)/2)^2 / (2 sigma^2)), sum 1."""
    if sigma <= 0 or ksize % 2 != 1:
        raise LipnormError(f"cv2-style Gaussian kernels need an odd size and sigma > 0, got {ksize}, {sigma}")
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    k = np.exp(-(x**2) / (2.0 * float(sigma) ** 2))
    return k / k.sum()


def axis_matrix(n: int, kernel: np.ndarray, mode: str) -> np.ndarray:
    """The (n, n) matrix M of a 1-D correlation along an axis of length n: out = M @ x.

    out[o] = sum_t kernel[t] x[border(o + t - r)], r = len(kernel) // 2 (odd length, centred), the
    border rule folded into M so no padding is needed.
    """
    kernel = np.asarray(kernel, np.float64)
    r = len(kernel) // 2
    idx = border_indices(n, r, r, mode)
    m = np.zeros((n, n))
    for t, k in enumerate(kernel):
        np.add.at(m, (np.arange(n), idx[t:t + n]), k)
    return m.astype(np.float32)


def correlate1d(images: tf.Tensor, weights: np.ndarray, axis: int, mode: str) -> tf.Tensor:
    """scipy.ndimage.correlate1d along axis 1 (H) or 2 (W) of a (batch, H, W, C) tensor, in its own dtype.

    out[.., o, ..] = sum_t weights[t] x[.., border(o + t - r), ..], r = (len(weights) - 1) // 2 (odd
    length, centred), added up tap after tap as scipy does. mode: one of MODES, or 'constant' (zeros
    outside, scipy's cval 0). Unlike separable_filter, which is float32-fast (2-D slices, matmuls),
    this keeps float64 input in float64 (for callers that floor the result), filters one axis only
    and has the zero border; its float rounding is therefore not separable_filter's.
    """
    weights = np.asarray(weights, np.float64)
    r = (len(weights) - 1) // 2
    if r == 0:
        return images * tf.constant(weights[0], images.dtype)
    size = int(images.shape[axis])
    if mode == "constant":
        padding = [[0, 0], [0, 0], [0, 0], [0, 0]]
        padding[axis] = [r, r]
        padded = tf.pad(images, padding)
    else:
        padded = tf.gather(images, border_indices(size, r, r, mode), axis=axis)
    out = None
    for t, weight in enumerate(weights):
        tap = padded[:, t:t + size] if axis == 1 else padded[:, :, t:t + size]
        term = tap * tf.constant(weight, images.dtype)
        out = term if out is None else out + term
    return out


def gaussian_filter_axes(images: tf.Tensor, sigma: float, axes: tuple[int, ...] = (1, 2),
                         mode: str = "nearest", truncate: float = 4.0) -> tf.Tensor:
    """scipy.ndimage.gaussian_filter along `axes` (1 = H, 2 = W), one axis after the other by correlate1d.

    For callers that need float64, a single axis or mode 'constant'; otherwise gaussian_filter is
    faster (its numbers differ from these by float32 rounding).
    """
    k = gaussian_kernel_1d(sigma, truncate)
    for axis in axes:
        images = correlate1d(images, k, axis, mode)
    return images


def _slices_filter(images: tf.Tensor, kernel: np.ndarray, mode: str) -> tf.Tensor:
    # Small kernels: the sum of kh * kw shifted slices of the padded batch.
    kh, kw = kernel.shape
    h, w = static_size(images, "filtering")
    p = pad(images, kh // 2, kh // 2, kw // 2, kw // 2, mode)
    out = None
    for i in range(kh):
        for j in range(kw):
            if kernel[i, j] != 0:
                term = float(kernel[i, j]) * p[:, i:i + h, j:j + w, :]
                out = term if out is None else out + term
    return tf.zeros_like(images) if out is None else out


_BLOCK = 32  # output rows per block of a banded axis matrix (16-64 measured; 32 fastest at 224 px)


def banded_blocks(matrix: np.ndarray, block: int = _BLOCK) -> tuple[np.ndarray, np.ndarray] | None:
    """A banded (n, n) axis matrix cut into row blocks that each read one window of the input.

    Returns (windows, weights): windows (nb, L) int32, the L = block + 2 * bandwidth contiguous
    input rows that output rows [b * block, (b + 1) * block) read, and weights (nb, block, L)
    float32, their entries (rows past n are zero), so matrix @ x is the first n rows of
    weights @ x[windows]: L / n of the dense product's work. None where that does not pay
    (L > n / 2, e.g. every kernel on 32 px axes) or where a border rule ('wrap') reads
    outside a block's window.
    """
    n = matrix.shape[0]
    rows, cols = np.nonzero(matrix)
    bandwidth = int(np.max(np.abs(rows - cols))) if len(rows) else 0
    length = block + 2 * bandwidth
    if 2 * length > n:
        return None
    windows, weights = [], []
    for b in range(-(-n // block)):
        top = b * block
        part = np.zeros((block, n), np.float32)
        part[:min(block, n - top)] = matrix[top:top + block]
        start = min(max(top - bandwidth, 0), n - length)
        if np.any(part[:, :start]) or np.any(part[:, start + length:]):
            return None
        windows.append(np.arange(start, start + length, dtype=np.int32))
        weights.append(part[:, start:start + length])
    return np.stack(windows), np.stack(weights)


def _blocked_matmul(matrix: np.ndarray, blocks: tuple[np.ndarray, np.ndarray], x: tf.Tensor) -> tf.Tensor:
    # matrix @ x for x (n, R), one batched matmul over the row blocks of banded_blocks.
    windows, weights = blocks
    out = tf.matmul(tf.constant(weights, x.dtype), tf.gather(x, windows))  # (nb, block, R)
    return tf.reshape(out, tf.stack([-1, tf.shape(x)[1]]))[:matrix.shape[0]]


def _matmul_filter(images: tf.Tensor, pairs: list[tuple[np.ndarray, np.ndarray]], mode: str) -> tf.Tensor:
    # sum over (k_rows, k_cols) of the separable correlation, each axis a matmul with axis_matrix
    # (dense banded matrices: far faster on CPUs than TF's depthwise convolution for wide kernels).
    h, w = static_size(images, "filtering")
    c = images.shape[-1]
    n = tf.shape(images)[0]
    rows = [axis_matrix(h, k_rows, mode) for k_rows, _ in pairs]
    cols = [axis_matrix(w, k_cols, mode) for _, k_cols in pairs]
    blocked = [banded_blocks(m) for m in rows + cols]
    if all(b is not None for b in blocked):
        # Long axes: each axis in turn leads a (axis, everything else) matrix, and its band is
        # applied block by block (2x faster at 224 px for kernels up to 25 taps, the same values).
        ch = tf.shape(images)[3]
        x = tf.reshape(tf.transpose(images, [1, 0, 2, 3]), [h, -1])  # (H, B W C)
        out = None
        for q in range(len(pairs)):
            y = tf.reshape(_blocked_matmul(rows[q], blocked[q], x), tf.stack([h, n, w, ch]))
            y = tf.reshape(tf.transpose(y, [2, 1, 0, 3]), [w, -1])  # (W, B H C)
            y = _blocked_matmul(cols[q], blocked[len(pairs) + q], y)
            out = y if out is None else out + y
        return tf.transpose(tf.reshape(out, tf.stack([w, n, h, ch])), [1, 2, 0, 3])
    x = tf.reshape(tf.transpose(images, [0, 3, 1, 2]) if c != 1 else images, [-1, h, w])
    out = None
    for m_rows, m_cols in zip(rows, cols):
        y = tf.matmul(tf.constant(m_rows, images.dtype), x)
        y = tf.matmul(tf.reshape(y, [-1, w]), tf.constant(m_cols.T, images.dtype))
        out = y if out is None else out + y
    out = tf.reshape(out, tf.stack([n, c, h, w]) if c != 1 else tf.stack([n, h, w, 1]))
    return tf.transpose(out, [0, 2, 3, 1]) if c != 1 else out


def fft_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c 7^d >= n: a length whose FFT has only small prime factors."""
    m = max(int(n), 1)
    while True:  # 7-smooth numbers are dense: a few steps for any image size
        rest = m
        for p in (2, 3, 5, 7):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 1


def _pad_channels_first(images: tf.Tensor, r: int, s: int, mode: str) -> tf.Tensor:
    return tf.transpose(pad(images, r, r, s, s, mode), [0, 3, 1, 2])  # (n, C, h + 2r, w + 2s)


def _crop_channels_last(x: tf.Tensor, top: int, left: int, h: int, w: int) -> tf.Tensor:
    return tf.transpose(x[:, :, top:top + h, left:left + w], [0, 2, 3, 1])


# XLA fuses the border padding with the change to channels-first (and the crop with the change
# back) into one pass each: at 224 px that made defocus_blur 1.3x faster. The FFTs stay outside.
_pad_channels_first_compiled = tf.function(_pad_channels_first, jit_compile=True)
_crop_channels_last_compiled = tf.function(_crop_channels_last, jit_compile=True)


def _fft_filter(images: tf.Tensor, kernel: np.ndarray, mode: str) -> tf.Tensor:
    # Large kernels: pad by the border rule, then one circular convolution by FFT with the flipped
    # kernel; the circular wrap only reaches the padding (and the zeros past it), which is cropped
    # away. The FFT runs at a 7-smooth length: 224 px plus a 21-tap kernel is 244 = 4 x 61, and the
    # prime 61 made that FFT 1.4-1.7x slower than one at 245.
    h, w = static_size(images, "filtering")
    kh, kw = kernel.shape
    r, s = kh // 2, kw // 2
    fh, fw = fft_length(h + 2 * r), fft_length(w + 2 * s)
    flipped = np.zeros((fh, fw))
    flipped[:kh, :kw] = kernel[::-1, ::-1]
    spectrum = tf.constant(np.fft.rfft2(flipped).astype(np.complex64))
    padded = _pad_channels_first_compiled(images, r, s, mode)
    out = tf.signal.irfft2d(tf.signal.rfft2d(padded, fft_length=[fh, fw]) * spectrum, fft_length=[fh, fw])
    return _crop_channels_last_compiled(out, 2 * r, 2 * s, h, w)


def filter2d(images: tf.Tensor, kernel: np.ndarray, mode: str = "mirror") -> tf.Tensor:
    """cv2.filter2D(x, -1, kernel, borderType): correlation (kernel not flipped), anchor at the centre.

    out[y, x] = sum_{i, j} kernel[i, j] * x[border(y + i - kh // 2), border(x + j - kw // 2)], every
    channel alike; the default border is OpenCV's BORDER_REFLECT_101 ('mirror'). Kernel sides must be
    odd. Kernels up to 3 x 3 are summed as shifted slices, up to 7 x 7 split by SVD into their exact
    separable terms (two matmuls each), larger ones applied by FFT (as OpenCV does for large kernels).
    """
    kernel = np.asarray(kernel, np.float64)
    kh, kw = kernel.shape
    if kh % 2 != 1 or kw % 2 != 1:
        raise LipnormError(f"filter2d needs odd kernel sides, got {kernel.shape}")
    if kh <= 3 and kw <= 3:
        return _slices_filter(images, kernel, mode)
    if kh * kw > 49:
        return tf.cast(_fft_filter(tf.cast(images, tf.float32), kernel, mode), images.dtype)
    u, s, vt = np.linalg.svd(kernel)
    rank = max(1, int(np.sum(s > 1e-7 * s[0])))
    return _matmul_filter(images, [(u[:, q] * s[q], vt[q]) for q in range(rank)], mode)


def separable_filter(images: tf.Tensor, k_rows: np.ndarray, k_cols: np.ndarray, mode: str) -> tf.Tensor:
    """Correlation with k_rows along H and k_cols along W (odd lengths, centred), every channel alike."""
    k_rows, k_cols = np.asarray(k_rows, np.float64), np.asarray(k_cols, np.float64)
    if len(k_rows) <= 3 and len(k_cols) <= 3:
        return _slices_filter(images, np.outer(k_rows, k_cols), mode)
    return _matmul_filter(images, [(k_rows, k_cols)], mode)


def gaussian_filter(images: tf.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> tf.Tensor:
    """Gaussian blur over H and W with scipy.ndimage.gaussian_filter's kernel and border rule.

    With the defaults this is skimage.filters.gaussian(x, sigma, channel_axis=-1)
    (mode 'nearest', truncate 4): separable, radius int(4 sigma + 0.5) per axis.
    """
    k = gaussian_kernel_1d(sigma, truncate)
    return separable_filter(images, k, k, mode)


def box_filter(images: tf.Tensor, size: int, mode: str = "mirror") -> tf.Tensor:
    """cv2.blur(x, (size, size)): the mean over a size x size window (odd size), OpenCV's default border."""
    k = np.full(size, 1.0 / size)
    return separable_filter(images, k, k, mode)


def project(images: tf.Tensor, transforms: tf.Tensor, interpolation: str = "BILINEAR",
            fill_mode: str = "NEAREST", fill_value: float = 0.0) -> tf.Tensor:
    """Per-image projective warp: out[y, x] = in[(a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k].

    transforms: (batch, 8) float32 rows [a0, a1, a2, b0, b1, b2, c0, c1], k = c0 x + c1 y + 1,
    coordinates in pixels (x along W), as tf.raw_ops.ImageProjectiveTransformV3 (Keras' op).
    fill_mode: 'NEAREST' (replicate the edge), 'REFLECT', 'WRAP' or 'CONSTANT' (fill_value).
    """
    h, w = static_size(images, "a warp")
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=tf.cast(transforms, tf.float32), output_shape=tf.constant([h, w], tf.int32),
        fill_value=tf.constant(fill_value, tf.float32), interpolation=interpolation, fill_mode=fill_mode)


def center_zoom(images: tf.Tensor, factor: float) -> tf.Tensor:
    """clipped_zoom of make_imagenet_c.py / make_cifar_c.py: zoom into the centre, same size out.

    Per axis of size n: crop the centred m = ceil(n / factor) pixels starting at (n - m) // 2,
    resize them like scipy.ndimage.zoom(order=1) (corner pixels aligned: source coordinate
    i (m - 1) / (M - 1), TF's align_corners=True) to M = round(m * factor) pixels, and keep the
    centred n of them starting at (M - n) // 2. For the benchmark's tables this equals
    imagecorruptions' clipped_zoom, which keeps the first n (M - n <= 1 whenever factor < 1.5); for
    non-square images each axis has its own crop, as in imagecorruptions (Hendrycks' code assumes a
    square image).
    """
    h, w = static_size(images, "zoom")
    if factor == 1:
        return images
    ch, cw = int(math.ceil(h / float(factor))), int(math.ceil(w / float(factor)))
    top, left = (h - ch) // 2, (w - cw) // 2
    out_h, out_w = int(round(ch * float(factor))), int(round(cw * float(factor)))
    zoomed = tf.raw_ops.ResizeBilinear(images=images[:, top:top + ch, left:left + cw, :],
                                       size=tf.constant([out_h, out_w], tf.int32), align_corners=True,
                                       half_pixel_centers=False)
    trim_h, trim_w = (out_h - h) // 2, (out_w - w) // 2
    return tf.cast(zoomed[:, trim_h:trim_h + h, trim_w:trim_w + w, :], images.dtype)


def rgb_to_gray(images: tf.Tensor) -> tf.Tensor:
    """cv2.COLOR_RGB2GRAY luma: 0.299 R + 0.587 G + 0.114 B, keeping a channel axis of 1."""
    return tf.reduce_sum(images * tf.constant([0.299, 0.587, 0.114], images.dtype), axis=-1, keepdims=True)
