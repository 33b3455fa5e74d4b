"""MNIST-C corruptions: contract, and fidelity to google-research/mnist-c corruptions.py.

Deterministic corruptions (and the random ones given the same random draws) are
compared with scikit-image / imagecorruptions or with short numpy re-derivations of
the reference's formulas written here; the random ones also by the statistics of
(corrupted - clean) per image against the same references with numpy's RNG.
"""

import functools
import math

import numpy as np
import pytest
import tensorflow as tf

from lipnorm.corruptions import filters, mnist_c, weather
from lipnorm.errors import LipnormError
from tests.corruptions.helpers import ic, levels, mean_change, mnist_digits  # noqa: F401 (ic is a fixture)

NAMES = list(mnist_c.CORRUPTIONS)
DETERMINISTIC = {"scale", "brightness", "stripe", "canny_edges"}
PER_CHANNEL_NOISE = {"shot_noise", "impulse_noise"}


@pytest.fixture(scope="module")
def digits():
    """4096 real MNIST digits as float64 (N, 28, 28) in [0, 1]."""
    return mnist_digits(4096)


@functools.lru_cache(maxsize=None)
def _traced(name, c=None):
    """The corruption as a tf.function over digits with an unknown batch size."""
    fn = mnist_c.CORRUPTIONS[name]
    c = mnist_c.MNIST[name] if c is None else c
    return tf.function(lambda x, s: fn(x, s, c), input_signature=[
        tf.TensorSpec([None, 28, 28, 1], tf.float32), tf.TensorSpec([2], tf.int32)])


def _run(name, images, seed=(0, 1), c=None, chunk=1024):
    fn = _traced(name, c)
    out = [fn(tf.constant(images[i:i + chunk, ..., None], tf.float32),
              tf.constant([seed[0] + i, seed[1]], tf.int32)).numpy()[..., 0]
           for i in range(0, len(images), chunk)]
    return np.concatenate(out).astype(np.float64)


# ------------------------------------------------------------------ tables and contract


def test_table_is_the_reference_defaults():
    # corruptions.py: def shot_noise(x, severity=5): c = [60, 25, 12, 5, 3][severity - 1], ...
    assert NAMES == ["shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale",
                     "rotate", "brightness", "translate", "stripe", "fog", "spatter",
                     "dotted_line", "zigzag", "canny_edges"]
    assert list(mnist_c.MNIST) == NAMES
    expected = {
        "shot_noise": [60, 25, 12, 5, 3][5 - 1],
        "impulse_noise": [.03, .06, .09, 0.17, 0.27][4 - 1],
        "glass_blur": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)][1 - 1],
        "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)][1 - 1],
        "shear": [0.2, 0.4, 0.6, 0.8, 1.][2 - 1],
        "scale": [(1 / .9, 1 / .9), (1 / .8, 1 / .8), (1 / .7, 1 / .7), (1 / .6, 1 / .6),
                  (1 / .5, 1 / .5)][3 - 1],
        "rotate": [0.2, 0.4, 0.6, 0.8, 1.][2 - 1],
        "brightness": [.1, .2, .3, .4, .5][5 - 1],
        "translate": [1, 2, 3, 4, 5][3 - 1],
        "fog": [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)][5 - 1],
        "spatter": [(0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0),
                    (0.65, 0.3, 2, 0.68, 0.5, 0), (0.65, 0.3, 1, 0.65, 1.5, 1),
                    (0.67, 0.4, 1, 0.65, 1.5, 1)][4 - 1],
        "stripe": None, "dotted_line": None, "zigzag": None, "canny_edges": None,
    }
    assert mnist_c.MNIST == expected


@pytest.mark.parametrize("name", NAMES)
def test_contract(digits, name):
    x = digits[:8]
    a, b = _run(name, x, (1, 2)), _run(name, x, (1, 2))
    assert a.shape == x.shape
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    others = [_run(name, x, (k, 2)) for k in (2, 3)]
    if name in DETERMINISTIC:
        assert all(np.array_equal(o, a) for o in others)
    else:
        assert all(not np.array_equal(o, a) for o in others)
    assert not np.array_equal(levels(a), levels(x))
    # tf.data map over batches of unknown size (5 then 3); same seed and shape, same draws
    fn, c = mnist_c.CORRUPTIONS[name], mnist_c.MNIST[name]
    seed = tf.constant([1, 2])
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(x[..., None], tf.float32)).batch(5)
    batches = list(ds.map(lambda im: fn(im, seed, c)).as_numpy_iterator())
    assert [bt.shape for bt in batches] == [(5, 28, 28, 1), (3, 28, 28, 1)]
    assert all(bt.dtype == np.float32 and bt.min() >= 0 and bt.max() <= 1 for bt in batches)
    np.testing.assert_allclose(batches[0][..., 0], _run(name, x[:5], (1, 2)), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_colour_and_other_sizes(digits, name):
    """32 x 32 RGB copies of grey digits: every channel equals the grey result.

    (Noise is drawn per channel, so for the two noises only shape and range.)
    """
    fn, c = mnist_c.CORRUPTIONS[name], mnist_c.MNIST[name]
    if name == "glass_blur":  # its while loops are slow in eager mode
        fn = tf.function(fn)
    grey = tf.clip_by_value(tf.image.resize(tf.constant(digits[:3, ..., None], tf.float32),
                                            [32, 32]), 0.0, 1.0)
    seed = tf.constant([5, 6])
    colour = fn(tf.tile(grey, [1, 1, 1, 3]), seed, c).numpy()
    assert colour.shape == (3, 32, 32, 3) and colour.dtype == np.float32
    assert colour.min() >= 0.0 and colour.max() <= 1.0
    if name in PER_CHANNEL_NOISE:
        assert not np.array_equal(colour[..., 0], colour[..., 1])
        return
    single = np.repeat(fn(grey, seed, c).numpy(), 3, axis=-1)
    if name == "canny_edges":  # luminance weights sum to 1 only up to float rounding
        assert np.mean(colour != single) < 0.01
    else:
        np.testing.assert_allclose(colour, single, atol=2e-6)


def test_bad_input_names_the_problem():
    with pytest.raises(LipnormError, match="shape"):
        mnist_c.glass_blur(tf.zeros([2, 28, 28, 2]), tf.constant([0, 0]), mnist_c.MNIST["glass_blur"])
    with pytest.raises(LipnormError, match="shape"):
        mnist_c.fog(tf.zeros([28, 28]), tf.constant([0, 0]), mnist_c.MNIST["fog"])


# reference severity tables (corruptions.py) for the monotonicity check
LEVELS = {
    "shot_noise": [60, 25, 12, 5, 3],
    "impulse_noise": [.03, .06, .09, 0.17, 0.27],
    "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
    "brightness": [.1, .2, .3, .4, .5],
    "fog": [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)],
    "rotate": [0.2, 0.4, 0.6, 0.8, 1.],
    "translate": [1, 2, 3, 4, 5],
}


# Levels compared. Not all five where the reference itself is not monotone on 28 px
# digits: motion blur saturates from level 4 to 5 (measured 0.160 -> 0.159: the 41-tap
# kernel is longer than the digit), fog's levels 3 and 4 have the same strength
# (2.5) and differ only in the fractal's roughness (0.344 -> 0.343).
MONOTONE_LEVELS = {"motion_blur": [1, 2, 3, 4], "fog": [1, 2, 3, 5]}


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_severity_monotone(digits, name):
    """With the reference's five-level tables, mean |x - clean| grows with the level."""
    x = tf.constant(digits[:64, ..., None], tf.float32)
    fn = mnist_c.CORRUPTIONS[name]
    levels = MONOTONE_LEVELS.get(name, [1, 2, 3, 4, 5])
    change = mean_change(fn, x, [LEVELS[name][k - 1] for k in levels], [7, 7])
    assert all(b > a for a, b in zip(change, change[1:])), change


# ------------------------------------------------------------------ deterministic fidelity


def test_canny_edges_match_skimage(digits):
    feature = pytest.importorskip("skimage.feature", reason="scikit-image is the reference")
    x = digits[:512]
    ref = np.stack([feature.canny(im) for im in x]).astype(np.float64)
    diff = np.abs(levels(_run("canny_edges", x)) - levels(ref))
    assert diff.mean() <= 1.0
    assert np.mean(diff > 0) < 1e-3  # measured: no pixel differs on these 512 digits


def test_brightness_matches_skimage_hsv(digits):
    color = pytest.importorskip("skimage.color", reason="scikit-image is the reference")
    x = digits[:256]
    ref = []
    for im in x:  # gray2rgb, rgb2hsv, V + c clipped, hsv2rgb, rgb2gray
        hsv = color.rgb2hsv(color.gray2rgb(im))
        hsv[..., 2] = np.clip(hsv[..., 2] + mnist_c.MNIST["brightness"], 0, 1)
        ref.append(np.clip(color.rgb2gray(color.hsv2rgb(hsv)), 0, 1))
    diff = np.abs(levels(_run("brightness", x)) - levels(np.stack(ref)))
    assert diff.mean() <= 1.0 and diff.max() <= 1.0  # measured mean 0.011 (x.5 level ties)


def test_stripe_inverts_outer_columns(digits):
    x = digits[:64]
    ref = x.copy()
    ref[:, :, :7] = 1.0 - ref[:, :, :7]
    ref[:, :, 21:] = 1.0 - ref[:, :, 21:]
    np.testing.assert_array_equal(levels(_run("stripe", x)), levels(ref))


# ------------------------------------------------------------------ random ones, same draws


def _line(c0, r0, c1, r1):
    """line_from_points of the reference, re-derived: log falloff of the vertical distance."""
    if c1 == c0:
        return np.zeros((28, 28))
    cols, rows = np.arange(28.0)[None, :], np.arange(28.0)[:, None]
    centre = r0 + (r1 - r0) * (cols - c0) / (c1 - c0)
    dist = np.minimum(np.abs(rows - centre), 2.3 - 1e-10)
    out = np.clip(1.0 + np.log(1.0 - dist / 2.3), 0, 1)
    out[:, :int(math.floor(c0))] = 0
    out[:, int(math.ceil(c1)):] = 0
    return out


def _ref_dotted_line(x, r0, r1):
    line = _line(0, r0, 27, r1)
    line[:, (np.arange(28) // 2) % 2 == 0] = 0  # dashes: columns 2-3, 6-7, ... (27 blank)
    return np.clip(x + line, 0, 1)


def _ref_zigzag(x, r0, delta):
    a = b = 2.0
    theta = math.atan(delta / 23.0)
    length = 23.0 / math.cos(theta)
    points = [(0.0, 0.0)]
    for i in range(int((length - a) // (2 * a)) + 1):
        points.append(((2 * i + 1) * a, (-1) ** i * b))
    whole = 2 * a * (length // (2 * a))
    if length != whole:
        points.append((length, points[-1][1] / (2 * (length - whole))))
    c, r = np.array(points).T
    cols = math.cos(theta) * c - math.sin(theta) * r + 2
    rows = math.sin(theta) * c + math.cos(theta) * r + r0
    for i in range(1, len(cols)):
        x = np.clip(x + _line(cols[i - 1], rows[i - 1], cols[i], rows[i]), 0, 1)
    return x


def test_lines_match_reference_given_rows(digits):
    x = digits[:128]
    rng = np.random.default_rng(0)
    r0, r1, delta = rng.integers(0, 27, len(x)), rng.integers(0, 27, len(x)), rng.integers(-5, 5, len(x))
    xt = tf.constant(x[..., None], tf.float32)
    ours = mnist_c.dotted_line_from_rows(xt, r0, r1).numpy()[..., 0]
    ref = np.stack([_ref_dotted_line(im, a, b) for im, a, b in zip(x, r0, r1)])
    np.testing.assert_array_equal(levels(ours), levels(ref))
    ours = mnist_c.zigzag_from_rows(xt, r0, delta).numpy()[..., 0]
    ref = np.stack([_ref_zigzag(im, a, d) for im, a, d in zip(x, r0, delta)])
    np.testing.assert_array_equal(levels(ours), levels(ref))


def _skimage_gaussian(image, sigma, vertical_only=False):
    filters = pytest.importorskip("skimage.filters", reason="scikit-image is the reference")
    # the reference's gaussian(x, sigma, multichannel=True) on a 2-D array = channel_axis=-1
    return filters.gaussian(image, sigma=sigma, channel_axis=-1 if vertical_only else None)


def _ref_glass_blur(x, c, decide):
    """glass_blur re-derived; decide(it, h, w) -> None or (dy, dx) for the swap partner."""
    sigma, d, iterations = c
    y = np.uint8(_skimage_gaussian(x, sigma, vertical_only=True) * 255)
    for it in range(iterations):
        for h in range(28 - d, d, -1):
            for w in range(28 - d, d, -1):
                move = decide(it, h, w)
                if move is not None:
                    hp, wp = h + move[0], w + move[1]
                    y[h, w], y[hp, wp] = y[hp, wp], y[h, w]
    return np.clip(_skimage_gaussian(y / 255.0, sigma, vertical_only=True), 0, 1)


def test_glass_swaps_match_sequential_loop(digits):
    """Given the same swap decisions, the batched scan equals the reference's loops."""
    c = mnist_c.MNIST["glass_blur"]
    x = digits[:6]
    xt = tf.constant(x[..., None], tf.float32)
    offsets = mnist_c._glass_offsets(len(x), 28, 28, c[1], c[2], tf.constant([3, 4])).numpy()

    def decide(b):
        def fn(it, h, w):
            q = offsets[it * 26 + (27 - h), 27 - w, b]
            dy, dx = q // 28 - 1, q % 28 - w
            return None if (dy, dx) == (0, 0) else (dy, dx)
        return fn


    @tf.function
    def ours_given(xt, offsets):
        blurred = filters.gaussian_filter_axes(tf.cast(mnist_c._to_planes(xt), tf.float64), c[0], (1,))
        first = tf.cast(tf.floor(blurred * 255.0), tf.float32) / 255.0
        swapped = mnist_c._glass_swaps(first, offsets, c[1], c[2])
        return tf.clip_by_value(filters.gaussian_filter_axes(swapped, c[0], (1,)), 0, 1)

    ours = ours_given(xt, tf.constant(offsets)).numpy()[..., 0]
    ref = np.stack([_ref_glass_blur(im, c, decide(b)) for b, im in enumerate(x)])
    np.testing.assert_array_equal(levels(ours), levels(ref))


def test_motion_blur_matches_imagemagick_port(ic, digits):
    """Against imagecorruptions' numpy port of ImageMagick's motion blur."""
    radius, sigma = mnist_c.MNIST["motion_blur"]
    x = digits[:128]
    angles = np.random.default_rng(1).uniform(-45, 45, len(x))
    ours = mnist_c.motion_blur_with_angles(tf.constant(x[..., None], tf.float32), angles,
                                           radius, sigma).numpy()[..., 0]
    ref = np.stack([np.clip(ic._motion_blur(im, radius, sigma, a), 0, 1) for im, a in zip(x, angles)])
    np.testing.assert_array_equal(levels(ours), levels(ref))


def test_plasma_matches_reference_generator(ic):
    """Fed numpy's uniforms in the reference's order, the TF plasma (weather's, which MNIST-C's
    fog uses with a 256-wide map) equals imagecorruptions' plasma_fractal."""
    decay = mnist_c.MNIST["fog"][1]
    maps, uniforms = [], []
    for s in range(3):
        np.random.seed(s)
        maps.append(ic.plasma_fractal(mapsize=256, wibbledecay=decay))
        np.random.seed(s)  # same stream: uniform(-w, w) = w (2 r - 1), squares, tops, lefts
        uniforms.append([[2 * np.random.random_sample((2 ** l, 2 ** l)) - 1 for _ in range(3)]
                         for l in range(8)])
    batched = [[tf.constant(np.stack([u[l][k] for u in uniforms]), tf.float32) for k in range(3)]
               for l in range(8)]
    ours = weather.plasma_fractal_from_noise([u for level in batched for u in level], decay).numpy()
    np.testing.assert_allclose(ours, np.stack(maps), atol=2e-5)


def _ref_spatter(x, liquid, c):
    layer = _skimage_gaussian(liquid, c[2])
    layer[layer < c[3]] = 0
    mask = _skimage_gaussian((layer > c[3]).astype(np.float32), c[4])
    mask[mask < 0.8] = 0
    return np.clip(x * (1 - mask) + 63 / 255.0 * mask, 0, 1)


def test_spatter_matches_reference_given_liquid(digits):
    c = mnist_c.MNIST["spatter"]
    x = digits[:128]
    liquid = np.random.default_rng(2).normal(c[0], c[1], x.shape)
    ours = mnist_c.spatter_from_liquid(tf.constant(x[..., None], tf.float32),
                                       tf.constant(liquid[..., None], tf.float32), c).numpy()[..., 0]
    ref = np.stack([_ref_spatter(im, l, c) for im, l in zip(x, liquid)])
    diff = np.abs(levels(ours) - levels(ref))
    assert diff.mean() <= 1.0 and np.mean(diff > 0) < 1e-3  # measured: none differ


# ------------------------------------------------------------------ random ones, statistics


def _ref_plasma_batch(count, decay, rng, size=256):
    """Diamond-square maps re-derived in numpy, batched; cropped to 28 x 28."""
    grid, wibble = np.zeros((count, 1, 1)), 100.0
    while grid.shape[1] < size:
        n = grid.shape[1]
        noise = [wibble * rng.uniform(-wibble, wibble, (count, n, n)) for _ in range(3)]
        right, down = np.roll(grid, -1, 2), np.roll(grid, -1, 1)
        centre = (grid + down + right + np.roll(down, -1, 2)) / 4 + noise[0]
        top = (centre + np.roll(centre, 1, 1) + grid + right) / 4 + noise[1]
        left = (centre + np.roll(centre, 1, 2) + grid + down) / 4 + noise[2]
        new = np.empty((count, 2 * n, 2 * n))
        new[:, 0::2, 0::2], new[:, 0::2, 1::2] = grid, top
        new[:, 1::2, 0::2], new[:, 1::2, 1::2] = left, centre
        grid, wibble = new, wibble / decay
    grid = grid - grid.min(axis=(1, 2), keepdims=True)
    return (grid / grid.max(axis=(1, 2), keepdims=True))[:, :28, :28]


def _reference(name, x, rng):
    """The reference corruption of each digit of x, drawing with numpy's rng."""
    c = mnist_c.MNIST[name]
    if name == "shot_noise":
        return np.clip(rng.poisson(x * c) / c, 0, 1)
    if name == "impulse_noise":
        util = pytest.importorskip("skimage.util", reason="scikit-image is the reference")
        return util.random_noise(x, mode="s&p", amount=c, rng=rng)
    if name == "glass_blur":
        def decide(it, h, w):
            return tuple(rng.integers(-c[1], c[1], 2)[::-1]) if rng.random() < 0.5 else None
        return np.stack([_ref_glass_blur(im, c, decide) for im in x])
    if name == "motion_blur":
        ic = pytest.importorskip("imagecorruptions.corruptions", reason="ImageMagick port")
        return np.stack([np.clip(ic._motion_blur(im, c[0], c[1], rng.uniform(-45, 45)), 0, 1)
                         for im in x])
    if name == "fog":
        out = []
        for i in range(0, len(x), 64):
            chunk = x[i:i + 64]
            plasma = _ref_plasma_batch(len(chunk), c[1], rng)
            top = chunk.max(axis=(1, 2), keepdims=True)
            out.append(np.clip((chunk + c[0] * plasma) * top / (top + c[0]), 0, 1))
        return np.concatenate(out)
    if name == "spatter":
        return np.stack([_ref_spatter(im, rng.normal(c[0], c[1], im.shape), c) for im in x])
    if name == "dotted_line":
        return np.stack([_ref_dotted_line(im, *rng.integers(0, 27, 2)) for im in x])
    if name == "zigzag":
        return np.stack([_ref_zigzag(im, rng.integers(0, 27), rng.integers(-5, 5)) for im in x])
    raise AssertionError(name)


# images per statistics check: enough that sampling noise stays well inside 5 %
STATS_SIZES = {"shot_noise": 1024, "impulse_noise": 1024, "glass_blur": 128, "motion_blur": 256,
               "fog": 1024, "spatter": 2048, "dotted_line": 1024, "zigzag": 1024}


def _stats(clean, corrupted):
    """Mean over images of the per-image mean and std of (corrupted - clean), at uint8 levels."""
    d = levels(corrupted) / 255.0 - clean
    return d.mean(axis=(1, 2)).mean(), d.std(axis=(1, 2)).mean()


@pytest.mark.parametrize("name", sorted(STATS_SIZES))
def test_statistics_match_reference(digits, name):
    """Mean and std of (corrupted - clean) within 5 % of the reference's.

    Blurs keep the mean near 0, where 5 % of it is below sampling noise; there the
    mean's tolerance is 5 % of a tenth of the std (i.e. 0.5 % of the std).
    """
    x = digits[:STATS_SIZES[name]]
    mean, std = _stats(x, _run(name, x, (11, 12)))
    ref_mean, ref_std = _stats(x, _reference(name, x, np.random.default_rng(13)))
    assert abs(std - ref_std) <= 0.05 * ref_std, (std, ref_std)
    assert abs(mean - ref_mean) <= 0.05 * max(abs(ref_mean), 0.1 * ref_std), (mean, ref_mean)


def test_contact_sheet(digits, tmp_path):
    """One row per corruption (clean digits first), 8 digits each, as a PNG test artifact."""
    image = pytest.importorskip("matplotlib.image", reason="matplotlib writes the PNG")
    x = digits[:8]
    rows = [x] + [_run(name, x, (3, 4)) for name in NAMES]
    sheet = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
    assert sheet.shape == (28 * (len(NAMES) + 1), 28 * 8)
    path = tmp_path / "mnist_c_contact_sheet.png"
    image.imsave(path, levels(sheet).astype(np.uint8), cmap="gray", vmin=0, vmax=255)
    assert path.stat().st_size > 0
