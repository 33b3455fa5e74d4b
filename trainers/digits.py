"""scikit-learn's 8x8 digits: the offline default, small enough for two CPU cores."""

from lipnorm.config import RunConfig
from lipnorm.training.loop import train_and_evaluate

DEFAULTS = dict(
    model="localnorm_mnist_net",
    epochs=15,
    batch_size=40,
    learning_rate=1e-3,
    eval_noise="agn:0.5,1,2;apn:0.5,1;mbn:0.1,0.3,0.5;gaussian:0.1,0.3,0.5",
)


def run(config: RunConfig) -> dict:
    return train_and_evaluate(config)
