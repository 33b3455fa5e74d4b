"""Stanford Cars: ResNet-152 fine-tuned from ImageNet weights (LocalNorm paper: batch 16, K=4).

Data from --data_dir in the devkit layout or a train/test class-folder tree
(see lipnorm/data/cars.py); images resized to 256 and cropped to 224.
"""

from lipnorm.config import RunConfig
from lipnorm.training.loop import train_and_evaluate

DEFAULTS = dict(
    model="resnet152",
    epochs=50,
    batch_size=16,
    optimizer="sgd",
    learning_rate=0.01,
    momentum=0.9,
    weight_decay=1e-4,
    lr_boundaries=(30, 45),
    lr_decay=0.1,
    augment=True,
    eval_noise="agn:0.5,1,2;mbn:0.1,0.3,0.5;gaussian:0.05,0.1",
)


def run(config: RunConfig) -> dict:
    return train_and_evaluate(config)
