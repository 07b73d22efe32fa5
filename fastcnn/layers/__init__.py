"""Keras layers: ``from fastcnn import layers`` then ``layers.Conv2D(...)`` as in Keras."""

from fastcnn.layers.activation import Activation
from fastcnn.layers.base import Layer, Variable
from fastcnn.layers.batch_normalization import BatchNormalization
from fastcnn.layers.conv2d import Conv2D
from fastcnn.layers.dense import Dense
from fastcnn.layers.dropout import Dropout
from fastcnn.layers.flatten import Flatten
from fastcnn.layers.input_layer import Input, InputLayer
from fastcnn.layers.max_pooling2d import MaxPooling2D

# Keras's aliases.
Convolution2D = Conv2D
MaxPool2D = MaxPooling2D

__all__ = [
    "Activation",
    "BatchNormalization",
    "Conv2D",
    "Convolution2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Input",
    "InputLayer",
    "Layer",
    "MaxPool2D",
    "MaxPooling2D",
    "Variable",
]
