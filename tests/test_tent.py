"""TENT: the entropy loss and its gradient, what changes and what does not, protocols, saving, replicas."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from lipnorm.adaptation import Tent, adapt, eata_threshold, tent
from lipnorm.errors import LipnormError
from lipnorm.layers import LocalNorm
from tests.reference import softmax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

R = np.random.default_rng(0)
X = R.normal(0.5, 2.0, (24, 3, 3, 2)).astype("float32")


def _model(dropout=False, local=False):
    inputs = keras.Input((3, 3, 2))
    x = keras.layers.Conv2D(4, 1, name="conv")(inputs)
    x = (LocalNorm(2, group_size=4, name="norm") if local else keras.layers.BatchNormalization(name="norm"))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = keras.layers.Dropout(0.5)(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    if not local:
        bn = model.get_layer("norm")
        bn.set_weights([R.normal(1, .2, 4), R.normal(0, .2, 4), R.normal(0, 1, 4), R.uniform(.5, 2, 4)])
    return model


def _np_entropy(model, x, gamma, beta):
    """Mean softmax entropy of the batch, the BN layer using the batch's statistics (float64)."""
    kernel, bias = (np.asarray(w, np.float64) for w in model.get_layer("conv").get_weights())
    h = x.astype(np.float64) @ kernel[0, 0] + bias
    mu, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
    h = gamma * (h - mu) / np.sqrt(var + model.get_layer("norm").epsilon) + beta
    w, b = (np.asarray(v, np.float64) for v in model.get_layer("out").get_weights())
    p = softmax(h.mean(axis=(1, 2)) @ w + b)
    return -(p * np.log(p)).sum(-1).mean()


def _np_grad(f, params, eps=1e-6):
    grads = []
    for i, p in enumerate(params):
        g = np.zeros_like(p)
        for j in range(p.size):
            up = [q.copy() for q in params]
            down = [q.copy() for q in params]
            up[i].flat[j] += eps
            down[i].flat[j] -= eps
            g.flat[j] = (f(*up) - f(*down)) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("steps", [1, 3])
def test_entropy_gradient_steps_match_numpy(steps):
    model = _model()
    adapter = Tent(model, lr=0.1, optimizer="sgd", steps=steps)
    adapter.optimizer.momentum = 0.0  # plain gradient steps, to compare with numpy
    gamma, beta = (np.asarray(w, np.float64) for w in model.get_layer("norm").get_weights()[:2])
    f = lambda g, b: _np_entropy(model, X, g, b)  # noqa: E731
    for _ in range(steps):
        dg, db = _np_grad(f, [gamma, beta])
        gamma, beta = gamma - 0.1 * dg, beta - 0.1 * db
    probs = adapter.adapt(X)
    norm = adapter.model.get_layer("norm")
    np.testing.assert_allclose(norm.gamma, gamma, atol=2e-5)
    np.testing.assert_allclose(norm.beta, beta, atol=2e-5)
    entropy = -(probs * np.log(probs)).sum(-1).mean()
    assert entropy == pytest.approx(f(gamma, beta), abs=1e-4)  # predicted after the updates


def test_only_normalization_affine_parameters_change_and_dropout_stays_off():
    model = _model(dropout=True)
    adapter = Tent(model, lr=0.05)
    others = {w.path: np.asarray(w).copy() for w in adapter.model.weights if "norm/" not in w.path}
    a = adapter.adapt(X)
    adapter.reset()
    np.testing.assert_array_equal(a, adapter.adapt(X))  # Dropout off: the same batch gives the same outputs
    for w in adapter.model.weights:
        if w.path in others:
            np.testing.assert_array_equal(np.asarray(w), others[w.path], err_msg=w.path)
    assert not np.allclose(adapter.model.get_layer("norm").gamma, model.get_layer("norm").gamma)
    np.testing.assert_array_equal(model.get_layer("norm").moving_mean, adapter.model.get_layer("norm").moving_mean)


def test_episodic_resets_after_every_batch_online_keeps_adapting():
    model = _model()
    episodic = Tent(model, lr=0.05, episodic=True)
    first = episodic.adapt(X[:12])
    np.testing.assert_array_equal(episodic.model.get_layer("norm").gamma, model.get_layer("norm").gamma)
    np.testing.assert_allclose(episodic.adapt(X[:12]), first, atol=1e-6)
    online = Tent(model, lr=0.05)
    a = online.adapt(X[:12])
    b = online.adapt(X[:12])
    assert not np.allclose(a, b, atol=1e-6)
    assert online.stats.batches == 2 and online.stats.samples == 24


def test_learning_rate_zero_is_bn_statistics_adaptation_with_prior_zero():
    model = _model()
    expected = adapt(model, scenario="partial", prior=0.0, batch=24).predict(X, 24)
    np.testing.assert_allclose(Tent(model, lr=0.0).adapt(X), expected, atol=1e-5)


def test_before_is_the_prediction_of_the_pre_update_pass():
    model = _model()
    before = Tent(model, lr=0.5, predict="before").adapt(X)
    np.testing.assert_allclose(before, Tent(model, lr=0.0).adapt(X), atol=1e-6)
    assert not np.allclose(Tent(model, lr=0.5).adapt(X), before, atol=1e-4)


def test_eata_filter_counts_samples_and_skips_nonfinite_updates():
    model = _model()
    probs = Tent(model, lr=0.0).adapt(X)
    entropy = -(probs * np.log(probs)).sum(-1)
    threshold = float(np.median(entropy))  # half the samples are "reliable"
    adapter = Tent(model, lr=0.05, max_entropy=threshold)
    adapter.adapt(X)
    assert adapter.stats.filtered_samples == int((entropy >= threshold).sum()) == len(X) // 2
    assert eata_threshold(10) == pytest.approx(0.4 * np.log(10))
    nothing_kept = Tent(model, lr=0.05, max_entropy=1e-9)
    nothing_kept.adapt(X)
    assert nothing_kept.stats.filtered_samples == len(X) and nothing_kept.stats.skipped_updates == 1
    np.testing.assert_array_equal(nothing_kept.model.get_layer("norm").gamma, model.get_layer("norm").gamma)
    bad = X.copy()
    bad[0] = np.nan
    guarded = Tent(model, lr=0.05)
    guarded.adapt(bad)
    assert guarded.stats.skipped_updates == 1
    assert np.isfinite(np.asarray(guarded.model.get_layer("norm").gamma)).all()


def test_localnorm_groups_are_adapted_each_on_its_own():
    model = _model(local=True)
    adapter = Tent(model, lr=0.1)
    adapter.adapt(X[:8])  # two blocks of 4, groups 0 and 1
    gamma = np.asarray(adapter.model.get_layer("norm").gamma)
    assert gamma.shape == (2, 4) and not np.allclose(gamma[0], gamma[1])
    np.testing.assert_array_equal(model.get_layer("norm").gamma, np.ones((2, 4)))  # the source is untouched


def test_adapted_model_saves_and_reloads(tmp_path):
    adapted, probs, stats = tent(_model(), X, batch_size=10, lr=0.05)
    assert probs.shape == (24, 3) and stats.batches == 2  # 10 + (10 + 4): a short last batch joins the one before
    path = str(tmp_path / "tent.keras")
    adapted.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded(X, training=False), adapted(X, training=False), atol=1e-6)


def test_one_trace_for_every_batch_size():
    adapter = Tent(_model(), lr=0.05)
    for n in (5, 7, 12):
        adapter.adapt(X[:n])
    assert adapter._step.experimental_get_tracing_count() == 1


def test_bad_input():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(LipnormError, match="no BatchNormalization or LocalNorm"):
        Tent(plain)
    with pytest.raises(LipnormError, match="lr must be >= 0"):
        Tent(_model(), lr=-1.0)
    with pytest.raises(LipnormError, match="steps must be an integer >= 0"):
        Tent(_model(), steps=-1)
    with pytest.raises(LipnormError, match="empty"):
        tent(_model(), X[:0])
    inputs = keras.Input((3,))
    dense = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.BatchNormalization()(inputs)))
    with pytest.raises(LipnormError, match="a batch of 1 image with prior 0"):
        Tent(dense).adapt(np.ones((1, 3), "float32"))


DISTRIBUTED = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from lipnorm import surgery
    from lipnorm.adaptation import Tent, adapt
    from lipnorm.distribute import make_strategy
    from tests.test_tent import X, _model
    keras.utils.set_random_seed(0)
    model, strategy = _model(), make_strategy("mirrored")
    x = np.concatenate([X, X[::-1]])[:40]
    # lr 0: each replica normalizes its half with the half's statistics, as BN adaptation per set of 20
    frozen = Tent(model, lr=0.0, strategy=strategy).adapt(x)
    per_half = adapt(model, scenario="partial", prior=0.0, batch=20).predict(x, 40)
    adapter = Tent(model, lr=0.1, optimizer="sgd", strategy=strategy)
    probs = adapter.adapt(x)
    gammas = [np.asarray(v) for v in strategy.experimental_local_results(adapter.model.get_layer("norm").gamma.value)]
    print("RESULT" + json.dumps({"lr0": float(np.abs(frozen - per_half).max()), "finite": bool(np.isfinite(probs).all()),
                                 "rows": len(probs), "replicas_agree": float(np.abs(gammas[0] - gammas[1]).max()),
                                 "moved": float(np.abs(gammas[0] - np.asarray(model.get_layer("norm").gamma)).max())}))
""")


@pytest.mark.slow
def test_tent_on_two_replicas_all_reduces_the_entropy_gradient(tmp_path):
    proc = subprocess.run([sys.executable, "-c", DISTRIBUTED], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["lr0"] < 1e-5 and result["finite"] and result["rows"] == 40
    assert result["replicas_agree"] == 0.0 and result["moved"] > 1e-4
