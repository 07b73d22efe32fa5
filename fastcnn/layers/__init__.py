"""Keras layers: ``from fastcnn import layers`` then ``layers.Conv2D(...)`` as in Keras."""

from fastcnn.layers.activation import Activation
from fastcnn.layers.base import Layer, Variable
from fastcnn.layers.batch_normalization import BatchNormalization
from fastcnn.layers.conv2d import Conv2D, DepthwiseConv2D
from fastcnn.layers.cropping2d import Cropping2D
from fastcnn.layers.dense import Dense
from fastcnn.layers.dropout import Dropout, SpatialDropout2D
from fastcnn.layers.elu import ELU
from fastcnn.layers.flatten import Flatten
from fastcnn.layers.input_layer import Input, InputLayer
from fastcnn.layers.identity import Identity
from fastcnn.layers.global_pooling2d import GlobalAveragePooling2D, GlobalMaxPooling2D
from fastcnn.layers.max_pooling2d import AveragePooling2D, MaxPooling2D
from fastcnn.layers.noise import GaussianDropout, GaussianNoise
from fastcnn.layers.prelu import PReLU
from fastcnn.layers.layer_normalization import GroupNormalization, LayerNormalization
from fastcnn.layers.global_pooling2d import GlobalAveragePooling2D, GlobalMaxPooling2D
from fastcnn.layers.max_pooling2d import AveragePooling2D, MaxPooling2D
from fastcnn.layers.normalization import Normalization
from fastcnn.layers.merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, average,
                                    concatenate, maximum, minimum, multiply, subtract)
from fastcnn.layers.relu import LeakyReLU, ReLU
from fastcnn.layers.rescaling import Rescaling
from fastcnn.layers.reshape import Reshape
from fastcnn.layers.separable_conv2d import SeparableConv2D
from fastcnn.layers.softmax import Softmax
from fastcnn.layers.upsampling2d import UpSampling2D
from fastcnn.layers.zero_padding2d import ZeroPadding2D

# Keras's aliases.
Convolution2D = Conv2D
SeparableConvolution2D = SeparableConv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = [
    "Activation",
    "Add",
    "Average",
    "Concatenate",
    "Maximum",
    "Minimum",
    "Multiply",
    "Subtract",
    "add",
    "average",
    "concatenate",
    "maximum",
    "minimum",
    "multiply",
    "subtract",
    "AveragePooling2D",
    "AvgPool2D",
    "GlobalAveragePooling2D",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "GlobalMaxPooling2D",
    "LeakyReLU",
    "ReLU",
    "Rescaling",
    "Reshape",
    "ZeroPadding2D",
    "BatchNormalization",
    "GroupNormalization",
    "LayerNormalization",
    "Normalization",
    "CenterCrop",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "Resizing",
    "Conv2D",
    "DepthwiseConv2D",
    "Convolution2D",
    "Dense",
    "Dropout",
    "ELU",
    "GaussianDropout",
    "GaussianNoise",
    "PReLU",
    "SpatialDropout2D",
    "Flatten",
    "Input",
    "InputLayer",
    "Layer",
    "MaxPool2D",
    "MaxPooling2D",
    "Variable",
    "Cropping2D",
    "Identity",
    "SeparableConv2D",
    "SeparableConvolution2D",
    "Softmax",
    "UpSampling2D",
]

# The augmentation layers are imported on first use (PEP 562), saving 2 ms of `import fastcnn`;
# `layers.RandomFlip` and `from fastcnn.layers import RandomFlip` work as for any other layer.
_AUGMENTATION_LAYERS = ("CenterCrop", "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip",
                        "RandomRotation", "RandomTranslation", "RandomZoom", "Resizing")


def __getattr__(name):
    if name in _AUGMENTATION_LAYERS:
        from fastcnn.layers import augmentation

        return getattr(augmentation, name)
    raise AttributeError(f"module 'fastcnn.layers' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_AUGMENTATION_LAYERS))
