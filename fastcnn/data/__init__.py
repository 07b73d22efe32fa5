"""tf.data's Dataset for numpy arrays (``fastcnn.data.Dataset``), with ``AUTOTUNE``: the datasets
``image_dataset_from_directory`` returns are Datasets too, so Keras scripts' pipelines
(``.map(..., num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)``, ``.cache()``, ``.take(1)``) run as
they are. See docs/data.md."""

from fastcnn.data._dataset import (  # noqa: F401
    AUTOTUNE,
    INFINITE_CARDINALITY,
    UNKNOWN_CARDINALITY,
    Dataset,
    TensorSpec,
)

__all__ = ["AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY", "Dataset", "TensorSpec"]
