import numpy as np
import pytest
import tensorflow as tf

from lipnorm import philox


@pytest.mark.parametrize("seed", [[1, 2], [0, 0], [-5, 2**31 - 1]])
@pytest.mark.parametrize("size", [0, 1, 5, 4099])
def test_words_are_tfs_philox_stream_bit_for_bit(seed, size):
    seed = tf.constant(seed, tf.int64)
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
    words = philox.philox4x32(key, counter, (size + 3) // 4)
    ours = tf.reshape(tf.stack(words, 1), [-1])[:size]  # TF's order: word j of block g at 4 g + j
    theirs = tf.random.stateless_uniform([size], seed, minval=None, maxval=None, dtype=tf.uint32)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_the_counter_carries_into_its_upper_half():
    key = tf.constant([123], tf.uint64)
    counter = tf.constant([2**64 - 2, 7], tf.uint64)  # blocks 2 and 3 wrap the lower 64 bits
    theirs = tf.raw_ops.StatelessRandomUniformFullIntV2(shape=[16], key=key, counter=counter, alg=1, dtype=tf.uint32)
    ours = tf.reshape(tf.stack(philox.philox4x32(key, counter, 4), 1), [-1])
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_normal_draws_follow_the_standard_normal_law():
    from scipy.stats import kstest, norm

    z = philox.normal([400_000], tf.constant([7, 8]), 1.0).numpy()
    assert z.dtype == np.float32 and np.isfinite(z).all()
    assert abs(z.mean()) < 0.01 and z.std() == pytest.approx(1.0, abs=0.005)
    assert kstest(z, norm.cdf).pvalue > 1e-3
    assert np.abs(z).max() <= 5.33  # the midpoint of the outermost 2^-23 bin
    # every one of the four words feeds the law, not only the first
    for part in np.split(z, 4):
        assert kstest(part, norm.cdf).pvalue > 1e-4


def test_stddev_shape_and_seed():
    seed = tf.constant([3, 4])
    z = philox.normal([2, 5, 7, 3], seed, 2.5)
    assert z.shape == (2, 5, 7, 3)
    np.testing.assert_allclose(z.numpy(), 2.5 * philox.normal([2, 5, 7, 3], seed).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(z.numpy(), philox.normal([2, 5, 7, 3], seed, 2.5).numpy())
    assert not np.allclose(z.numpy(), philox.normal([2, 5, 7, 3], tf.constant([3, 5]), 2.5).numpy())


def test_same_numbers_in_a_graph_and_a_dataset_with_unknown_batch():
    seed = tf.constant([9, 1], tf.int64)
    eager = philox.normal([10, 6], seed).numpy()
    traced = tf.function(lambda x, s: philox.normal(tf.shape(x), s))(tf.zeros([10, 6]), seed)
    np.testing.assert_array_equal(traced.numpy(), eager)
    data = tf.data.Dataset.from_tensor_slices(tf.zeros([10, 6])).batch(10)
    batch = next(iter(data.map(lambda x: philox.normal(tf.shape(x), seed))))
    np.testing.assert_array_equal(batch.numpy(), eager)


def test_same_numbers_inside_an_xla_compiled_function():
    seed = tf.constant([5, 6])
    compiled = tf.function(lambda x, s: philox.normal(tf.shape(x), s), jit_compile=True)
    np.testing.assert_array_equal(compiled(tf.zeros([3, 8, 8, 3]), seed).numpy(),
                                  philox.normal([3, 8, 8, 3], seed).numpy())
