import keras
import numpy as np
import pytest

from lipnorm.errors import LipnormError
from lipnorm.evaluation import predict
from lipnorm.layers import LocalNorm
from tests.reference import local_norm, softmax

K, M = 3, 2  # groups, group size: training batch 6


def _model(dense_norm=False):
    inputs = keras.Input((4, 4, 2))
    x = LocalNorm(K, name="ln")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if dense_norm:
        x = LocalNorm(K, name="ln_dense")(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="out")(x))
    r = np.random.default_rng(0)
    ln = model.get_layer("ln")
    ln.gamma.assign(r.normal(1, .5, (K, 2)))
    ln.beta.assign(r.normal(0, .5, (K, 2)))
    return model


def _np_forward(model, batch):
    """Numpy forward of _model for a batch whose size is a multiple of K."""
    ln, out = model.get_layer("ln"), model.get_layer("out")
    h = local_norm(batch, np.asarray(ln.gamma), np.asarray(ln.beta), K).mean(axis=(1, 2))
    w, b = out.get_weights()
    return softmax(h @ w + b)


def _np_every_group(model, images):
    """(K, s, classes): the set `images` through each group."""
    tiled = np.concatenate([images] * K)
    return _np_forward(model, tiled).reshape(K, len(images), -1)


X = np.random.default_rng(1).normal(0.5, 0.3, (11, 4, 4, 2)).astype("float32")  # 11: not a multiple of 6


def test_batch_mode_pads_the_last_batch_by_repetition():
    model = _model()
    expected = np.concatenate([
        _np_forward(model, X[:6]),
        _np_forward(model, X[6:11][np.arange(6) % 5])[:5],
    ])
    np.testing.assert_allclose(predict(model, X, "batch", batch_size=6), expected, atol=1e-5)


@pytest.mark.parametrize("vote", ["mean", "majority"])
def test_voting_mode(vote):
    model = _model()
    rows = []
    for start in range(0, 12, M):
        s = X[start:start + M]
        if len(s) < M:  # the last set is filled with repeats of the last batch's own images
            last_batch = X[6:11]
            s = np.concatenate([s, last_batch[: M - len(s)]])
        votes = _np_every_group(model, s)
        if vote == "mean":
            rows.append(votes.mean(0))
        else:
            counts = np.eye(5)[votes.argmax(-1)].mean(0)
            rows.append(counts + 1e-6 * votes.mean(0))
    expected = np.concatenate(rows)[:11]
    np.testing.assert_allclose(predict(model, X, "voting", batch_size=6, vote=vote), expected, atol=1e-5)


def test_single_voting_and_single():
    model = _model()
    every = np.stack([_np_every_group(model, X[i:i + 1])[:, 0] for i in range(11)])  # (11, K, classes)
    np.testing.assert_allclose(predict(model, X, "single_voting", batch_size=6), every.mean(1), atol=1e-5)
    single = predict(model, X, "single", batch_size=6, seed=3)
    # each row is one group's prediction for that image alone
    for i in range(11):
        assert np.abs(every[i] - single[i]).max(axis=1).min() < 1e-5
    chosen = [np.abs(every[i] - single[i]).max(axis=1).argmin() for i in range(11)]
    assert len(set(chosen)) > 1, "SINGLE should pick random groups"
    np.testing.assert_array_equal(single, predict(model, X, "single", batch_size=6, seed=3))


def test_group_size_one():
    model = _model()
    expected = _np_every_group(model, X[:1]).mean(0)
    np.testing.assert_allclose(predict(model, X[:1], "single_voting", batch_size=3), expected, atol=1e-5)


def test_dense_single_mode_warns(caplog):
    model = _model(dense_norm=True)
    with caplog.at_level("WARNING"):
        predict(model, X[:6], "single", batch_size=6)
    assert "ln_dense" in caplog.text and "zero variance" in caplog.text


def test_bad_mode_and_batch():
    model = _model()
    with pytest.raises(LipnormError, match="unknown evaluation mode 'vote'"):
        predict(model, X, "vote", batch_size=6)
    with pytest.raises(LipnormError, match="does not split into 3"):
        predict(model, X, "batch", batch_size=4)
    with pytest.raises(LipnormError, match="non-empty"):
        predict(model, X[:0], "batch", batch_size=6)
