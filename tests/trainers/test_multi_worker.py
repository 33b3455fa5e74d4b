"""--strategy=multi_worker: two worker processes on localhost, the run directory lock, a lost worker."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from lipnorm.errors import LipnormError
from tests.trainers.helpers import ROOT, tiny_config
from trainers.lock import LOCK_NAME, RunLock
from trainers.run import train_and_evaluate

ARGS = ["--dataset=digits", "--model=localnorm_mnist_net", "--norm=local", "--groups=4", "--batch_size=40",
        "--steps_per_epoch=3", "--eval_noise=agn:1", "--eval_examples=80", "--probe_examples=0", "--verbose=0",
        "--optimizer=sgd", "--learning_rate=0.05", "--worker_timeout=60"]


def _ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# Workers and one-device references run on the same CPU kernels, pinned to TF's Eigen ones: oneDNN rounds
# differently (weights 1e-2 apart after 6 SGD steps), and which kernels multi-worker graphs got under the
# app's oneDNN setting differed by CPU (measured: Eigen on an AVX2 machine, oneDNN on an AVX-512 one).
KERNELS = {"TF_ENABLE_ONEDNN_OPTS": "0"}


def _launch(model_dir, tmp, ports, *extra):
    """Starts one process per worker with its TF_CONFIG; returns the Popen objects."""
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for i in range(len(ports)):
        env = {**os.environ, **KERNELS, "PYTHONPATH": ROOT, "TMPDIR": str(tmp),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        log = open(os.path.join(tmp, f"worker{i}.log"), "a")
        procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), "--strategy=multi_worker",
                                       f"--model_dir={model_dir}", *ARGS, *extra],
                                      stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env))
    return procs


def _wait(procs, timeout=400):
    return [p.wait(timeout=timeout) for p in procs]


def _weights(path):
    """The layers' weights (a multi-worker run saves a GuardedModel, whose own counter is no layer weight)."""
    return [w for layer in keras.models.load_model(path).layers for w in layer.get_weights()]


@pytest.mark.slow
def test_two_workers_train_like_one_device_and_only_the_chief_writes(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    run = tmp_path / "cluster"
    assert _wait(_launch(str(run), tmp, _ports(2), "--epochs=2")) == [0, 0], (tmp / "worker1.log").read_text()[-3000:]
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints", "config.json", "flags.cfg", "logs", "model.keras", "robustness.csv", "robustness.json",
        "robustness.md", "robustness.png", "saved_model"]
    assert not list(tmp.glob("lipnorm-worker*")), "workers remove their temporary directories"
    # One device, the global batch of 40, the groups each replica formed (4 groups of 5): the same weights.
    # The reference runs in its own process, on the workers' kernels (KERNELS is read when TensorFlow loads).
    reference = tmp_path / "one"
    script = ("import sys; from tests.trainers.helpers import tiny_config; from trainers.run import train_and_evaluate; "
              "train_and_evaluate(tiny_config(model='localnorm_mnist_net', norm='local', groups=4, group_size=5, "
              "epochs=2, eval_noise='agn:1', eval_examples=80, probe_examples=0, optimizer='sgd', "
              "learning_rate=0.05), sys.argv[1])")
    subprocess.run([sys.executable, "-c", script, str(reference)], check=True, cwd=ROOT,
                   env={**os.environ, **KERNELS, "PYTHONPATH": ROOT})
    # 6 SGD steps move weights by ~0.1. The replicas' summation order leaves, element by element, up to
    # 2e-5 (Eigen on AVX2), 5e-3 or 1.3e-2 (Eigen on two AVX-512 machines) in the first conv layers, and
    # 3.4e-3 of the weights' norm in all (measured on the second). Groups of 10 instead of the replicas'
    # groups of 5 left 1.7e-1 and 4.1e-2 of the norm; another data order ~5e-2 element by element.
    a = _weights(reference / "model.keras")
    b = _weights(run / "model.keras")
    assert [w.shape for w in a] == [w.shape for w in b]
    diff = np.concatenate([(y - x).ravel() for x, y in zip(a, b)])
    norm = np.linalg.norm(np.concatenate([x.ravel() for x in a]))
    largest, relative = np.abs(diff).max(), np.linalg.norm(diff) / norm
    assert largest < 4e-2 and relative < 1e-2, (largest, relative)


@pytest.mark.slow
def test_a_lost_worker_stops_the_other_and_a_restart_resumes(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    run = tmp_path / "run"
    procs = _launch(str(run), tmp, _ports(2), "--epochs=4", "--steps_per_epoch=20")
    metadata = run / "checkpoints" / "training_metadata.json"
    deadline = time.time() + 300
    while not (metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 1):
        assert time.time() < deadline and procs[0].poll() is None, (tmp / "worker0.log").read_text()[-3000:]
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)  # worker 1 is lost mid-training
    assert procs[0].wait(timeout=300) == 2
    log = (tmp / "worker0.log").read_text()
    assert "lipnorm: error: lost contact with the cluster" in log and "Traceback" not in log.split("lipnorm: error")[-1]
    assert _wait(_launch(str(run), tmp, _ports(2), "--epochs=4", "--steps_per_epoch=20")) == [0, 0]
    uninterrupted = tmp_path / "whole"
    assert _wait(_launch(str(uninterrupted), tmp, _ports(2), "--epochs=4", "--steps_per_epoch=20")) == [0, 0]
    for a, b in zip(_weights(uninterrupted / "model.keras"), _weights(run / "model.keras"), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=2e-3)


def test_a_directory_in_use_is_refused_and_a_stale_lock_taken_over(tmp_path, caplog):
    with RunLock(str(tmp_path)):
        with pytest.raises(LipnormError, match=f"is in use by a run on {socket.gethostname()} \\(pid {os.getpid()}"):
            with RunLock(str(tmp_path)):
                pass
    assert not (tmp_path / LOCK_NAME).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "started": "x"}))
    with caplog.at_level("WARNING"):
        with RunLock(str(tmp_path)) as lock:
            assert lock.held
    assert "taking it over" in caplog.text
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": "x"}))
    with pytest.raises(LipnormError, match="in use by a run on elsewhere"):
        train_and_evaluate(tiny_config(), str(tmp_path))
