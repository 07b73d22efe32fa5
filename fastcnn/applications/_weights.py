"""Where application builders find their weights: `weights=None`, a path (a Keras 3 `.weights.h5`
or a legacy Keras 2 `.h5` file), or "imagenet", which reads the file Keras downloads under the
same name from Keras's cache folder (`$KERAS_HOME/models`, else `~/.keras/models`, else
`/tmp/.keras/models` when that folder is missing or not writable: keras.utils.get_file's rule,
fastcnn._get_file.cache_folder).
fastcnn downloads nothing; a missing file is an error that says what to fetch and where to put it."""

import os

from fastcnn._get_file import cache_folder

CACHE_SUBDIR = "models"


def cached_file(file_name, origin, what="The weights file"):
    """The path of `file_name` in Keras's cache folder, or a FileNotFoundError naming the file,
    the folder and the URL Keras downloads it from."""
    folder = cache_folder(CACHE_SUBDIR)
    path = os.path.join(folder, file_name)
    if os.path.isfile(path):
        return path
    raise FileNotFoundError(
        f"{what} {file_name} is not in Keras's cache folder {folder}. fastcnn does not download files: "
        f"download it from {origin} and put it in {folder} (Keras's cache, where keras.utils.get_file keeps it; "
        "set KERAS_HOME to use another folder), or pass its path as `weights=`.")


def check_weights_argument(weights, quote="'", received="Received: "):
    """Keras's check of the `weights` argument: None, "imagenet" or the path of an existing file
    (the families' messages differ in the quotes around imagenet and the words before the value)."""
    if weights in (None, "imagenet"):
        return
    try:
        exists = os.path.exists(os.fspath(weights))
    except TypeError:
        exists = False
    if not exists:
        raise ValueError("The `weights` argument should be either `None` (random initialization), "
                         f"{quote}imagenet{quote} (pre-training on ImageNet), or the path to the weights file to be "
                         f"loaded.  {received}weights={weights}")


def check_classes(weights, include_top, classes):
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError("If using `weights='imagenet'` with `include_top=True`, `classes` should be 1000.  "
                         f"Received classes={classes}")


def weights_path(weights, file_name=None, origin=None):
    """The file that `weights` names: None for None, Keras's cached `file_name` for "imagenet"
    (raising before anything is built when it is absent), else the path given."""
    if weights is None:
        return None
    if weights == "imagenet":
        return cached_file(file_name, origin)
    return weights


def load(model, path):
    """Loads the weights file `path` (None: keep the initial weights) into the built model."""
    if path is not None:
        model.load_weights(path)
    return model
