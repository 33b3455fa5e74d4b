"""Noisy evaluation time over clean evaluation time, same model and data (goal <= 1.1x).

python benchmarks/bench_noise.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trainers  # noqa: E402,F401  (the app's TensorFlow settings: oneDNN on, before TF loads)

from benchmarks.timing import interleaved_seconds, median_ratio, mnist_like  # noqa: E402
from lipnorm import models  # noqa: E402
from lipnorm.evaluation import make_predictor  # noqa: E402
from lipnorm.evaluation import grid  # noqa: E402
from lipnorm.layers import NormSpec  # noqa: E402
from lipnorm.noise import NoiseCell  # noqa: E402


def main() -> None:
    test, info = mnist_like(4000)
    test = test.cache()
    model = models.build("localnorm_mnist_net", info, NormSpec("batch"))
    predictor = make_predictor(model, "standard")
    cells = (NoiseCell("clean", 0.0), NoiseCell("agn", 1.0), NoiseCell("apn", 0.5), NoiseCell("mbn", 0.3))

    def evaluation(cell):
        batches = grid.noisy_batches(test, cell, 100, seed=0, clip=True)
        return lambda: grid.accuracy(predictor, batches)

    samples = interleaved_seconds({cell.noise: evaluation(cell) for cell in cells}, rounds=11)
    fastest = {name: min(times) for name, times in samples.items()}
    medians = {name: median_ratio(samples, name, "clean") for name in samples if name != "clean"}
    for name, seconds in fastest.items():
        median = f" (median per round {medians[name]:.3f})" if name in medians else ""
        print(f"{name:6s} {seconds * 1000:8.1f} ms  ratio to clean {seconds / fastest['clean']:.3f}{median}")
    worst = max(v for k, v in fastest.items() if k != "clean") / fastest["clean"]
    print(f"noisy/clean evaluation time (worst noise): {worst:.3f}x (median per round {max(medians.values()):.3f}x; "
          "goal <= 1.1x)")


if __name__ == "__main__":
    main()
