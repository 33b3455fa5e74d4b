"""scikit-learn's bundled 8x8 handwritten digits: the offline default dataset."""

from __future__ import annotations

from typing import Optional

import numpy as np

from lipnorm.data.base import Splits, from_arrays, hold_out

TEST_SIZE = 360


def load(data_dir: Optional[str] = None, holdout: int = 0) -> Splits:
    """1,797 real 8x8 digits (values 0..16) shipped inside scikit-learn; no network.

    The split is a fixed permutation (seed 0): the last `holdout` (default 360)
    examples are the test set. `data_dir` is ignored.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    images = bunch.images[order].astype(np.float32)
    labels = bunch.target[order].astype(np.int32)
    count = holdout or TEST_SIZE
    train, test = hold_out((images, labels), count, "digits")
    return from_arrays("digits", train, test, scale=16.0, test_source=f"held out {count} of 1797")
