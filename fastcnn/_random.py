"""The process-wide random state behind initializers, shuffling and dropout masks.

``fastcnn.utils.set_random_seed(seed)`` reseeds it, making all three reproducible.
"""

import numpy as np

# Created on first use: numpy.random costs ~20 ms of `import fastcnn` otherwise.
_generator = None


def generator():
    global _generator
    if _generator is None:
        _generator = np.random.default_rng()
    return _generator


def set_seed(seed):
    global _generator
    _generator = np.random.default_rng(seed)


def draw_seed():
    """A fresh 63-bit seed for C++ (dropout masks of one step)."""
    return int(generator().integers(0, 2**63 - 1))
