"""keras.applications.vgg19: the VGG19 builder, preprocess_input (mode "caffe") and
decode_predictions."""

from fastcnn.applications import _vgg, vgg16


def VGG19(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
          classifier_activation="softmax", name="vgg19"):
    """Keras's VGG19: same layers, names and weight order; `weights` is None, "imagenet" (Keras's
    file from its cache folder) or the path of a weights file."""
    return _vgg.build_vgg((2, 2, 4, 4, 4), "vgg19", include_top, weights, input_tensor, input_shape, pooling,
                          classes, classifier_activation, name)


# The same preprocessing (mode "caffe") and decoding as VGG16's.
preprocess_input = vgg16.preprocess_input
decode_predictions = vgg16.decode_predictions
