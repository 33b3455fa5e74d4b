import shutil

import numpy as np
import pytest
import tensorflow as tf

from lipnorm.layers import AdaptiveBN, channel_moments

needs_compiler = pytest.mark.skipif(
    not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")), reason="no C++ compiler"
)


@pytest.fixture(autouse=True)
def _kernel_switched_on(monkeypatch):
    monkeypatch.delenv(channel_moments.SWITCH_ENV, raising=False)


def _op_types(fn, *args) -> set[str]:
    return {op.type for op in fn.get_concrete_function(*args).graph.get_operations()}


def _features(shape, mean=0.5, std=2.0, seed=0):
    return np.random.default_rng(seed).normal(mean, std, shape).astype("float32")


@needs_compiler
@pytest.mark.parametrize("shape", [(7, 5, 5, 3), (1000, 1), (3, 2, 2, 600), (2100, 16), (1, 1, 1, 4)])
def test_one_pass_kernel_matches_numpy(shape):
    """Several blocks, a partial last block, one row, wide and single channels."""
    assert channel_moments.one_pass_kernel_applies()
    x = _features(shape)
    mean, variance = channel_moments.batch_moments(tf.constant(x))
    axes = tuple(range(len(shape) - 1))
    np.testing.assert_allclose(mean, x.mean(axes, dtype=np.float64), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variance, x.var(axes, dtype=np.float64), rtol=1e-5, atol=1e-6)


@needs_compiler
def test_one_pass_kernel_keeps_precision_far_from_zero():
    """Mean 1e4, std 1: sum of squares minus squared sum would lose every digit of the variance in float32."""
    x = _features((50, 8, 8, 4), mean=1e4, std=1.0)
    mean, variance = channel_moments.batch_moments(tf.constant(x))
    np.testing.assert_allclose(mean, x.mean((0, 1, 2), dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(variance, x.var((0, 1, 2), dtype=np.float64), rtol=1e-4)


@needs_compiler
def test_no_rows_give_nan():
    mean, variance = channel_moments.batch_moments(tf.zeros([0, 3]))
    assert mean.shape == (3,) and np.isnan(mean).all() and np.isnan(variance).all()


@pytest.mark.parametrize("one_pass", [True, False])
def test_gradient_matches_autodiff_of_the_formula(one_pass):
    x = tf.constant(_features((6, 3, 3, 2)))
    d_mean, d_var = tf.constant([0.3, -1.0]), tf.constant([2.0, 0.5])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        mean, variance = channel_moments.batch_moments(x, one_pass=one_pass)
        ours = tf.reduce_sum(mean * d_mean + variance * d_var)
        ref_mean, ref_var = tf.nn.moments(x, [0, 1, 2])
        reference = tf.reduce_sum(ref_mean * d_mean + ref_var * d_var)
    np.testing.assert_allclose(tape.gradient(ours, x), tape.gradient(reference, x), atol=1e-6)
    with tf.GradientTape() as tape:  # one output alone: the other's gradient is None
        tape.watch(x)
        mean_only = channel_moments.batch_moments(x, one_pass=one_pass)[0]
    np.testing.assert_allclose(tape.gradient(mean_only, x), np.full(x.shape, 1 / 54), rtol=1e-6)


@needs_compiler
def test_adaptive_bn_graph_uses_the_kernel_except_where_it_cannot_run(monkeypatch):
    layer = AdaptiveBN(prior=4.0)
    layer.build((None, 4, 4, 3))
    x = tf.constant(_features((8, 4, 4, 3)))
    expected = layer(x)
    assert "ChannelMoments" in _op_types(tf.function(lambda x: layer(x)), x)
    jitted = tf.function(lambda x: layer(x), jit_compile=True)  # XLA cannot compile custom ops
    assert "ChannelMoments" not in _op_types(jitted, x)
    np.testing.assert_allclose(jitted(x), expected, atol=1e-5)
    monkeypatch.setenv(channel_moments.SWITCH_ENV, "0")
    switched_off = tf.function(lambda x: layer(x))
    assert "ChannelMoments" not in _op_types(switched_off, x)
    np.testing.assert_allclose(switched_off(x), expected, atol=1e-5)


def test_failed_build_falls_back_to_tf_kernels_with_a_warning(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv(channel_moments.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(channel_moments.KernelBuildError, match="could not run"):
        channel_moments.build_library()
    channel_moments._load_library.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            assert not channel_moments.one_pass_kernel_applies()
        assert "cannot build its one-pass moments kernel" in caplog.text and "LIPNORM_CUSTOM_KERNELS=0" in caplog.text
        x = _features((5, 3))
        mean, variance = channel_moments.batch_moments(tf.constant(x))
        np.testing.assert_allclose(variance, x.var(0), rtol=1e-5)
    finally:
        channel_moments._load_library.cache_clear()


@needs_compiler
def test_build_is_cached_by_source_and_tensorflow(tmp_path):
    first = channel_moments.build_library(tmp_path)
    built_at = first.stat().st_mtime_ns
    assert channel_moments.build_library(tmp_path) == first and first.stat().st_mtime_ns == built_at
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no half-written leftovers
