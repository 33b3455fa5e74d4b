"""STL-10: the labelled 96x96 images from stl10_binary/ under --data_dir (or a download).

Defaults: the CIFAR schedule (SGD 0.9, lr 0.1 / 10 at 150 and 225 of 300), as
in the Lipschitz paper's STL-10 setup; pad-crop (12 px) + flip.
"""

from lipnorm.config import RunConfig
from lipnorm.training.loop import train_and_evaluate

DEFAULTS = dict(
    model="preresnet32",
    epochs=300,
    batch_size=128,
    optimizer="sgd",
    learning_rate=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    lr_boundaries=(150, 225),
    lr_decay=0.1,
    augment=True,
    eval_noise="agn:0.5,1,2;mbn:0.1,0.3,0.5;gaussian:0.02,0.04,0.06,0.08,0.1",
)


def run(config: RunConfig) -> dict:
    return train_and_evaluate(config)
