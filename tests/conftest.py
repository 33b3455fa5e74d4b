import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED_MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist-train-10k")


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture
def mnist_dir():
    path = os.path.abspath(SHARED_MNIST)
    if not os.path.isdir(path):
        pytest.fail(f"the real MNIST subset is expected at {path} (../shared beside the checkout)")
    return path


def rng(seed=0):
    return np.random.default_rng(seed)
