"""TensorFlow and fastcnn in one process: TensorFlow's thread pool runs ops before, between and
after fastcnn's OpenMP kernels, and fastcnn's training and predictions are bitwise those of a
process without TensorFlow; nothing hangs (each process has a timeout)."""

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import hashlib, os, sys
with_tf = sys.argv[1] == "tf"
if with_tf:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    a = tf.random.stateless_normal((384, 384), seed=(1, 2))
    before = float(tf.reduce_sum(tf.linalg.matmul(a, a)))  # on TF's intra-op thread pool

import numpy as np
import fastcnn
from fastcnn import layers, models

fastcnn.utils.set_random_seed(3)
rng = np.random.default_rng(0)
x = rng.random((256, 16, 16, 3), dtype=np.float32)
y = rng.integers(0, 4, 256)
model = models.Sequential([layers.Input((16, 16, 3)), layers.Conv2D(16, (3, 3), activation="relu"),
                           layers.Conv2D(16, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
                           layers.Flatten(), layers.Dropout(0.2), layers.Dense(4, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x[:128], y[:128], epochs=1, batch_size=32, verbose=0)
if with_tf:
    between = tf.linalg.matmul(a, a)  # TF's pool again while fastcnn's OpenMP threads exist
model.fit(x[128:], y[128:], epochs=1, batch_size=32, verbose=0)
predictions = model.predict(x, verbose=0)
if with_tf:
    after = float(tf.reduce_sum(tf.linalg.matmul(a, a)))
    assert after == before and float(tf.reduce_sum(between)) == before, (before, after)
digest = hashlib.sha256()
for array in model.get_weights() + [predictions]:
    digest.update(np.ascontiguousarray(array).tobytes())
print(fastcnn.get_num_threads(), digest.hexdigest())
"""


def run(mode):
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=300,
                            cwd=os.path.expanduser("~") if os.path.isdir(os.path.expanduser("~")) else "/")
    assert result.returncode == 0, result.stderr[-5000:]
    return result.stdout.strip().splitlines()[-1]


def test_tensorflow_and_fastcnn_in_one_process_match_fastcnn_alone():
    pytest.importorskip("tensorflow")
    alone = run("alone")
    with_tensorflow = run("tf")
    assert with_tensorflow == alone
