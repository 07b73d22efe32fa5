"""keras.applications.resnet_v2: ResNet50V2, ResNet101V2, ResNet152V2 (pre-activation blocks,
He et al., arXiv 1603.05027); preprocess_input (mode "tf") and decode_predictions."""

from fastcnn.applications import imagenet_utils, resnet


def _stacks_v2(blocks_per_stack):
    def stack_fn(x):
        for index, (filters, blocks) in enumerate(zip((64, 128, 256, 512), blocks_per_stack)):
            x = resnet.stack_residual_blocks_v2(x, filters, blocks, stride1=1 if index == 3 else 2,
                                                name=f"conv{index + 2}")
        return x

    return stack_fn


def ResNet50V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
               classifier_activation="softmax", name="resnet50v2"):
    """Keras's ResNet50V2: same layers, names and weight order."""
    return resnet.ResNet(_stacks_v2((3, 4, 6, 3)), True, True, include_top, weights, input_tensor, input_shape,
                         pooling, classes, classifier_activation, name, weights_name="resnet50v2")


def ResNet101V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
                classifier_activation="softmax", name="resnet101v2"):
    """Keras's ResNet101V2: same layers, names and weight order."""
    return resnet.ResNet(_stacks_v2((3, 4, 23, 3)), True, True, include_top, weights, input_tensor, input_shape,
                         pooling, classes, classifier_activation, name, weights_name="resnet101v2")


def ResNet152V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
                classifier_activation="softmax", name="resnet152v2"):
    """Keras's ResNet152V2: same layers, names and weight order."""
    return resnet.ResNet(_stacks_v2((3, 8, 36, 3)), True, True, include_top, weights, input_tensor, input_shape,
                         pooling, classes, classifier_activation, name, weights_name="resnet152v2")


def preprocess_input(x, data_format=None):
    """Scaled to [-1, 1] (imagenet_utils mode "tf")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
