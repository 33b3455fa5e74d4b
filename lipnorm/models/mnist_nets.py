"""The small MNIST networks of the LocalNorm and Lipschitz papers."""

from __future__ import annotations

import keras

from lipnorm.data.base import DatasetInfo
from lipnorm.layers.factory import NormSpec
from lipnorm.models import blocks


def localnorm_mnist_net(info: DatasetInfo, norm: NormSpec) -> keras.Model:
    """Input-16c-16c-32c-32c-512d-1024d-output (Yin et al., MNIST).

    The paper gives only the layer widths; 3x3 convolutions with 'same'
    padding and a 2x2 max-pool after each pair of convolutions are our choice.
    Normalization follows every conv and hidden dense layer.
    """
    inputs, x = blocks.image_input(info.image_shape, info.mean, info.std)
    for i, filters in enumerate((16, 16, 32, 32)):
        x = blocks.conv_norm_act(x, filters, 3, norm, name=f"block{i + 1}")
        if i % 2 == 1:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i // 2 + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = blocks.dense_norm_act(x, 512, norm, name="fc1")
    x = blocks.dense_norm_act(x, 1024, norm, name="fc2")
    return keras.Model(inputs, blocks.logits(x, info.num_classes), name="localnorm_mnist_net")


def lipschitz_small_net(info: DatasetInfo, norm: NormSpec) -> keras.Model:
    """One conv layer, one dense layer and the output (Usama & Chang, MNIST).

    The paper gives only the layer count; 32 5x5 filters, a 2x2 max-pool and
    1024 hidden units are our choice.
    """
    inputs, x = blocks.image_input(info.image_shape, info.mean, info.std)
    x = blocks.conv_norm_act(x, 32, 5, norm, name="block1")
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = blocks.dense_norm_act(x, 1024, norm, name="fc1")
    return keras.Model(inputs, blocks.logits(x, info.num_classes), name="lipschitz_small_net")
