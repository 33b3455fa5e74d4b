"""STL-10: the labelled 96x96 images from stl10_binary/ under --data_dir (or a download).

Defaults: the CIFAR schedule, as in the Lipschitz paper's STL-10 setup; pad-crop (12 px) + flip.
"""

from lipnorm.config import RunConfig
from lipnorm.training.loop import train_and_evaluate
from lipnorm.training.optimizers import HE_CIFAR_SCHEDULE

DEFAULTS = dict(
    HE_CIFAR_SCHEDULE,
    model="preresnet32",
    augment=True,
    eval_noise="agn:0.5,1,2;mbn:0.1,0.3,0.5;gaussian:0.02,0.04,0.06,0.08,0.1",
)


def run(config: RunConfig) -> dict:
    return train_and_evaluate(config)
