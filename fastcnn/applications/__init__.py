"""Keras's ``keras.applications``: ImageNet model builders with Keras's layer names, order and
weight order, so that Keras's ImageNet weights files (and any weights Keras saves for these
models) load into them. Per family, ``preprocess_input`` and ``decode_predictions`` live in the
modules Keras names: ``fastcnn.applications.resnet50``, ``vgg16``, ``mobilenet_v2``, ...

Available: VGG16, VGG19, ResNet50, ResNet101, ResNet152, ResNet50V2, ResNet101V2, ResNet152V2,
MobileNet, MobileNetV2, MobileNetV3Small, MobileNetV3Large, DenseNet121, DenseNet169, DenseNet201,
Xception, EfficientNetB0 to EfficientNetB7, ConvNeXtTiny, ConvNeXtSmall, ConvNeXtBase, ConvNeXtLarge,
ConvNeXtXLarge. ``weights="imagenet"`` reads Keras's file from Keras's cache folder
(``$KERAS_HOME/models`` or ``~/.keras/models``); fastcnn downloads nothing.
"""

from fastcnn.applications import (convnext, densenet, efficientnet, imagenet_utils, mobilenet, mobilenet_v2, mobilenet_v3,
                                  resnet, resnet50, resnet_v2, vgg16, vgg19, xception)
from fastcnn.applications.convnext import ConvNeXtBase, ConvNeXtLarge, ConvNeXtSmall, ConvNeXtTiny, ConvNeXtXLarge
from fastcnn.applications.densenet import DenseNet121, DenseNet169, DenseNet201
from fastcnn.applications.efficientnet import (EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3,
                                               EfficientNetB4, EfficientNetB5, EfficientNetB6, EfficientNetB7)
from fastcnn.applications.mobilenet import MobileNet
from fastcnn.applications.mobilenet_v2 import MobileNetV2
from fastcnn.applications.mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from fastcnn.applications.resnet import ResNet50, ResNet101, ResNet152
from fastcnn.applications.resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from fastcnn.applications.vgg16 import VGG16
from fastcnn.applications.vgg19 import VGG19
from fastcnn.applications.xception import Xception

__all__ = ["ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge", "DenseNet121", "DenseNet169", "DenseNet201", "EfficientNetB0", "EfficientNetB1", "EfficientNetB2",
           "EfficientNetB3", "EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7", "MobileNet",
           "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small", "ResNet50", "ResNet50V2", "ResNet101", "ResNet101V2", "ResNet152", "ResNet152V2", "VGG16",
           "VGG19", "Xception", "convnext", "densenet", "efficientnet", "imagenet_utils", "mobilenet", "mobilenet_v2", "mobilenet_v3", "resnet",
           "resnet50", "resnet_v2", "vgg16", "vgg19", "xception"]
