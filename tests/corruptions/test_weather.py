"""Weather corruptions: contract, severities, and fidelity to imagecorruptions / OpenCV.

Same approach as test_blur.py, with the same image and reference helpers (helpers.py): the random
parts (noise fields, angles, plasma maps, photo choice) are fed identically to both sides where the
reference allows it, and the 5 % rule on per-image statistics checks our own randomness.
"""

import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf

from lipnorm.corruptions import weather
from lipnorm.errors import LipnormError
from tests.corruptions.helpers import (  # noqa: F401 (ic is a fixture)
    assert_contract, assert_maps_over_tf_data, assert_stats_close, assert_stats_match_reference, ic, level_diff,
    mean_change, mnist_digits, reference, rgb_digits)

TABLES = {"cifar": weather.CIFAR, "imagenet": weather.IMAGENET}


@pytest.fixture(scope="module")
def digits():
    """64 real MNIST digits in [0, 1], float32."""
    return mnist_digits(64, np.float32)


def _frost_available():
    try:
        weather.frost_photo_dir()
        return True
    except LipnormError:
        return False


needs_photos = pytest.mark.skipif(not _frost_available(), reason="frost photos ship with imagecorruptions")


# ---------------------------------------------------------------------------------------- contract

def test_tables_have_five_severities():
    for table in TABLES.values():
        assert set(table) == set(weather.CORRUPTIONS)
        assert all(len(v) == 5 for v in table.values())


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize("name", sorted(weather.CORRUPTIONS))
def test_contract(name, table):
    if name == "frost" and not _frost_available():
        pytest.skip("frost photos ship with imagecorruptions")
    assert_contract(weather.CORRUPTIONS[name], TABLES[table][name][2], 32 if table == "cifar" else 48, 2, False)


@needs_photos
def test_tf_data_map():
    assert_maps_over_tf_data(weather.CORRUPTIONS, weather.CIFAR)


@needs_photos
@pytest.mark.parametrize("table", sorted(TABLES))
def test_severity_grows(digits, table):
    size = 32 if table == "cifar" else 64
    x = tf.constant(rgb_digits(digits, 8, size).astype(np.float32) / 255)
    for name, fn in weather.CORRUPTIONS.items():
        dist = mean_change(fn, x, TABLES[table][name], [0, 7])
        if name == "fog" or (name == "snow" and table == "cifar"):
            assert all(b > a for a, b in zip(dist, dist[1:])), (name, dist)
        else:  # the published parameters are not ordered by this distance (water vs mud, photo weights)
            assert dist[4] > dist[0], (name, dist)


# ------------------------------------------------------------------------------------------- frost

def test_frost_without_photos_says_what_to_install(monkeypatch):
    weather._frost_bank.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(LipnormError) as e:
        weather.frost(tf.zeros((1, 32, 32, 3)), tf.constant([0, 0]), weather.CIFAR["frost"][0])
    assert str(e.value) == ("frost needs the benchmark's frost photographs: pip install 'lipnorm[frost]' "
                            "(they ship with the imagecorruptions package)")
    monkeypatch.undo()
    weather._frost_bank.cache_clear()


@needs_photos
def test_frost_photos_are_opencv_reads():
    cv2 = pytest.importorskip("cv2", reason="needs OpenCV")
    folder = weather.frost_photo_dir()
    for scale in (1.0, 0.2):  # make_imagenet_c.py: as read; make_cifar_c.py: cv2.resize(fx=fy=0.2)
        bank, sizes = weather._frost_bank(scale, 32, 32)
        for i in range(5):
            name = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")[i]
            ref = cv2.imread(os.path.join(folder, name))
            if scale != 1.0:
                ref = cv2.resize(ref, (0, 0), fx=scale, fy=scale)
            h, w = sizes[i].numpy()
            np.testing.assert_array_equal(bank[i, :h, :w].numpy(), ref[..., ::-1])


@needs_photos
def test_frost_crops_cover_the_photos():
    _, sizes = weather._frost_bank(0.2, 32, 32)
    crops = weather.frost_crops(200, 32, 32, 0.2, tf.constant([4, 2])).numpy()
    assert crops.shape == (200, 32, 32, 3) and crops.min() >= 0 and crops.max() <= 1
    assert len({float(c.mean()) for c in crops}) > 150  # photos and corners vary
    big = weather.frost_crops(2, 400, 700, 1.0, tf.constant([0, 1]))  # larger than frost2: enlarged
    assert big.shape == (2, 400, 700, 3)


@needs_photos
def test_frost_statistics_per_photo(ic, digits):
    # imagecorruptions picks photo randint(5) first; we use its choice (the photo's brightness
    # dominates the statistics) and our own corners. It also enlarges every photo by 1.1.
    n = 24
    u8 = rgb_digits(digits, n, 224, seed=7)
    x = tf.constant(u8.astype(np.float32) / 255)
    seeds = range(300, 300 + n)
    photos = []
    for s in seeds:
        np.random.seed(s)
        photos.append(np.random.randint(5))
    for sev in (1, 3, 5):
        a, b, scale = weather.IMAGENET["frost"][sev - 1]
        crops = weather.frost_crops(n, 224, 224, scale, tf.constant([7, sev]), photos=tf.constant(photos))
        ours = weather.frost_blend(x, crops, a, b).numpy()
        assert_stats_close(ours, reference(ic, "frost", u8, sev, seeds), u8)


# --------------------------------------------------------------------------------------------- fog

def test_fog_matches_imagecorruptions_given_map(ic, digits):
    for size, n in ((32, 2), (224, 2)):
        u8 = rgb_digits(digits, n, size, seed=8)
        x = tf.constant(u8.astype(np.float32) / 255)
        mapsize = 1 << (size - 1).bit_length()
        for sev in range(1, 6):
            a, decay = weather.IMAGENET["fog"][sev - 1]
            maps = []
            for s in range(n):
                np.random.seed(s)
                maps.append(ic.plasma_fractal(mapsize=mapsize, wibbledecay=decay)[:size, :size])
            ours = weather.fog_with_map(x, tf.constant(np.stack(maps), tf.float32), a).numpy()
            assert level_diff(ours, reference(ic, "fog", u8, sev, range(n))) <= 0.1


def test_plasma_fractal_matches_imagecorruptions_given_draws(ic):
    for mapsize, decay in ((32, 3.0), (256, 1.4)):
        np.random.seed(mapsize)
        ref = ic.plasma_fractal(mapsize=mapsize, wibbledecay=decay)
        np.random.seed(mapsize)  # the same draws, in the reference's order, scaled to [-1, 1)
        noise, wibble = [], 100.0
        for k in range(mapsize.bit_length() - 1):
            noise += [tf.constant(np.random.uniform(-wibble, wibble, (1, 1 << k, 1 << k)) / wibble, tf.float32)
                      for _ in range(3)]
            wibble /= decay
        ours = weather.plasma_fractal_from_noise(noise, decay).numpy()[0]
        np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_plasma_fractal_crop_is_the_full_map_cropped():
    # normalized over the whole map, as MNIST-C's fog (a 28 x 28 corner of a 256 map) needs
    noise = [tf.random.stateless_uniform([3, 1 << k, 1 << k], [k, j], -1.0, 1.0) for k in range(8) for j in range(3)]
    full = weather.plasma_fractal_from_noise(noise, 1.4).numpy()
    for crop in ((28, 28), (255, 256), (1, 7), (256, 256)):
        np.testing.assert_array_equal(weather.plasma_fractal_from_noise(noise, 1.4, crop).numpy(),
                                      full[:, :crop[0], :crop[1]])


def test_plasma_fractal_compiled_equals_op_by_op():
    # plasma_fractal runs the steps XLA-compiled; on the same draws the maps agree to float32 rounding.
    seed = tf.constant([5, 6])
    noise = [tf.random.stateless_uniform([2, 1 << k, 1 << k], weather._fold(seed, 3 * k + j), -1.0, 1.0)
             for k in range(8) for j in range(3)]
    ours = weather.plasma_fractal(tf.constant(2), 256, 1.7, seed, (224, 224)).numpy()
    np.testing.assert_allclose(ours, weather.plasma_fractal_from_noise(noise, 1.7, (224, 224)).numpy(), atol=1e-5)


def test_plasma_fractal_distribution(ic):
    count = 300
    ours = weather.plasma_fractal(tf.constant(count), 32, 1.75, tf.constant([9, 32])).numpy()
    np.random.seed(32)
    ref = np.stack([ic.plasma_fractal(mapsize=32, wibbledecay=1.75) for _ in range(count)])
    assert ours.shape == ref.shape and ours.min() == 0 and ours.max() == 1

    def stats(m):
        rough = np.abs(np.diff(m, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(m, axis=2)).mean(axis=(1, 2))
        return np.array([m.mean(axis=(1, 2)).mean(), m.std(axis=(1, 2)).mean(), rough.mean()])

    np.testing.assert_allclose(stats(ours), stats(ref), rtol=0.05)


def test_fog_statistics(ic, digits):
    u8 = rgb_digits(digits, 64, 32, seed=9)
    assert_stats_match_reference(ic, weather.fog, "fog", weather.IMAGENET["fog"], u8, (1, 5),
                                 seed=9, first_reference_seed=400)


# -------------------------------------------------------------------------------------------- snow

def test_snow_matches_imagecorruptions_given_noise(ic, digits):
    # 224 px: imagecorruptions blurs the zoomed layer before cropping it (one extra row and column
    # at the bottom right for these zooms), so borders differ a little; elsewhere it is exact.
    n = 2
    u8 = rgb_digits(digits, n, 224, seed=10)
    x = tf.constant(u8.astype(np.float32) / 255)
    noise, angles = [], []
    for s in range(n):  # imagecorruptions' snow draws the normal field, then the angle
        np.random.seed(s)
        noise.append(np.random.standard_normal((224, 224)))
        angles.append(np.random.uniform(-135, -45))
    noise = tf.constant(np.stack(noise)[..., None], tf.float32)
    for sev in range(1, 6):
        ours = weather.snow_with_noise(x, noise, tf.constant(angles, tf.float32), weather.IMAGENET["snow"][sev - 1])
        assert level_diff(ours.numpy(), reference(ic, "snow", u8, sev, range(n))) <= 1.0


def test_snow_statistics(ic, digits):
    u8 = rgb_digits(digits, 8, 224, seed=11)
    assert_stats_match_reference(ic, weather.snow, "snow", weather.IMAGENET["snow"], u8, (1, 3, 5),
                                 seed=11, first_reference_seed=500)


# ----------------------------------------------------------------------------------------- spatter

def test_spatter_matches_imagecorruptions_given_noise(ic, digits):
    for size, n in ((32, 2), (224, 2)):
        u8 = rgb_digits(digits, n, size, seed=12)
        x = tf.constant(u8.astype(np.float32) / 255)
        noise = []
        for s in range(n):
            np.random.seed(s)
            noise.append(np.random.standard_normal((size, size)))
        noise = tf.constant(np.stack(noise)[..., None], tf.float32)
        for sev in range(1, 6):
            ours = weather.spatter_with_noise(x, noise, weather.IMAGENET["spatter"][sev - 1]).numpy()
            assert level_diff(ours, reference(ic, "spatter", u8, sev, range(n))) <= 0.1, (size, sev)


def test_spatter_opencv_steps():
    cv2 = pytest.importorskip("cv2", reason="needs OpenCV")
    skimage_filters = pytest.importorskip("skimage.filters", reason="needs scikit-image")
    rng = np.random.default_rng(13)
    layers, edges, dists, eqs = [], [], [], []
    for mean, std, sigma, threshold in ((0.65, 0.3, 1, 0.69), (0.65, 0.3, 3, 0.68), (0.62, 0.1, 0.7, 0.7)):
        liquid = skimage_filters.gaussian(rng.normal(mean, std, (64, 64)), sigma=sigma)
        liquid[liquid < threshold] = 0
        l8 = (liquid * 255).astype(np.uint8)
        e = cv2.Canny(l8, 50, 150)
        d = cv2.threshold(cv2.distanceTransform(255 - e, cv2.DIST_L2, 5), 20, 20, cv2.THRESH_TRUNC)[1]
        layers.append(l8), edges.append(e > 0), dists.append(d)
        eqs.append(cv2.equalizeHist(cv2.blur(d, (3, 3)).astype(np.uint8)))
    l8 = tf.constant(np.stack(layers)[..., None], tf.float32)
    np.testing.assert_array_equal(weather.canny(l8, 50, 150).numpy()[..., 0], np.stack(edges))
    dist = weather.chamfer_distance(tf.constant(np.stack(edges)[..., None]), 20.0).numpy()[..., 0]
    np.testing.assert_allclose(dist, np.stack(dists), atol=1e-4)
    blurred = np.stack([cv2.blur(d, (3, 3)).astype(np.uint8) for d in dists])[..., None].astype(np.float32)
    np.testing.assert_array_equal(weather.equalize_hist(tf.constant(blurred), 21).numpy()[..., 0], np.stack(eqs))


def test_spatter_statistics(ic, digits):
    u8 = rgb_digits(digits, 16, 224, seed=14)
    assert_stats_match_reference(ic, weather.spatter, "spatter", weather.IMAGENET["spatter"], u8, (3, 5),
                                 seed=14, first_reference_seed=600)
