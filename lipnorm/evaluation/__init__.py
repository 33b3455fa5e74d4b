"""Evaluation: LocalNorm's modes, the robustness grid, the BN shift metric."""

from lipnorm.evaluation.grid import AdaptSettings, Row, evaluate
from lipnorm.evaluation.modes import MODES, STANDARD, make_predict_fn, predict
from lipnorm.evaluation.shift import Shift, bn_shift, wasserstein

__all__ = [
    "AdaptSettings", "MODES", "Row", "STANDARD", "Shift", "bn_shift", "evaluate",
    "make_predict_fn", "predict", "wasserstein",
]
