"""VGG-19 for 32x32 images (the CIFAR variant used by the LocalNorm paper)."""

from __future__ import annotations

import keras

from lipnorm.data.base import DatasetInfo
from lipnorm.layers.factory import NormSpec
from lipnorm.models import blocks

# Channels of the 16 conv layers; "M" is a 2x2 max-pool. Five pools take 32x32 to 1x1.
VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def vgg19(info: DatasetInfo, norm: NormSpec) -> keras.Model:
    """16 conv-norm-ReLU layers in five pooled stages, then one linear classifier.

    As in the CIFAR ports of VGG (e.g. kuangliu/pytorch-cifar), the three
    ImageNet fully connected layers are replaced by a single linear layer on
    the 512 features: 20.0 M parameters with BatchNorm.
    """
    inputs, x = blocks.image_input(info.image_shape, info.mean, info.std)
    conv, pool = 0, 0
    for spec in VGG19:
        if spec == "M":
            pool += 1
            x = keras.layers.MaxPooling2D(2, name=f"pool{pool}")(x)
        else:
            conv += 1
            x = blocks.conv_norm_act(x, spec, 3, norm, name=f"conv{conv}")
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    return keras.Model(inputs, blocks.logits(x, info.num_classes), name="vgg19")
