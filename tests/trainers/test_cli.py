"""The command line, in-process (absl flagsaver), and one smoke test of the installed `lipnorm` command."""

import csv
import json
import os
import shutil
import subprocess
import sys

import keras
import pytest

from tests.data import fakes
from tests.trainers.helpers import run_cli

TINY = ["--epochs=1", "--steps_per_epoch=2", "--eval_examples=60", "--eval_noise=agn:1", "--probe_examples=0",
        "--verbose=0"]


def test_help_lists_the_flags_with_the_dataset_presets(capsys):
    assert run_cli("--helpshort") == 1  # absl exits 1 after usage
    out = capsys.readouterr().out
    assert "--batch_size" in out and "--eval_noise" in out and "--lip_lambda" in out
    assert "(default: '40')" in out.split("--batch_size", 1)[1].split("--", 1)[0]  # digits
    run_cli("--dataset=cifar10", "--help")
    out = capsys.readouterr().out
    assert "(default: '128')" in out.split("--batch_size", 1)[1].split("--", 1)[0]
    assert "(default: '300')" in out.split("--epochs", 1)[1].split("--", 1)[0]


def test_presets_command(capsys):
    assert run_cli("presets") == 0
    out = capsys.readouterr().out
    assert "| batch_size | 40 | 100 | 128 | 128 | 16 |" in out


@pytest.mark.parametrize("args, message", [
    (["--dataset=cifar100"], "value should be one of"),
    (["--batch_size=0"], "--batch_size"),
    (["--eval_noise=foo:1"], "lipnorm: error: --eval_noise: unknown noise type 'foo'"),
    (["--adapt=partial", "--adapt_batch=0"], "--adapt_batch"),
    (["--lip_lambda=1", "--lip_sigma=0"], "lipnorm: error: --lip_sigma must be > 0 when lip_lambda > 0"),
    (["--learning_rate=-1"], "lipnorm: error: --learning_rate must be > 0, got -1.0"),
    (["--norm=local", "--groups=3"], "lipnorm: error: --batch_size=40 cannot be split"),
])
def test_bad_input_is_one_clear_line(args, message, tmp_path, capsys):
    code = run_cli(f"--model_dir={tmp_path}/r", *TINY, *args)
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert "Traceback" not in err


def _config_json(directory):
    with open(os.path.join(directory, "config.json")) as f:
        return json.load(f)


def _replay_data(dataset, tmp_path, request):
    if dataset == "digits":
        return []
    if dataset == "mnist":
        return [f"--data_dir={request.getfixturevalue('mnist_dir')}", "--holdout=500", "--batch_size=50"]
    return [f"--data_dir={fakes.write_cifar10(str(tmp_path / 'data'))}", "--batch_size=8"]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits", "mnist", "cifar10"])
def test_flagfile_replays_the_run(dataset, tmp_path, request):
    """issue #14, bug 1: flags.cfg holds the effective settings (preset included), not the flag defaults."""
    first, second = tmp_path / "first", tmp_path / "second"
    extra = _replay_data(dataset, tmp_path, request)
    assert run_cli(f"--dataset={dataset}", f"--model_dir={first}", *TINY, *extra) == 0
    assert run_cli(f"--flagfile={first}/flags.cfg", f"--model_dir={second}") == 0
    config = _config_json(first)
    assert config == _config_json(second)
    assert config["epochs"] == 1 and config["dataset"] == dataset
    # the dataset's preset is written out, not the flag defaults
    optimizer = "sgd" if dataset == "cifar10" else "adam"
    assert f"--optimizer={optimizer}" in (first / "flags.cfg").read_text() and config["optimizer"] == optimizer


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
def test_evaluate_a_plain_keras_model_then_compare(tmp_path, capsys):
    plain, adapted = tmp_path / "plain", tmp_path / "adapted"
    for d in (plain, adapted):
        d.mkdir()
        _foreign_model(str(d / "model.keras"))
    common = ["--dataset=digits", "--eval_noise=agn:1,2", "--eval_examples=100", "--batch_size=20", "--noshift"]
    assert run_cli("evaluate", f"--model_dir={plain}", *common) == 0
    assert run_cli("evaluate", f"--model_dir={adapted}", *common, "--adapt=partial", "--adapt=fixed") == 0
    with open(adapted / "robustness.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["adapt"] for r in rows} == {"partial", "fixed"}
    assert len(rows) == 6 and all(r["examples"] == "100" for r in rows)
    settings = json.loads((adapted / "robustness.json").read_text())
    assert settings["model_name"] == "users_net" and settings["eval_examples"] == 100

    out = tmp_path / "report"
    assert run_cli("compare", str(plain), str(adapted), f"--baseline={plain}", f"--out={out}") == 0
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [r["run"] for r in summary] == ["plain", "adapted [standard+partial]", "adapted [standard+fixed]"]
    assert float(summary[0]["mce"]) == pytest.approx(100.0)
    assert (out / "accuracy_vs_severity.png").exists() and (out / "mce.png").exists()

    capsys.readouterr()
    assert run_cli("compare", str(plain), str(tmp_path / "nothing"), f"--out={out}") == 2
    err = capsys.readouterr().err
    assert "lipnorm: error:" in err and "Traceback" not in err


@pytest.mark.slow
def test_evaluate_takes_the_data_settings_of_the_saved_run(tmp_path):
    d = tmp_path / "run"
    assert run_cli(f"--model_dir={d}", *TINY, "--holdout=300", "--eval_examples=150") == 0
    assert run_cli("evaluate", f"--model_dir={d}", "--eval_noise=gaussian:0.2") == 0
    with open(d / "robustness.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["noise"] for r in rows} == {"clean", "gaussian"}
    assert all(r["examples"] == "150" for r in rows)  # holdout and eval_examples of the run, not the defaults
    assert json.loads((d / "robustness.json").read_text())["holdout"] == 300


@pytest.mark.slow
def test_console_command_smoke(tmp_path):
    command = shutil.which("lipnorm", path=os.path.dirname(sys.executable))
    assert command, "the lipnorm console command is installed with the package"
    proc = subprocess.run([command, "presets"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| model | localnorm_mnist_net |" in proc.stdout


@pytest.mark.slow
def test_evaluate_a_published_corrupted_set_beside_generated_corruptions(tmp_path, mnist_dir):
    """MNIST-C's files (here: two corruptions written from real digits) through the same grid as mnist-c on the fly."""
    import numpy as np

    from lipnorm.data.idx import read_idx

    images = read_idx(os.path.join(mnist_dir, "train-images-idx3-ubyte.gz"))[-60:, :, :, None]
    labels = read_idx(os.path.join(mnist_dir, "train-labels-idx1-ubyte.gz"))[-60:]
    for name, transform in (("brightness", lambda x: np.minimum(x.astype(int) + 128, 255)),
                            ("translate", lambda x: np.roll(x, 3, axis=2))):
        folder = tmp_path / "mnist_c" / name
        folder.mkdir(parents=True)
        np.save(folder / "test_images.npy", transform(images).astype(np.uint8))
        np.save(folder / "test_labels.npy", labels.astype(np.int64))
    run = tmp_path / "run"
    run.mkdir()
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))).save(run / "model.keras")
    code = run_cli("evaluate", f"--model_dir={run}", "--dataset=mnist", f"--data_dir={mnist_dir}", "--holdout=60",
                   f"--corrupted_dir={tmp_path}", "--eval_noise=mnist-c:1", "--corrupted_limit=40", "--noshift",
                   "--verbose=0")
    assert code == 0
    with open(run / "robustness.csv") as f:
        rows = list(csv.DictReader(f))
    published = [r for r in rows if r["examples"] == "40"]
    assert [(r["noise"], r["severity"]) for r in published] == [("brightness", "1"), ("translate", "1")]
    assert len(rows) == 1 + 15 + 2 and (run / "robustness_heatmap.png").exists()
    assert "Mean accuracy per corruption" in (run / "robustness.md").read_text()
