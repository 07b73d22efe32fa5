"""keras.applications.resnet50: ResNet50 with its preprocess_input (mode "caffe") and decode_predictions."""

from fastcnn.applications.resnet import ResNet50, decode_predictions, preprocess_input

__all__ = ["ResNet50", "decode_predictions", "preprocess_input"]
