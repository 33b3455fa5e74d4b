import keras
import numpy as np
import pytest
import tensorflow as tf

from lipnorm.layers import LocalNorm
from tests.reference import local_norm


def _layer(groups, shape, seed=0):
    layer = LocalNorm(groups)
    layer.build(shape)
    r = np.random.default_rng(seed)
    layer.gamma.assign(r.normal(1, 0.3, layer.gamma.shape))
    layer.beta.assign(r.normal(0, 0.3, layer.beta.shape))
    return layer


@pytest.mark.parametrize(
    "shape, groups",
    [((8, 5, 5, 3), 4), ((8, 5, 5, 3), 1), ((6, 4), 3), ((4, 6, 6, 2), 4), ((12, 7), 12)],
)
def test_matches_numpy(shape, groups):
    x = np.random.default_rng(1).normal(2, 3, shape).astype("float32")
    layer = _layer(groups, shape)
    expected = local_norm(x, np.asarray(layer.gamma), np.asarray(layer.beta), groups)
    for training in (True, False, None):
        np.testing.assert_allclose(layer(x, training=training), expected, atol=1e-4)


def test_weights_are_per_group():
    layer = _layer(4, (8, 3, 3, 5))
    assert [w.name for w in layer.weights] == ["gamma", "beta"]
    assert layer.gamma.shape == (4, 5) and layer.beta.shape == (4, 5)


def test_channels_first_axis():
    x = np.random.default_rng(2).normal(size=(4, 3, 5, 5)).astype("float32")
    layer = LocalNorm(2, axis=1)
    y = layer(x)
    expected = local_norm(np.moveaxis(x, 1, -1), np.ones((2, 3)), np.zeros((2, 3)), 2)
    np.testing.assert_allclose(np.moveaxis(np.asarray(y), 1, -1), expected, atol=1e-4)


def test_config_round_trip():
    layer = LocalNorm(4, epsilon=1e-5, center=False, name="ln")
    clone = LocalNorm.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)).groups == 4


def test_bad_groups():
    with pytest.raises(ValueError, match="groups >= 1"):
        LocalNorm(0)


def test_batch_not_divisible_names_both_numbers():
    layer = LocalNorm(4)
    with pytest.raises(ValueError, match="groups=4 got a batch of size 6"):
        layer(np.zeros((6, 3), "float32"))
    fn = tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec([None, 3])])
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of 4"):
        fn(np.zeros((6, 3), "float32"))


def test_mixed_precision_keeps_float32_statistics():
    layer = LocalNorm(2, dtype="mixed_float16")
    x = np.random.default_rng(3).normal(100, 1, (4, 3, 3, 2)).astype("float16")
    y = layer(x)
    assert y.dtype == "float16"
    expected = local_norm(x.astype(np.float32), np.ones((2, 2)), np.zeros((2, 2)), 2)
    np.testing.assert_allclose(np.asarray(y, np.float32), expected, atol=2e-2)


def test_mixed_precision_keeps_statistics_in_float32():
    from lipnorm.layers import AdaptiveBN

    x = np.random.default_rng(3).normal(300.0, 0.5, (8, 4, 4, 3)).astype("float32")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        local, adaptive = LocalNorm(2), AdaptiveBN(prior=0.0)
        y_local = local(x.astype("float16"))
        y_adaptive = adaptive(x.astype("float16"), training=False)
    finally:
        keras.config.set_dtype_policy(previous)
    assert local.gamma.dtype == "float32" and y_local.dtype == "float16"
    assert y_adaptive.dtype == "float16"
    x16 = x.astype("float16").astype("float32")  # the inputs the layers saw
    expected = local_norm(x16, np.ones((2, 3)), np.zeros((2, 3)), 2, eps=1e-3)
    # float16 statistics of values near 300 would be off by whole units; float32 ones are exact
    np.testing.assert_allclose(np.asarray(y_local, "float32"), expected, atol=2e-2)
    mean, var = x16.mean(axis=(0, 1, 2)), x16.var(axis=(0, 1, 2))
    np.testing.assert_allclose(np.asarray(y_adaptive, "float32"), (x16 - mean) / np.sqrt(var + 1e-3), atol=2e-2)
