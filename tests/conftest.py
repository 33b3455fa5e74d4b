import os

import trainers  # noqa: F401  (the app's TensorFlow settings, before TF loads: tests run what users run)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MNIST = os.path.join(ROOT, "..", "shared", "data", "mnist-train-10k")
# CI sets this: there the real MNIST subset must be found, and a test that needs it never skips.
REQUIRE_DATA = os.environ.get("LIPNORM_REQUIRE_DATA") == "1"


def mnist_subset_dir():
    """The real MNIST subset: $LIPNORM_MNIST_DIR, else ../shared/data/mnist-train-10k beside the checkout."""
    path = os.path.abspath(os.environ.get("LIPNORM_MNIST_DIR") or SHARED_MNIST)
    if os.path.isfile(os.path.join(path, "train-images-idx3-ubyte.gz")):
        return path
    reason = (f"the real MNIST subset is not at {path} (set LIPNORM_MNIST_DIR, or put ../shared beside the "
              "checkout)")
    if REQUIRE_DATA:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture
def mnist_dir():
    return mnist_subset_dir()


def rng(seed=0):
    return np.random.default_rng(seed)
