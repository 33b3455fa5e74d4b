"""Training: the Lipschitz train step, callbacks, optimizers and the train-and-evaluate loop."""

from lipnorm.training.lipschitz import LipschitzModel

__all__ = ["LipschitzModel"]
