"""Keras 3 normalization layers: LocalNorm, AdaptiveBN, and the factory choosing one."""

from lipnorm.layers.adaptive_batch_norm import AdaptiveBN
from lipnorm.layers.factory import NORMS, NormSpec
from lipnorm.layers.local_norm import LocalNorm

__all__ = ["AdaptiveBN", "LocalNorm", "NORMS", "NormSpec"]
