"""The benchmark scripts run and report what the README quotes (timings are not asserted)."""

import os
import re
import subprocess
import sys

import pytest

from benchmarks.timing import median_ratio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_median_ratio_pairs_timings_of_the_same_round():
    samples = {"a": [2.0, 9.0, 3.0], "b": [1.0, 3.0, 1.0]}
    assert median_ratio(samples, "a", "b") == 3.0  # per-round 2, 3, 3; min(a)/min(b) would say 2


@pytest.mark.slow
@pytest.mark.parametrize("script,args,expected", [
    ("bench_adaptation.py", ["--rounds=1"], [r"ratio \d+\.\d+x \(median per round \d+\.\d+x; goal <= 1\.15x\)",
                                             r"streaming .* ratio to one plain pass \d+\.\d+x",
                                             r"exact \(layer by layer, 6 BN layers\)"]),
])
def test_adaptation_benchmark_runs(script, args, expected):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for pattern in expected:
        assert re.search(pattern, proc.stdout), proc.stdout


@pytest.mark.slow
def test_corruption_benchmark_runs():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_corruptions.py"), "--sizes=32",
                           "--images=2", "--sweep_images=1", "--eval_images=0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("gaussian_noise", "frost", "jpeg_compression", "saturate"):
        assert re.search(rf"{name} +\d+ +\d+\.\d +\d+\.\dx", proc.stdout), proc.stdout
    assert re.search(r"15 x 5 sweep .*\(median \d+\.\d\d s of \d+ passes\), imagecorruptions \d+\.\d s "
                     r"\(fastest of 2\); ratio \d+\.\dx \(at our median \d+\.\dx", proc.stdout), proc.stdout
