"""keras.applications.vgg19: the VGG19 builder, preprocess_input (mode "caffe") and
decode_predictions."""

from fastcnn.applications import _vgg, imagenet_utils


def VGG19(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
          classifier_activation="softmax", name="vgg19"):
    """Keras's VGG19: same layers, names and weight order; `weights` is None, "imagenet" (Keras's
    file from its cache folder) or the path of a weights file."""
    return _vgg.build_vgg((2, 2, 4, 4, 4), "vgg19", include_top, weights, input_tensor, input_shape, pooling,
                          classes, classifier_activation, name)


def preprocess_input(x, data_format=None):
    """RGB to BGR, then ImageNet's channel means subtracted (imagenet_utils mode "caffe")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
