"""CIFAR-10: python pickle batches from --data_dir (or a keras download).

Defaults: He et al.'s CIFAR schedule used by both papers, pad-crop + flip.
"""

from lipnorm.config import RunConfig
from lipnorm.training.loop import train_and_evaluate
from lipnorm.training.optimizers import HE_CIFAR_SCHEDULE

DEFAULTS = dict(
    HE_CIFAR_SCHEDULE,
    model="resnet20",
    augment=True,
    eval_noise="agn:0.5,1,2;apn:0.5,1;mbn:0.1,0.3,0.5;gaussian:0.02,0.04,0.06,0.08,0.1",
)


def run(config: RunConfig) -> dict:
    return train_and_evaluate(config)
