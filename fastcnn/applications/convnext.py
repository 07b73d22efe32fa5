"""keras.applications.convnext: ConvNeXtTiny, Small, Base, Large and XLarge (Liu et al., arXiv
2201.03545): a 4×4 patchify stem, four stages of blocks (7×7 depthwise convolution,
LayerNormalization, Dense 4× expansion with GELU, Dense projection, LayerScale) around residual
additions, and LayerNormalization + Conv2D 2×2 downsampling between stages. As in Keras, the stem
and the downsampling layers are nested Sequential models, the residual addition is arithmetic on
symbolic tensors (``inputs + x``: an operation, not a layer), and the model normalises its own
input (values in [0, 255]) with ImageNet's mean and variance unless include_preprocessing=False,
so preprocess_input returns its input unchanged."""

import numpy as np

from fastcnn import layers, models
from fastcnn.applications import _builder, _weights, imagenet_utils
from fastcnn.layers._convnext import LayerScale, StochasticDepth

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/convnext/"
MODEL_CONFIGS = {
    "tiny": {"depths": [3, 3, 9, 3], "projection_dims": [96, 192, 384, 768], "default_size": 224},
    "small": {"depths": [3, 3, 27, 3], "projection_dims": [96, 192, 384, 768], "default_size": 224},
    "base": {"depths": [3, 3, 27, 3], "projection_dims": [128, 256, 512, 1024], "default_size": 224},
    "large": {"depths": [3, 3, 27, 3], "projection_dims": [192, 384, 768, 1536], "default_size": 224},
    "xlarge": {"depths": [3, 3, 27, 3], "projection_dims": [256, 512, 1024, 2048], "default_size": 224},
}


def ConvNeXtBlock(projection_dim, drop_path_rate=0.0, layer_scale_init_value=1e-6, name=None):
    """The ConvNeXt block: depthwise 7×7 (Conv2D with groups = channels), LayerNormalization,
    pointwise Dense 4× with GELU, Dense back, LayerScale, then `inputs + x`."""

    def apply(inputs):
        x = layers.Conv2D(filters=projection_dim, kernel_size=7, padding="same", groups=projection_dim,
                          name=f"{name}_depthwise_conv")(inputs)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_layernorm")(x)
        x = layers.Dense(4 * projection_dim, name=f"{name}_pointwise_conv_1")(x)
        x = layers.Activation("gelu", name=f"{name}_gelu")(x)
        x = layers.Dense(projection_dim, name=f"{name}_pointwise_conv_2")(x)
        if layer_scale_init_value is not None:
            x = LayerScale(layer_scale_init_value, projection_dim, name=f"{name}_layer_scale")(x)
        if drop_path_rate:
            layer = StochasticDepth(drop_path_rate, name=f"{name}_stochastic_depth")
        else:
            layer = layers.Activation("linear", name=f"{name}_identity")
        return inputs + layer(x)

    return apply


def ConvNeXt(depths, projection_dims, drop_path_rate=0.0, layer_scale_init_value=1e-6, default_size=224,
             name="convnext", include_preprocessing=True, include_top=True, weights=None, input_tensor=None,
             input_shape=None, pooling=None, classes=1000, classifier_activation="softmax", weights_name=None):
    """The ConvNeXt body for these stage depths and widths, with Keras's checks, layer names and
    weights file names (`name`.h5, `name`_notop.h5)."""
    _weights.check_weights_argument(weights, quote="`")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError('If using `weights="imagenet"` with `include_top=True`, `classes` should be 1000. '
                         f"Received classes={classes}")
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=default_size, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    if weights == "imagenet":
        expected = MODEL_CONFIGS[weights_name.split("convnext_")[-1]]
        if list(depths) != expected["depths"] or list(projection_dims) != expected["projection_dims"]:
            raise ValueError(f"Architecture configuration does not match {weights_name} variant. When using "
                             "pre-trained weights, the model architecture must match the pre-trained configuration "
                             f"exactly. Expected depths: {expected['depths']}, got: {depths}. Expected "
                             f"projection_dims: {expected['projection_dims']}, got: {projection_dims}.")
        if weights_name not in name:
            raise ValueError(f'Model name "{name}" does not match weights variant "{weights_name}". When using '
                             "imagenet weights, model name must contain the weights variant (e.g., "
                             f'"convnext_{weights_name.split("convnext_")[-1]}").')
    file_name = name + (".h5" if include_top else "_notop.h5")
    path = _weights.weights_path(weights, file_name, BASE_WEIGHTS_PATH + file_name)
    image = _builder.image_input(input_shape, input_tensor)
    x = image
    if include_preprocessing and input_shape[-1] == 3:
        x = layers.Normalization(mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
                                 variance=[(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2],
                                 name=f"{name}_prestem_normalization")(x)
    stem = models.Sequential([layers.Conv2D(projection_dims[0], kernel_size=4, strides=4, name=f"{name}_stem_conv"),
                              layers.LayerNormalization(epsilon=1e-6, name=f"{name}_stem_layernorm")],
                             name=f"{name}_stem")
    downsample_layers = [stem]
    for i in range(3):
        downsample_layers.append(models.Sequential(
            [layers.LayerNormalization(epsilon=1e-6, name=f"{name}_downsampling_layernorm_{i}"),
             layers.Conv2D(projection_dims[i + 1], kernel_size=2, strides=2, name=f"{name}_downsampling_conv_{i}")],
            name=f"{name}_downsampling_block_{i}"))
    # Stochastic depth grows linearly from 0 to drop_path_rate over the blocks.
    depth_drop_rates = [float(rate) for rate in np.linspace(0.0, drop_path_rate, sum(depths))]
    current = 0
    for i in range(4):
        x = downsample_layers[i](x)
        for j in range(depths[i]):
            x = ConvNeXtBlock(projection_dim=projection_dims[i], drop_path_rate=depth_drop_rates[current + j],
                              layer_scale_init_value=layer_scale_init_value, name=f"{name}_stage_{i}_block_{j}")(x)
        current += depths[i]
    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.GlobalAveragePooling2D(name=f"{name}_head_gap")(x)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_head_layernorm")(x)
        x = layers.Dense(classes, activation=classifier_activation, name=f"{name}_head_dense")(x)
    else:
        x = _builder.pooling_head(x, pooling)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
    inputs = _builder.model_inputs(input_tensor, image)
    model = models.Model(inputs[0] if isinstance(inputs, list) else inputs, x, name=name)
    return _weights.load(model, path)


def _variant(size, include_top, include_preprocessing, weights, input_tensor, input_shape, pooling, classes,
             classifier_activation, name):
    config = MODEL_CONFIGS[size]
    return ConvNeXt(weights_name=f"convnext_{size}", depths=config["depths"], projection_dims=config["projection_dims"],
                    drop_path_rate=0.0, layer_scale_init_value=1e-6, default_size=config["default_size"], name=name,
                    include_top=include_top, include_preprocessing=include_preprocessing, weights=weights,
                    input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation)


def ConvNeXtTiny(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None, input_shape=None,
                 pooling=None, classes=1000, classifier_activation="softmax", name="convnext_tiny"):
    """Keras's ConvNeXtTiny (default input 224×224): same layers, names and weight order."""
    return _variant("tiny", include_top, include_preprocessing, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name)


def ConvNeXtSmall(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None,
                  input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
                  name="convnext_small"):
    """Keras's ConvNeXtSmall (default input 224×224): same layers, names and weight order."""
    return _variant("small", include_top, include_preprocessing, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name)


def ConvNeXtBase(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None, input_shape=None,
                 pooling=None, classes=1000, classifier_activation="softmax", name="convnext_base"):
    """Keras's ConvNeXtBase (default input 224×224): same layers, names and weight order."""
    return _variant("base", include_top, include_preprocessing, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name)


def ConvNeXtLarge(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None,
                  input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
                  name="convnext_large"):
    """Keras's ConvNeXtLarge (default input 224×224): same layers, names and weight order."""
    return _variant("large", include_top, include_preprocessing, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name)


def ConvNeXtXLarge(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None,
                   input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
                   name="convnext_xlarge"):
    """Keras's ConvNeXtXLarge (default input 224×224): same layers, names and weight order."""
    return _variant("xlarge", include_top, include_preprocessing, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name)


def preprocess_input(x, data_format=None):
    """Returns `x` unchanged: the models normalise their input themselves."""
    return x


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
