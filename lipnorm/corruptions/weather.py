"""Weather corruptions of CIFAR-10-C / ImageNet-C as batched, seedable TF ops.

snow, frost, fog (the benchmark's 15) and spatter (held out), each
fn(images, seed, c) on float32 (batch, H, W, C) images in [0, 1] with C = 1 or 3,
c one entry of `CIFAR` or `IMAGENET`. Formulas follow Hendrycks' make_cifar_c.py /
make_imagenet_c.py (hendrycks/robustness, ImageNet-C/create_c/) and, for any image
size, bethgelab/imagecorruptions 1.1.2 (imagecorruptions/corruptions.py). Each
function's docstring states where we differ. H and W must be known when the graph
is built. Grayscale input: the RGB-only steps use the luma of the colour (as
imagecorruptions does for 2-D images).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from lipnorm.corruptions import filters
from lipnorm.corruptions.blur import motion_blur_with_angles
from lipnorm.errors import LipnormError

# Severity tables. CIFAR: make_cifar_c.py (32 px); IMAGENET: make_imagenet_c.py (224 px), the same
# values as imagecorruptions' corruptions.py. One entry per severity 1..5, as each function takes it:
#   snow    (mean, std, zoom, threshold, blur radius, blur sigma, image weight)   snow()
#   frost   (image weight, frost weight, photo scale)                            frost()
#           the scale is ours: make_cifar_c.py shrinks the photos by 0.2 (cv2.resize), make_imagenet_c.py
#           uses them as they are
#   fog     (strength, wibble decay)                                             fog()
#   spatter (mean, std, sigma, threshold, intensity, 0 = water / 1 = mud)        spatter()
CIFAR = {
    "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
    "frost": ((1, 0.2, 0.2), (1, 0.3, 0.2), (0.9, 0.4, 0.2), (0.85, 0.4, 0.2), (0.75, 0.45, 0.2)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "spatter": ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
}
IMAGENET = {
    "snow": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
             (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
    "frost": ((1, 0.4, 1.0), (0.8, 0.6, 1.0), (0.7, 0.7, 1.0), (0.65, 0.7, 1.0), (0.6, 0.75, 1.0)),
    "fog": ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    "spatter": ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
                (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)),
}

_LUMA_SK = (0.2989, 0.5870, 0.1140)  # imagecorruptions' rgb2gray, used for grayscale spatter


def _fold(seed: tf.Tensor, k: int) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(seed, k)


def _to_gray(rgb_layer: tf.Tensor, weights=(0.299, 0.587, 0.114)) -> tf.Tensor:
    return tf.reduce_sum(rgb_layer * tf.constant(weights, rgb_layer.dtype), axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------- fog

def plasma_fractal_from_noise(noise: list[tf.Tensor], decay: float,
                              crop: tuple[int, int] | None = None) -> tf.Tensor:
    """Diamond-square height maps in [0, 1] from their uniform draws, as the reference's plasma_fractal.

    noise: per step k = 0, 1, .. (map side 2^(k+1)) three (n, 2^k, 2^k) tensors in [-1, 1): for the
    square centres, the horizontal and the vertical edge midpoints. The grid G known at step k
    (corners, starting from one zero) gets centres C = (sum of the 4 corners) / 4 + w^2 u and edge
    midpoints T (between horizontal corner neighbours) and L (vertical) = (their 2 corners + 2
    centres) / 4 + w^2 u, wrap-around neighbours as the reference's np.roll; the four interleave into
    the next grid; w starts at 100 and is divided by `decay` each step. Finally shifted and scaled to
    [0, 1] per map. Returns (n, 2^K, 2^K) for K steps; with crop = (h, w) its top-left (n, h, w)
    corner, still shifted and scaled by the whole map's minimum and maximum (the same numbers as
    cropping the full result; only that corner of the last step is interleaved).
    """
    g = tf.zeros_like(noise[0][:, :1, :1])
    wibble = 100.0
    steps = len(noise) // 3
    for k in range(steps):
        u_c, u_t, u_l = noise[3 * k:3 * k + 3]
        n, m_r, m_c = tf.shape(g)[0], 1 << k, 1 << k
        corners = g + tf.roll(g, -1, axis=1)
        corners = corners + tf.roll(corners, -1, axis=2)
        c = corners / 4 + wibble * wibble * u_c
        t = (c + tf.roll(c, 1, axis=1) + g + tf.roll(g, -1, axis=2)) / 4 + wibble * wibble * u_t
        l_ = (c + tf.roll(c, 1, axis=2) + g + tf.roll(g, -1, axis=1)) / 4 + wibble * wibble * u_l
        if crop is not None and k == steps - 1:
            parts = (g, t, l_, c)
            low = tf.reduce_min(tf.stack([tf.reduce_min(p, axis=[1, 2]) for p in parts]), axis=0)
            high = tf.reduce_max(tf.stack([tf.reduce_max(p, axis=[1, 2]) for p in parts]), axis=0)
            m_r, m_c = (crop[0] + 1) // 2, (crop[1] + 1) // 2
            g, t, l_, c = (p[:, :m_r, :m_c] for p in parts)
        top = tf.reshape(tf.stack([g, t], axis=-1), tf.stack([n, m_r, 2 * m_c]))
        bottom = tf.reshape(tf.stack([l_, c], axis=-1), tf.stack([n, m_r, 2 * m_c]))
        g = tf.reshape(tf.stack([top, bottom], axis=2), tf.stack([n, 2 * m_r, 2 * m_c]))
        wibble /= float(decay)
    if crop is not None:
        low, high = low[:, None, None], high[:, None, None]
        return (g[:, :crop[0], :crop[1]] - low) / (high - low)
    g = g - tf.reduce_min(g, axis=[1, 2], keepdims=True)
    return g / tf.reduce_max(g, axis=[1, 2], keepdims=True)


# XLA fuses the diamond-square steps (rolls, sums, interleaving: some 250 small ops at 256 px) into a
# few passes: fog 1.2-1.35x faster at 224 px, 1.7-1.8x at 32 px. Multiply-adds contract into one
# rounding, so a few values in 10^5 of fog's output land one uint8 level from the op-by-op result.
# Compiled once per (decay, crop) and input shape; the draws stay in TF (XLA's would differ).
_plasma_fractal_compiled = tf.function(plasma_fractal_from_noise, jit_compile=True)


def plasma_fractal(n: tf.Tensor, mapsize: int, decay: float, seed: tf.Tensor,
                   crop: tuple[int, int] | None = None) -> tf.Tensor:
    """n diamond-square height maps (n, mapsize, mapsize) in [0, 1], or their top-left crop; see
    plasma_fractal_from_noise (XLA-compiled here)."""
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise LipnormError(f"plasma_fractal needs a power-of-two map size >= 2, got {mapsize}")
    noise = []
    for k in range(mapsize.bit_length() - 1):
        shape = tf.stack([n, 1 << k, 1 << k])
        noise += [tf.random.stateless_uniform(shape, _fold(seed, 3 * k + j), -1.0, 1.0) for j in range(3)]
    return _plasma_fractal_compiled(noise, float(decay), crop)


def fog_with_map(images: tf.Tensor, plasma: tf.Tensor, a: float) -> tf.Tensor:
    """fog given its height maps (batch, H, W) in [0, 1]: clip((x + a P) max(x) / (max(x) + a)), max per image."""
    top = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value((images + a * plasma[..., None]) * top / (top + a), 0.0, 1.0)


def fog(images: tf.Tensor, seed: tf.Tensor, c: tuple[float, float]) -> tf.Tensor:
    """Fog: clip((x + a P) max(x) / (max(x) + a)), P a plasma fractal (plasma_fractal), max per image.

    The map side is the next power of two >= max(H, W), cropped to H x W from the top left
    (imagecorruptions; make_*_c.py: 256 cropped to 224, and 32). Same map on every channel.
    """
    a, decay = float(c[0]), float(c[1])
    h, w = filters.static_size(images, "fog")
    mapsize = 1 << max(1, (max(h, w) - 1).bit_length())
    return fog_with_map(images, plasma_fractal(tf.shape(images)[0], mapsize, decay, seed, (h, w)), a)


# --------------------------------------------------------------------------------------------- frost

_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
_FROST_MISSING = ("frost needs the benchmark's frost photographs: pip install 'lipnorm[frost]' "
                  "(they ship with the imagecorruptions package)")


@tf.autograph.experimental.do_not_convert  # plain file look-up: AutoGraph cannot read os / importlib and warns
def frost_photo_dir() -> str:
    """The `frost/` folder of the installed imagecorruptions package, found without importing it."""
    spec = importlib.util.find_spec("imagecorruptions")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in locations:
        folder = os.path.join(root, "frost")
        if all(os.path.isfile(os.path.join(folder, f)) for f in _FROST_FILES):
            return folder
    raise LipnormError(_FROST_MISSING)


def _rescale_photo(photo: tf.Tensor, fy: float, fx: float, out_h: int, out_w: int, method: str) -> tf.Tensor:
    """Resize a (h, w, 3) uint8 photo by (fy, fx) with cv2.resize's pixel mapping (centres, scale 1/f)."""
    p = tf.cast(photo, tf.float32)[None]
    if method == "linear":
        # cv2.INTER_LINEAR reads source (i + 0.5) / f - 0.5; for f = 0.2 those are whole pixels.
        t = tf.constant([[1 / fx, 0.0, 0.5 / fx - 0.5, 0.0, 1 / fy, 0.5 / fy - 0.5, 0.0, 0.0]], tf.float32)
        out = tf.raw_ops.ImageProjectiveTransformV3(  # filters.project, but to an output of another size
            images=p, transforms=t, output_shape=tf.constant([out_h, out_w], tf.int32),
            fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="NEAREST")
    else:  # bicubic upscaling (TF's Keys a = -0.5; cv2.INTER_CUBIC uses a = -0.75)
        out = tf.image.resize(p, [out_h, out_w], method="bicubic")
    return tf.cast(tf.clip_by_value(tf.round(out[0]), 0, 255), tf.uint8)


@functools.lru_cache(maxsize=8)
def _frost_bank(scale: float, h: int, w: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The five frost photos for images of (h, w), stacked (5, Hmax, Wmax, 3) uint8, and their (5, 2) sizes.

    scale 1: the photos as they are (make_imagenet_c.py), but a photo smaller than the image is
    enlarged as imagecorruptions does (by the factor that makes it cover the image, times 1.1).
    Other scales: cv2.resize(photo, fx=scale, fy=scale) (make_cifar_c.py's 0.2). Made once, eagerly.
    """
    folder = frost_photo_dir()
    with tf.init_scope():
        photos = []
        for name in _FROST_FILES:
            data = tf.io.read_file(os.path.join(folder, name))
            if name.endswith(".jpg"):  # libjpeg's accurate integer DCT, as cv2.imread
                p = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
            else:
                p = tf.io.decode_png(data, channels=3)
            ph, pw = int(p.shape[0]), int(p.shape[1])
            if scale != 1:
                p = _rescale_photo(p, scale, scale, int(round(ph * scale)), int(round(pw * scale)), "linear")
            ph, pw = int(p.shape[0]), int(p.shape[1])
            if ph < h or pw < w:
                f = max(h / ph, w / pw) * 1.1
                p = _rescale_photo(p, f, f, int(math.ceil(ph * f)), int(math.ceil(pw * f)), "cubic")
            photos.append(p)
        hmax = max(int(p.shape[0]) for p in photos)
        wmax = max(int(p.shape[1]) for p in photos)
        sizes = tf.constant([[int(p.shape[0]), int(p.shape[1])] for p in photos], tf.int32)
        bank = tf.stack([tf.pad(p, [[0, hmax - int(p.shape[0])], [0, wmax - int(p.shape[1])], [0, 0]])
                         for p in photos])
    return bank, sizes


def frost_crops(n: tf.Tensor, h: int, w: int, scale: float, seed: tf.Tensor,
                photos: tf.Tensor | None = None) -> tf.Tensor:
    """n random (h, w) crops of the frost photos, float32 RGB in [0, 1]: photo ~ U{frost1..frost5}
    (or the given int32 (n,) indices 0..4), top-left corner ~ U{0 .. size - crop - 1} per axis
    (numpy's randint(0, size - crop))."""
    bank, sizes = _frost_bank(float(scale), h, w)
    if photos is None:
        idx = tf.random.stateless_uniform(tf.reshape(n, [1]), _fold(seed, 0), 0, len(_FROST_FILES), tf.int32)
    else:
        idx = tf.cast(photos, tf.int32)
    room = tf.maximum(tf.gather(sizes, idx) - tf.constant([h, w], tf.int32), 1)
    u = tf.random.stateless_uniform(tf.stack([n, 2]), _fold(seed, 1))
    corner = tf.minimum(tf.cast(tf.floor(u * tf.cast(room, tf.float32)), tf.int32), room - 1)
    rows = corner[:, 0:1] + tf.range(h)[None]  # (n, h)
    cols = corner[:, 1:2] + tf.range(w)[None]  # (n, w)
    shape = tf.stack([n, h, w])
    index = tf.stack([tf.broadcast_to(idx[:, None, None], shape), tf.broadcast_to(rows[:, :, None], shape),
                      tf.broadcast_to(cols[:, None, :], shape)], axis=-1)
    return tf.cast(tf.gather_nd(bank, index), tf.float32) / 255.0


def frost_blend(images: tf.Tensor, crops: tf.Tensor, a: float, b: float) -> tf.Tensor:
    """frost given its RGB crops (batch, H, W, 3) in [0, 1]: clip(a x + b F) (F's luma when C = 1)."""
    if images.shape[-1] == 1:
        crops = _to_gray(crops)
    return tf.clip_by_value(a * images + b * crops, 0.0, 1.0)


def frost(images: tf.Tensor, seed: tf.Tensor, c: tuple[float, float, float]) -> tf.Tensor:
    """Frost: clip(a x + b F), F a random crop of one of the benchmark's photos frost1..frost5.

    c = (a, b, photo scale); see frost_crops and _frost_bank for the photo and crop. imagecorruptions
    always enlarges the photo by 1.1 (bicubic) before cropping; make_imagenet_c.py, which we follow,
    does not. Grayscale images get the crop's luma (imagecorruptions applies its luma weights to
    cv2's BGR order, i.e. to the wrong channels). Needs the imagecorruptions package for the photos:
    LipnormError otherwise, never a substitute.
    """
    a, b, scale = float(c[0]), float(c[1]), float(c[2])
    h, w = filters.static_size(images, "frost")
    return frost_blend(images, frost_crops(tf.shape(images)[0], h, w, scale, seed), a, b)


# ---------------------------------------------------------------------------------------------- snow

def snow_with_noise(images: tf.Tensor, noise: tf.Tensor, angles: tf.Tensor, c: tuple) -> tf.Tensor:
    """snow given its random parts: noise (batch, H, W, 1) standard normal, angles (batch,) in degrees."""
    mean, std, zoom, threshold, radius, sigma, weight = c
    layer = mean + std * noise
    layer = filters.center_zoom(layer, float(zoom))
    layer = tf.where(layer < threshold, 0.0, layer)
    layer = tf.clip_by_value(layer, 0.0, 1.0)
    layer = motion_blur_with_angles(layer, int(radius), float(sigma), angles)
    return _snow_blend_compiled(images, layer, float(weight))


def _snow_blend(images: tf.Tensor, layer: tf.Tensor, weight: float) -> tf.Tensor:
    layer = tf.round(layer * 255.0) / 255.0
    gray = images if images.shape[-1] == 1 else filters.rgb_to_gray(images)
    x = weight * images + (1.0 - weight) * tf.maximum(images, gray * 1.5 + 0.5)
    return tf.clip_by_value(x + layer + tf.reverse(layer, axis=[1, 2]), 0.0, 1.0)


# The rounding of the snow layer, the luma, the blend and the flipped second layer (some twelve
# elementwise passes op by op) as one XLA pass: snow 1.3-1.45x faster at 32 and 224 px. The same
# for fog's and frost's three-op blends measured no faster.
_snow_blend_compiled = tf.function(_snow_blend, jit_compile=True)


def snow(images: tf.Tensor, seed: tf.Tensor, c: tuple) -> tf.Tensor:
    """Snow: clip(x' + S + rot180(S)), x' = w x + (1 - w) max(x, 1.5 gray(x) + 0.5).

    S: N(mean, std) per pixel, clipped_zoom'ed by `zoom` (filters.center_zoom), values below the
    threshold set to 0, clipped to [0, 1], motion-blurred (imagecorruptions' kernel, radius, sigma,
    angle ~ U(-135, -45) degrees per image) and rounded to 1/255 levels, as imagecorruptions.
    gray = cv2's RGB2GRAY luma (the image itself when C = 1). See snow_with_noise. Differences:
    Hendrycks' scripts blur with ImageMagick itself and floor the layer to 8 bits before it;
    imagecorruptions blurs the zoomed layer before cropping it to H x W (a few border pixels differ
    from ours), and where the zoomed layer is 2+ pixels too large (zoom >= 1.5 on small images) it
    keeps the top-left part where Hendrycks' clipped_zoom, as ours, keeps the centre.
    """
    h, w = filters.static_size(images, "snow")
    n = tf.shape(images)[0]
    noise = tf.random.stateless_normal(tf.stack([n, h, w, 1]), _fold(seed, 0))
    angles = tf.random.stateless_uniform(tf.reshape(n, [1]), _fold(seed, 1), -135.0, -45.0)
    return snow_with_noise(images, noise, angles, c)


# ------------------------------------------------------------------------------------------- spatter

_TG22 = 13573  # OpenCV Canny: round(tan(22.5 deg) * 2^15)


def canny(gray_u8: tf.Tensor, low: float, high: float) -> tf.Tensor:
    """cv2.Canny(img, low, high) (aperture 3, L1 gradient) on a (B, H, W, 1) float tensor of 0..255 integers.

    Sobel gradients with replicated borders, magnitude |dx| + |dy|, OpenCV's non-maximum
    suppression (its tan 22.5 / 67.5 sectors in fixed point and its > / >= tie rules, zero
    magnitude outside), then hysteresis: pixels above `high` grow through 8-connected pixels above
    `low` (a while loop of 3x3 max pools until nothing changes). Returns a bool edge map.
    """
    filters.static_size(gray_u8, "canny")  # here, so the error is not raised inside the XLA trace
    return _hysteresis(*_canny_candidates_compiled(gray_u8, float(low), float(high)))


def _canny_candidates(gray_u8: tf.Tensor, low: float, high: float) -> tuple[tf.Tensor, tf.Tensor]:
    # Canny up to hysteresis: (weak, strong) bool maps of the pixels that survive non-maximum
    # suppression above `low` and above `high`. H and W are known (canny checked them).
    h, w = gray_u8.shape[1], gray_u8.shape[2]
    p = filters.pad(gray_u8, 1, 1, 1, 1, "nearest")
    smooth_y = p[:, :-2] + 2.0 * p[:, 1:-1] + p[:, 2:]  # (B, H, W + 2, 1)
    smooth_x = p[:, :, :-2] + 2.0 * p[:, :, 1:-1] + p[:, :, 2:]  # (B, H + 2, W, 1)
    gx = tf.cast(smooth_y[:, :, 2:] - smooth_y[:, :, :-2], tf.int32)
    gy = tf.cast(smooth_x[:, 2:] - smooth_x[:, :-2], tf.int32)
    ax, ay = tf.abs(gx), tf.abs(gy)
    mag = ax + ay
    mp = tf.pad(mag, [[0, 0], [1, 1], [1, 1], [0, 0]])

    def nb(dy: int, dx: int) -> tf.Tensor:  # magnitude at (y + dy, x + dx)
        return mp[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w, :]

    ys = ay * (1 << 15)
    tg22x = ax * _TG22
    horizontal = ys < tg22x
    vertical = ys > tg22x + ax * (1 << 16)
    # The two neighbours along the gradient: (0, -+1), (-+1, 0) or the diagonal by sign(dx) sign(dy).
    diag = tf.where(tf.equal(gx < 0, gy < 0), 1, -1)
    before = tf.where(horizontal, nb(0, -1), tf.where(vertical, nb(-1, 0),
                                                      tf.where(diag > 0, nb(-1, -1), nb(-1, 1))))
    after = tf.where(horizontal, nb(0, 1), tf.where(vertical, nb(1, 0), tf.where(diag > 0, nb(1, 1), nb(1, -1))))
    after_ok = tf.where(horizontal | vertical, mag >= after, mag > after)
    weak = (mag > int(math.floor(low))) & (mag > before) & after_ok
    return weak, weak & (mag > int(math.floor(high)))


# XLA fuses the gradients and the non-maximum suppression (some twenty elementwise ops and
# slices) into one pass: 1.5x (32 px) to 1.9x (224 px) faster Canny. The hysteresis loop stays
# outside: with it compiled too, Canny took 4.5 ms instead of 1.8 ms for eight 224 px images.
_canny_candidates_compiled = tf.function(_canny_candidates, jit_compile=True)


def _hysteresis(weak: tf.Tensor, strong: tf.Tensor) -> tf.Tensor:
    def grow(s: tf.Tensor) -> tf.Tensor:  # weak pixels with a pixel of s among their 8 neighbours
        p = tf.pad(s, [[0, 0], [1, 1], [1, 1], [0, 0]])
        rows = p[:, :-2] | p[:, 1:-1] | p[:, 2:]
        return weak & (rows[:, :, :-2] | rows[:, :, 1:-1] | rows[:, :, 2:])

    edges, _ = tf.while_loop(lambda s, prev: tf.reduce_any(tf.not_equal(s, prev)),
                             lambda s, prev: (grow(s), s), (grow(strong), strong))
    return edges


_DIST_FIX = 1 << 16  # cv2.distanceTransform's fixed point
_CHAMFER_5 = {(0, 1): 65536, (1, 1): 91750, (1, 2): 143976}  # round((1, 1.4, 2.1969) * 2^16): DIST_L2, mask 5


def chamfer_distance(zero: tf.Tensor, cap: float) -> tf.Tensor:
    """min(cv2.distanceTransform(src, DIST_L2, 5), cap): distance to the nearest `zero` pixel.

    OpenCV's 5x5 chamfer metric: the cheapest path of steps (0, 1) [cost 1], (1, 1) [1.4] and
    (1, 2) [2.1969] (all signs and orders, 16-bit fixed point) to a zero pixel, never leaving the
    image. That is the min-plus convolution of d0 (0 on `zero`, cap elsewhere) with the 16 rays
    f_s(n s) = n cost(s), n >= 0, applied one after another (they commute; a cheapest path is monotone,
    so it stays inside the image in any order), and each ray is n <= cap / cost(s) by doubling:
    d <- min(d, d(. + 2^j s) + 2^j cost(s)). Exact, as OpenCV's two raster passes. zero: bool (B, H, W, 1).
    """
    h, w = filters.static_size(zero, "chamfer_distance")
    big = float(cap * _DIST_FIX)
    d = tf.where(zero, 0.0, big)
    for (a, b), cost in _CHAMFER_5.items():
        signs = [(sa, sb) for sa in (-1, 1) for sb in (-1, 1)]
        steps = {(sa * a, sb * b) for sa, sb in signs} | {(sb * b, sa * a) for sa, sb in signs}
        reach = int(cap * _DIST_FIX // cost)  # a step can be taken at most this often
        for dy, dx in sorted(steps):
            n = 1
            while n <= reach:
                oy, ox = n * dy, n * dx
                padded = tf.pad(d, [[0, 0], [max(0, -oy), max(0, oy)], [max(0, -ox), max(0, ox)], [0, 0]],
                                constant_values=big)
                moved = padded[:, max(0, oy):max(0, oy) + h, max(0, ox):max(0, ox) + w, :]
                d = tf.minimum(d, moved + float(n * cost))
                n *= 2
    return d / _DIST_FIX


def equalize_hist(img: tf.Tensor, levels: int) -> tf.Tensor:
    """cv2.equalizeHist per image on integer values 0 .. levels - 1 (float (B, H, W, 1) in, same out).

    lut[v] = round(255 (cdf(v) - hist(v0)) / (N - hist(v0))) with v0 the lowest occurring value;
    an image of one value keeps it.
    """
    v = tf.cast(img, tf.int32)
    n = tf.shape(v)[0]
    ids = v[..., 0] + levels * tf.range(n)[:, None, None]
    hist = tf.reshape(tf.math.bincount(tf.reshape(ids, [-1]), minlength=levels * n, maxlength=levels * n,
                                       dtype=tf.float32), tf.stack([n, levels]))
    cdf = tf.cumsum(hist, axis=1)
    total = cdf[:, -1:]
    first = tf.gather(hist, tf.argmax(hist > 0, axis=1, output_type=tf.int32), batch_dims=1)[:, None]
    denom = total - first
    lut = tf.round((cdf - first) * (255.0 / tf.maximum(denom, 1.0)))
    lut = tf.where(denom > 0, tf.clip_by_value(lut, 0.0, 255.0), tf.cast(tf.range(levels), tf.float32)[None])
    return tf.gather(lut, v[..., 0], batch_dims=1)[..., None]


_EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float64)


def _water_mask(liquid: tf.Tensor) -> tf.Tensor:
    """The reference's water-drop intensity m (before / max and * intensity) from the thresholded liquid layer."""
    l8 = tf.floor(tf.clip_by_value(liquid, 0.0, 1.0) * 255.0)  # (liquid * 255).astype(np.uint8)
    edges = canny(l8, 50, 150)
    dist = chamfer_distance(edges, 20.0)  # distanceTransform of 255 - edges, THRESH_TRUNC at 20
    return _water_finish_compiled(dist, l8)


def _water_finish(dist: tf.Tensor, l8: tf.Tensor) -> tf.Tensor:
    dist = tf.floor(filters.box_filter(dist, 3, "mirror") + 1e-5)  # cv2.blur, .astype(np.uint8)
    dist = equalize_hist(dist, 21)
    dist = tf.clip_by_value(tf.round(filters.filter2d(dist, _EMBOSS, "mirror")), 0.0, 255.0)  # CV_8U
    dist = tf.round(filters.box_filter(dist, 3, "mirror"))  # cv2.blur on uint8 rounds
    return l8 * dist


# XLA fuses the two box filters, the histogram equalization and the emboss filter (some forty
# small ops on a one-channel map): 6x (224 px) to 7x (32 px) faster than running them one by one.
_water_finish_compiled = tf.function(_water_finish, jit_compile=True)


def spatter(images: tf.Tensor, seed: tf.Tensor, c: tuple) -> tf.Tensor:
    """Spatter: water drops (c[5] = 0) or mud (c[5] = 1) from a blurred, thresholded noise layer.

    liquid = skimage gaussian(N(mean, std), sigma) (border 'nearest'), values below the threshold
    set to 0. Water: m = liquid8 * D, D from Canny edges of liquid8 = floor(255 liquid) -> chamfer
    distance (cap 20) -> 3x3 box -> uint8 -> equalizeHist -> emboss filter (uint8) -> 3x3 box, all with
    OpenCV's semantics (canny, chamfer_distance, equalize_hist); m = intensity m / max(m) per image;
    out = clip(x + m (175, 238, 238) / 255). Mud: m = gaussian(liquid > threshold, intensity), values
    below 0.8 set to 0; out = clip(x (1 - m) + m (63, 42, 20) / 255). Grayscale images get the colour's
    luma (imagecorruptions' weights). Differences from OpenCV: float32 arithmetic, and liquid8 is
    clipped at 255 where the reference's uint8 cast wraps (liquid > 1, which its parameters make rare).
    An image with no liquid gets m = 0 (the reference divides 0 by 0).
    """
    h, w = filters.static_size(images, "spatter")
    noise = tf.random.stateless_normal(tf.stack([tf.shape(images)[0], h, w, 1]), _fold(seed, 0))
    return spatter_with_noise(images, noise, c)


def spatter_with_noise(images: tf.Tensor, noise: tf.Tensor, c: tuple) -> tf.Tensor:
    """spatter given its random part: noise (batch, H, W, 1) standard normal (liquid = mean + std noise)."""
    mean, std, sigma, threshold, intensity, mud = c
    liquid = filters.gaussian_filter(mean + std * noise, float(sigma), "nearest", 4.0)
    liquid = tf.where(liquid < threshold, 0.0, liquid)
    if int(mud) == 0:
        return _water_blend_compiled(images, _water_mask(liquid), float(intensity))
    return _mud_blend_compiled(images, liquid, float(threshold), float(intensity))


def _water_blend(images: tf.Tensor, m: tf.Tensor, intensity: float) -> tf.Tensor:
    top = tf.reduce_max(m, axis=[1, 2, 3], keepdims=True)
    m = tf.math.divide_no_nan(m, top) * intensity
    add = m * (tf.constant([175.0, 238.0, 238.0]) / 255.0)
    if images.shape[-1] == 1:
        add = _to_gray(tf.clip_by_value(add, 0.0, 1.0), _LUMA_SK)
    return tf.clip_by_value(images + add, 0.0, 1.0)


def _mud_blend(images: tf.Tensor, liquid: tf.Tensor, threshold: float, intensity: float) -> tf.Tensor:
    m = filters.gaussian_filter(tf.cast(liquid > threshold, tf.float32), intensity, "nearest", 4.0)
    m = tf.where(m < 0.8, 0.0, m)
    colour = m * (tf.constant([63.0, 42.0, 20.0]) / 255.0)
    if images.shape[-1] == 1:
        colour = _to_gray(colour, _LUMA_SK)
    return tf.clip_by_value(images * (1.0 - m) + colour, 0.0, 1.0)


# The blends are a handful of elementwise passes over the image; fused, they took spatter's time
# down by a further 5-12 %. With the steps above, spatter is 1.3-1.45x faster, with the same values.
_water_blend_compiled = tf.function(_water_blend, jit_compile=True)
_mud_blend_compiled = tf.function(_mud_blend, jit_compile=True)


CORRUPTIONS: dict[str, Callable[[tf.Tensor, tf.Tensor, object], tf.Tensor]] = {
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "spatter": spatter,
}
