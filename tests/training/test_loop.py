"""The trainer end to end, on tiny runs (a few steps of the bundled digits)."""

import csv
import dataclasses
import glob
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from lipnorm.config import RunConfig
from lipnorm.errors import LipnormError
from lipnorm.training import callbacks as cb
from lipnorm.training.loop import evaluate_saved, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(tmp_path, **overrides):
    base = RunConfig(
        dataset="digits", model="lipschitz_small_net", epochs=1, batch_size=40, steps_per_epoch=3,
        eval_noise="agn:1;mbn:0.3", probe_noise="agn:1", probe_examples=80, eval_examples=100,
        model_dir=str(tmp_path / "run"), verbose=0,
    )
    return dataclasses.replace(base, **overrides)


def _rows(model_dir):
    with open(os.path.join(model_dir, "robustness.csv")) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_train_evaluate_export(tmp_path):
    config = _config(tmp_path)
    result = train_and_evaluate(config)
    d = config.model_dir
    for name in ("model.keras", "saved_model", "robustness.csv", "robustness.md", "robustness.png", "config.json"):
        assert os.path.exists(os.path.join(d, name)), name
    rows = _rows(d)
    assert [(r["noise"], r["severity"]) for r in rows] == [("clean", "0"), ("agn", "1"), ("mbn", "0.3")]
    assert all(r["examples"] == "100" for r in rows)
    assert all(float(r["shift"]) >= 0 for r in rows)
    assert float(rows[0]["accuracy"]) > 0.3  # 3 steps already beat chance (0.1)
    assert glob.glob(os.path.join(d, "logs", "train", "events.*"))
    probe = glob.glob(os.path.join(d, "logs", "probe", "events.*"))
    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(probe[0]) for v in e.summary.value}
    assert "noisy_accuracy/agn_1" in tags
    assert "noisy_accuracy/agn_1" in result["history"]
    loaded = keras.models.load_model(os.path.join(d, "model.keras"))
    sm = tf.saved_model.load(os.path.join(d, "saved_model"))
    x = np.random.default_rng(0).uniform(size=(5, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(sm.serve(tf.constant(x)), loaded(x), atol=1e-5)


@pytest.mark.slow
def test_resume_continues_from_last_finished_epoch(tmp_path):
    first = train_and_evaluate(_config(tmp_path, epochs=1))
    assert len(first["history"]["loss"]) == 1
    second = train_and_evaluate(_config(tmp_path, epochs=3))
    assert len(second["history"]["loss"]) == 2  # epochs 2 and 3 only
    with pytest.raises(LipnormError, match="other training settings.*norm"):
        train_and_evaluate(_config(tmp_path, norm="none"))


@pytest.mark.slow
def test_localnorm_modes_and_adaptation_rows(tmp_path):
    local = _config(tmp_path / "a", norm="local", groups=4, eval_mode=("batch", "voting", "single_voting"), shift=False)
    train_and_evaluate(local)
    assert {r["mode"] for r in _rows(local.model_dir)} == {"batch", "voting", "single_voting"}
    bn = _config(tmp_path / "b", adapt=("none", "adhoc", "partial", "fixed"))
    train_and_evaluate(bn)
    rows = _rows(bn.model_dir)
    assert {r["adapt"] for r in rows} == {"none", "adhoc", "partial", "fixed"}
    assert len(rows) == 3 * 4


@pytest.mark.slow
def test_lipschitz_and_evaluate_only(tmp_path):
    config = _config(tmp_path, lip_lambda=0.1, lip_k=0.5, eval_noise="gaussian:0.3")
    result = train_and_evaluate(config)
    assert "lip_slope" in result["history"]
    rows = evaluate_saved(dataclasses.replace(config, eval_noise="gaussian:0.1,0.5", adapt=("none", "partial")))
    assert {(r.noise, r.severity) for r in rows} == {("clean", 0.0), ("gaussian", 0.1), ("gaussian", 0.5)}
    assert {r.adapt for r in rows} == {"none", "partial"}


@pytest.mark.slow
def test_mnist_from_real_files(tmp_path, mnist_dir):
    config = _config(tmp_path, dataset="mnist", data_dir=mnist_dir, holdout=1000, batch_size=50, eval_examples=200)
    train_and_evaluate(config)
    assert _rows(config.model_dir)[0]["examples"] == "200"


def test_bad_configs(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(LipnormError, match="is a file"):
        train_and_evaluate(_config(tmp_path, model_dir=str(tmp_path / "afile")))
    with pytest.raises(LipnormError, match="does not split into --groups=3"):
        train_and_evaluate(_config(tmp_path, norm="local", groups=3))
    with pytest.raises(LipnormError, match="--epochs must be >= 1"):
        train_and_evaluate(_config(tmp_path, epochs=0))
    with pytest.raises(LipnormError, match="unknown noise type"):
        train_and_evaluate(_config(tmp_path, eval_noise="blur:1"))
    with pytest.raises(LipnormError, match="unknown model"):
        train_and_evaluate(_config(tmp_path, model="resnet9000"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = np.ones((8, 3), "float32"), np.zeros(8, "int32")
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "ckpt"), delete_checkpoint=False)
    model.fit(x, y, epochs=1, callbacks=[cb.StopOnNonFiniteLoss(), backup], verbose=0)
    good = [w.copy() for w in model.get_weights()]
    bad = x.copy()
    bad[4:] = np.nan
    with pytest.raises(cb.NonFiniteLoss, match="became nan at epoch 2"):
        model.fit(bad, y, epochs=3, batch_size=4, callbacks=[cb.StopOnNonFiniteLoss(), backup], verbose=0)
    fresh = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    fresh.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    fresh.load_weights(str(tmp_path / "ckpt" / "latest.weights.h5"))
    for a, b in zip(good, fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [(["--dataset=cifar100"], "value should be one of"), (["--batch_size=0"], "--batch_size"),
     (["--eval_noise=foo:1"], "lipnorm: error: unknown noise type 'foo'")],
)
def test_cli_bad_input_is_one_clear_line(args, message, tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), f"--model_dir={tmp_path}/r", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_init_from_batchnorm_run_fine_tunes_as_localnorm(tmp_path):
    from lipnorm.data import load as load_data
    from lipnorm.layers import LocalNorm
    from lipnorm.training.loop import build_model

    bn = _config(tmp_path / "bn", model="localnorm_mnist_net", eval_noise="agn:1", probe_examples=0)
    train_and_evaluate(bn)
    saved = os.path.join(bn.model_dir, "model.keras")
    source = keras.models.load_model(saved)
    local = _config(tmp_path / "local", model="localnorm_mnist_net", norm="local", groups=4,
                    init_from=saved, eval_noise="agn:1", probe_examples=0, eval_mode=("batch", "voting"))
    converted = build_model(local, load_data("digits").info)
    norms = [l for l in converted.layers if isinstance(l, LocalNorm)]
    assert len(norms) == 6
    for layer in norms:
        gamma = np.asarray(source.get_layer(layer.name).gamma)
        np.testing.assert_array_equal(np.asarray(layer.gamma), np.tile(gamma, (4, 1)))
    result = train_and_evaluate(local)
    assert {r.mode for r in result["rows"]} == {"batch", "voting"}
    assert result["history"]["loss"]
