import keras
import numpy as np
import pytest

from lipnorm.layers import AdaptiveBN


def _layer(prior, channels=3, seed=0):
    layer = AdaptiveBN(prior=prior)
    layer.build((None, 4, 4, channels))
    r = np.random.default_rng(seed)
    layer.set_weights([r.normal(1, .2, channels), r.normal(0, .2, channels),
                       r.normal(0, 1, channels), r.uniform(0.5, 2, channels)])
    return layer


def _reference(layer, x, prior):
    gamma, beta, mu_s, var_s = (np.asarray(w, np.float64) for w in layer.get_weights())
    n = x.shape[0]
    mu_t, var_t = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    w = prior / (prior + n)
    mu, var = w * mu_s + (1 - w) * mu_t, w * var_s + (1 - w) * var_t
    return gamma * (x - mu) / np.sqrt(var + layer.epsilon) + beta


@pytest.mark.parametrize("prior", [0.0, 1.0, 16.0, 128.0])
@pytest.mark.parametrize("n", [1, 8, 32])
def test_blend_matches_numpy(prior, n):
    layer = _layer(prior)
    x = np.random.default_rng(n).normal(0.5, 2, (n, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(layer(x), _reference(layer, x, prior), atol=1e-4)


def test_prior_none_is_batchnorm():
    layer = _layer(None)
    bn = keras.layers.BatchNormalization()
    bn.build((None, 4, 4, 3))
    bn.set_weights(layer.get_weights())
    x = np.random.default_rng(5).normal(size=(8, 4, 4, 3)).astype("float32")
    np.testing.assert_array_equal(layer(x), bn(x))
    assert [w.name for w in layer.weights] == [w.name for w in bn.weights]
    assert AdaptiveBN(prior=float("inf")).prior is None


def test_prior_zero_is_batch_statistics():
    layer = _layer(0.0)
    bn = keras.layers.BatchNormalization()
    bn.build((None, 4, 4, 3))
    bn.set_weights(layer.get_weights())
    x = np.random.default_rng(6).normal(size=(8, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(layer(x), bn(x, training=True), atol=1e-5)


def test_training_is_batchnorm_training():
    layer = _layer(16.0)
    before = np.asarray(layer.moving_mean).copy()
    layer(np.ones((4, 4, 4, 3), "float32") * 7, training=True)
    assert not np.allclose(before, layer.moving_mean)


def test_negative_prior_and_config():
    with pytest.raises(ValueError, match="prior >= 0"):
        AdaptiveBN(prior=-1)
    layer = AdaptiveBN(prior=8, momentum=0.9)
    assert AdaptiveBN.from_config(layer.get_config()).prior == 8.0


@pytest.mark.parametrize("epsilon", [1e-5, 1e-3])
@pytest.mark.parametrize("shape", [(6, 4, 4, 3), (6, 3), (1, 1, 1, 3), (6, 2, 3)])
def test_dense_conv_and_sequence_features_match_numpy(shape, epsilon):
    """Dense, conv and 3-D features, one image, epsilon at and above BatchNormalization's default."""
    layer = AdaptiveBN(prior=4.0, epsilon=epsilon)
    layer.build((None, *shape[1:]))
    r = np.random.default_rng(1)
    layer.set_weights([r.normal(1, .2, 3), r.normal(0, .2, 3), r.normal(0, 1, 3), r.uniform(0.5, 2, 3)])
    x = r.normal(0.5, 2, shape).astype("float32")
    gamma, beta, mu_s, var_s = (np.asarray(w, np.float64) for w in layer.get_weights())
    axes = tuple(range(len(shape) - 1))
    w = 4.0 / (4.0 + shape[0])
    mu = w * mu_s + (1 - w) * x.mean(axis=axes)
    var = w * var_s + (1 - w) * x.var(axis=axes)
    expected = gamma * (x - mu) / np.sqrt(var + epsilon) + beta
    np.testing.assert_allclose(layer(x), expected, atol=2e-4)


@pytest.mark.parametrize("shape", [(6, 4, 4, 3), (6, 3)])
@pytest.mark.parametrize("center,scale", [(True, True), (False, False)])
def test_tiny_epsilon_and_optional_gamma_beta(shape, center, scale):
    """epsilon=1e-7 (below cuDNN's minimum, which TF's fused kernels would impose) matters ~2x at variances ~1e-6."""
    layer = AdaptiveBN(prior=4.0, epsilon=1e-7, center=center, scale=scale)
    layer.build((None, *shape[1:]))
    r = np.random.default_rng(2)
    source = [r.normal(0, 1e-3, 3), r.uniform(0.5e-6, 2e-6, 3)]
    layer.set_weights(([r.normal(1, .2, 3)] if scale else []) + ([r.normal(0, .2, 3)] if center else []) + source)
    x = r.normal(0, 1e-3, shape).astype("float32")
    axes = tuple(range(len(shape) - 1))
    w = 4.0 / (4.0 + shape[0])
    mu = w * source[0] + (1 - w) * x.mean(axis=axes, dtype=np.float64)
    var = w * source[1] + (1 - w) * x.var(axis=axes, dtype=np.float64)
    expected = (x - mu) / np.sqrt(var + 1e-7)
    if scale:
        expected = expected * np.asarray(layer.gamma)
    if center:
        expected = expected + np.asarray(layer.beta)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("stored_mean", [0.0, 1e4])
@pytest.mark.parametrize("set_size", [None, 2])
def test_variance_of_features_far_from_zero_keeps_float32_precision(set_size, stored_mean):
    """Mean 1e4, std 1: E[x**2] - E[x]**2 in float32 would lose the variance entirely (errors of whole
    units); the moments keep it to the inputs' own float32 resolution (1e-3 at 1e4), whatever the stored mean."""
    layer = AdaptiveBN(prior=0.0, set_size=set_size, center=False, scale=False)
    layer.build((None, 8, 8, 2))
    layer.set_weights([np.full(2, stored_mean), np.ones(2)])
    r = np.random.default_rng(4)
    x = (1e4 + 30 + r.normal(0, 1, (4, 8, 8, 2))).astype("float32")
    sets = x.astype(np.float64).reshape(-1, (set_size or 4) * 64, 2)
    mean = sets.mean(axis=1, keepdims=True)
    expected = ((sets - mean) / np.sqrt(sets.var(axis=1, keepdims=True) + layer.epsilon)).reshape(x.shape)
    np.testing.assert_allclose(layer(x), expected, atol=5e-3)


@pytest.mark.parametrize("prior", [0.0, 16.0])
@pytest.mark.parametrize("shape", [(6, 4, 4, 3), (6, 3)])
def test_gradients_flow_through_the_batch_statistics(prior, shape):
    """Input gradients (attacks on adapted models, TENT) include the path through mu_t and var_t.
    Reference: the formula in plain TF ops, differentiated by autodiff."""
    import tensorflow as tf

    layer = AdaptiveBN(prior=prior)
    layer.build((None, *shape[1:]))
    r = np.random.default_rng(3)
    layer.set_weights([r.normal(1, .2, 3), r.normal(0, .2, 3), r.normal(0, 1, 3), r.uniform(0.5, 2, 3)])
    x = tf.constant(r.normal(0.5, 2, shape).astype("float32"))
    upstream = tf.constant(r.normal(size=shape).astype("float32"))
    axes = list(range(len(shape) - 1))
    w = prior / (prior + shape[0])

    def reference(x, gamma, beta):
        mean = w * layer.moving_mean + (1 - w) * tf.reduce_mean(x, axes)
        var = w * layer.moving_variance + (1 - w) * tf.math.reduce_variance(x, axes)
        return gamma * (x - mean) / tf.sqrt(var + layer.epsilon) + beta

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = tf.reduce_sum(layer(x, training=False) * upstream)
        theirs = tf.reduce_sum(reference(x, layer.gamma, layer.beta) * upstream)
    for a, b in zip(tape.gradient(ours, [x, layer.gamma, layer.beta]), tape.gradient(theirs, [x, layer.gamma, layer.beta])):
        np.testing.assert_allclose(a, b, atol=2e-4)
