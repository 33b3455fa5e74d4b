"""CIFAR-10-C / ImageNet-C noise corruptions: contract, and statistics against the references.

ImageNet parameters are checked against the `imagecorruptions` package at 224 px, CIFAR
parameters against numpy / scikit-image re-derivations of make_cifar_c.py at 32 px, on
the same images (real MNIST digits tinted over smooth colour backgrounds). The published
files store np.uint8(x * 255), which truncates, so our outputs are truncated the same way
before the comparison.
"""

import numpy as np
import pytest
import tensorflow as tf

from lipnorm.corruptions import noise
from tests.corruptions.helpers import (
    assert_level_stats_close, graph_and_eager_over_batches, photo_like, synthetic, truncated,
)

NAMES = sorted(noise.CORRUPTIONS)
TABLES = {"cifar": noise.CIFAR, "imagenet": noise.IMAGENET}


def run(name, images, c, seed=(3, 4)):
    return noise.CORRUPTIONS[name](tf.constant(images, tf.float32), tf.constant(seed, tf.int32), c).numpy()


def test_tables_cover_all_names_with_five_severities():
    for table in TABLES.values():
        assert sorted(table) == NAMES
        assert all(len(v) == 5 for v in table.values())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", NAMES)
def test_contract_shape_range_and_seeds(name, channels):
    images = synthetic(4, 32, channels)
    c = noise.IMAGENET[name][2]
    out = run(name, images, c)
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out, run(name, images, c))
    assert np.abs(out - run(name, images, c, seed=(3, 5))).max() > 0.1


@pytest.mark.parametrize("name", NAMES)
def test_graph_with_unknown_batch_and_dataset_map(name):
    _, parts = graph_and_eager_over_batches(noise.CORRUPTIONS[name], noise.CIFAR[name][4], atol=1e-6)
    assert np.all((parts[1] >= 0) & (parts[1] <= 1))


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize("name", NAMES)
def test_damage_grows_with_severity(name, table):
    images = synthetic(8, 32)
    damage = [np.abs(run(name, images, c) - images).mean() for c in TABLES[table][name]]
    assert all(a < b for a, b in zip(damage, damage[1:])), damage


@pytest.mark.parametrize("c", [3.0, 60.0, 500.0])
def test_shot_noise_counts_follow_the_poisson_law(c):
    """The table inversion against Poisson's probabilities, at a dark, a mid and a bright level."""
    levels = np.array([9, 128, 255])
    images = np.broadcast_to(levels / 255.0, (20000, 3)).reshape(1, 100, 200, 3).astype(np.float32)
    counts = noise.poisson_counts(tf.constant(images), tf.constant([5, 6]), c).numpy().reshape(-1, 3)
    np.testing.assert_array_equal(counts, np.round(counts))
    for column, level in enumerate(levels):
        rate = c * level / 255.0
        k = counts[:, column]
        assert abs(k.mean() - rate) < 4.5 * np.sqrt(rate / k.size)
        assert abs(k.var() / rate - 1.0) < 4.5 * np.sqrt(2.0 / k.size) + 0.005
        for j in np.unique(np.round(rate + np.array([-1.0, 0.0, 1.0]) * np.sqrt(rate))).astype(int):
            p = np.exp(j * np.log(rate) - rate - np.sum(np.log(np.arange(1, j + 1))))
            assert abs(np.mean(k == j) - p) < 4.5 * np.sqrt(p * (1 - p) / k.size) + 1e-4, (level, j)


def test_imagenet_parameters_match_imagecorruptions():
    ic = pytest.importorskip("imagecorruptions", reason="the imagecorruptions package is the ImageNet-C reference")
    clean = photo_like(8, 224)
    np.random.seed(0)  # imagecorruptions draws from numpy's global generator
    for name in NAMES:
        for severity, c in enumerate(noise.IMAGENET[name], start=1):
            ref = np.stack([ic.corrupt(im, severity=severity, corruption_name=name) for im in clean])
            ours = truncated(run(name, clean / 255.0, c, seed=(severity, 11)))
            assert_level_stats_close(ours, ref, clean)


def reference_cifar(name, clean_u8, c, rng):
    """make_cifar_c.py's formulas, re-derived with numpy / scikit-image, as uint8 levels."""
    x = clean_u8 / 255.0
    if name == "gaussian_noise":
        out = x + rng.normal(scale=c, size=x.shape)
    elif name == "shot_noise":
        out = rng.poisson(x * c) / c
    elif name == "speckle_noise":
        out = x + x * rng.normal(scale=c, size=x.shape)
    else:
        util = pytest.importorskip("skimage.util", reason="scikit-image's random_noise is the impulse reference")
        out = np.stack([util.random_noise(im, mode="s&p", amount=c, rng=rng) for im in x])
    return np.uint8(np.clip(out, 0.0, 1.0) * 255.0)


@pytest.mark.parametrize("name", NAMES)
def test_cifar_parameters_match_numpy_rederivation(name):
    clean = photo_like(64, 32)
    rng = np.random.default_rng(1)
    for severity, c in enumerate(noise.CIFAR[name], start=1):
        ref = reference_cifar(name, clean, c, rng)
        ours = truncated(run(name, clean / 255.0, c, seed=(severity, 12)))
        assert_level_stats_close(ours, ref, clean)
