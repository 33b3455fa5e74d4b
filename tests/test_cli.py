"""The command line on models the toolkit did not train: evaluate, then compare."""

import csv
import json
import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(*args, cwd=ROOT):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def _foreign_model(path):
    """A plain Keras model with BatchNormalization and a softmax head, as users bring them."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="users_net")
    model.get_layer(index=2).moving_mean.assign([0.1] * 8)
    model.save(path)


@pytest.mark.slow
def test_evaluate_a_plain_keras_model_then_compare(tmp_path):
    plain, adapted = tmp_path / "plain", tmp_path / "adapted"
    for d in (plain, adapted):
        d.mkdir()
        _foreign_model(str(d / "model.keras"))
    common = ["--dataset=digits", "--eval_noise=agn:1,2", "--eval_examples=100", "--batch_size=20", "--noshift"]
    proc = _main("evaluate", f"--model_dir={plain}", *common)
    assert proc.returncode == 0, proc.stderr
    proc = _main("evaluate", f"--model_dir={adapted}", *common, "--adapt=partial", "--adapt=fixed")
    assert proc.returncode == 0, proc.stderr
    with open(adapted / "robustness.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["adapt"] for r in rows} == {"partial", "fixed"}
    assert len(rows) == 6 and all(r["examples"] == "100" for r in rows)
    settings = json.loads((adapted / "robustness.json").read_text())
    assert settings["model_name"] == "users_net" and settings["eval_examples"] == 100

    out = tmp_path / "report"
    proc = _main("compare", str(plain), str(adapted), f"--baseline={plain}", f"--out={out}")
    assert proc.returncode == 0, proc.stderr
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [r["run"] for r in summary] == ["plain", "adapted [standard+partial]", "adapted [standard+fixed]"]
    assert float(summary[0]["mce"]) == pytest.approx(100.0)
    assert (out / "accuracy_vs_severity.png").exists() and (out / "mce.png").exists()

    proc = _main("compare", str(plain), str(tmp_path / "nothing"), f"--out={out}")
    assert proc.returncode == 2
    assert "lipnorm: error:" in proc.stderr and "Traceback" not in proc.stderr
