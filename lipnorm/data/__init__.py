"""Datasets: one module per dataset, each with `load(data_dir, holdout) -> Splits`."""

from __future__ import annotations

import importlib
from typing import Optional

from lipnorm.data.base import DatasetInfo, Splits, eval_pipeline, train_pipeline
from lipnorm.errors import LipnormError

DATASETS = ("digits", "mnist")


def load(name: str, data_dir: Optional[str] = None, holdout: int = 0) -> Splits:
    """Loads dataset `name` (one of DATASETS)."""
    if name not in DATASETS:
        raise LipnormError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    module = importlib.import_module(f"lipnorm.data.{name}")
    return module.load(data_dir=data_dir, holdout=holdout)


__all__ = ["DATASETS", "DatasetInfo", "Splits", "eval_pipeline", "load", "train_pipeline"]
