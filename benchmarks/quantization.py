"""int8 post-training quantization: accuracy and inference speed, side by side.

Four engines on the same trained models and the same inputs:
  fastcnn fp32   model.predict
  fastcnn int8   the same model after model.quantize("int8", calibration_data=...) (fastcnn/models/_quantization.py)
  ORT fp32       ONNX Runtime on model.export(path, format="onnx")
  ORT int8       ONNX Runtime on onnxruntime.quantization.quantize_static of that file (QDQ format,
                 per-channel int8 weights, MinMax calibration on the same calibration samples)

Models, trained here on the data the tests use:
  mnist    the seed Example 1 CNN (Conv2D 32 -> pool -> Conv2D 64 -> pool -> Dense 10) on the embedded
           MNIST split (4,000 train / 1,000 test)
  shapes   a 32x32x3 CNN (3 Conv2D 'same' + pooling, GlobalAveragePooling2D, Dense 10) on
           fastcnn.datasets.shapes (3,000 train / 1,000 test, image_size 32)

Accuracy is on the 1,000 test images. Speed: images/s of predict at batch 64 (64 test images) and
batch 1, median over --rounds rounds; every round times each engine in turn (interleaved, so
drift on a shared machine hits all engines alike). ONNX Runtime gets the same thread count as
fastcnn (intra_op_num_threads). Results go to stdout and benchmarks/results/quantization.md (not
with --no-write). Needs onnx and onnxruntime (the test extras).

    python benchmarks/quantization.py [--rounds 7] [--threads N] [--epochs-scale 1.0] [--models mnist,shapes]
                                      [--no-write]
"""

import argparse
import os
import pathlib
import platform
import statistics
import tempfile
import time

import numpy as np

import fastcnn
from fastcnn import layers

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "quantization.md"


def cpu_description():
    """The CPU's model name, family/model and the vector features int8 kernels care about."""
    try:
        info = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.split("\n") if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    features = [name for name in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if name in flags]
    return (f"{fields.get('model name', '?')}, family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')}, "
            f"{' '.join(features) or 'no AVX2'}")


def mnist_case():
    (x_train, y_train), (x_test, y_test) = fastcnn.datasets.mnist.load_embedded()
    x_train = (x_train[..., None] / 255.0).astype(np.float32)
    x_test = (x_test[..., None] / 255.0).astype(np.float32)
    def build():
        return fastcnn.Sequential([
            layers.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
            layers.Flatten(), layers.Dense(10, activation="softmax"),
        ])
    return build, (x_train, y_train, x_test, y_test), 3


def shapes_case():
    (x_train, y_train), (x_test, y_test) = fastcnn.datasets.shapes.load_data(num_train=3000, num_test=1000,
                                                                            image_size=32)
    x_train = (x_train / 255.0).astype(np.float32)
    x_test = (x_test / 255.0).astype(np.float32)
    def build():
        return fastcnn.Sequential([
            layers.Input((32, 32, 3)),
            layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(), layers.Dense(10, activation="softmax"),
        ])
    return build, (x_train, y_train, x_test, y_test), 8


CASES = {"mnist": mnist_case, "shapes": shapes_case}


def ort_sessions(model, calibration, directory, threads):
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    fp32_path = os.path.join(directory, "model.onnx")
    int8_path = os.path.join(directory, "model.int8.onnx")
    model.export(fp32_path, format="onnx", verbose=False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": calibration[i:i + 64]} for i in range(0, len(calibration), 64)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(fp32_path, int8_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ONNX Runtime's threads spin between runs by default; interleaved with fastcnn in one process
    # on a small machine they would take the cores fastcnn's threads need (and fastcnn's OpenMP
    # threads theirs). Off, each engine runs alone.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    make = lambda path: onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])  # noqa: E731
    return make(fp32_path), make(int8_path)


def ort_predict(session):
    return lambda x: session.run(None, {"input": x})[0]


def accuracy(predict, x, y):
    outputs = np.concatenate([predict(x[i:i + 64]) for i in range(0, len(x), 64)])
    return float(np.mean(outputs.reshape(len(x), -1).argmax(-1) == y))


def images_per_second(predict, x, minimum_seconds=0.3):
    predict(x)  # warm
    runs, start = 0, time.perf_counter()
    while True:
        predict(x)
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= minimum_seconds:
            return runs * len(x) / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="multiplies each model's training epochs")
    parser.add_argument("--models", default="mnist,shapes")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for fastcnn and ONNX Runtime alike (default: fastcnn's current count)")
    parser.add_argument("--no-write", action="store_true")
    arguments = parser.parse_args()
    if arguments.threads is not None:
        fastcnn.config.set_num_threads(arguments.threads)
    threads = fastcnn.config.get_num_threads()
    fastcnn.utils.set_random_seed(3)
    lines = [f"# int8 quantization: accuracy and images/s ({cpu_description()}; fastcnn kernels "
             f"{fastcnn.config.kernel_set()}, {threads} thread(s), {arguments.rounds} rounds)", ""]
    lines.append("| model | engine | test accuracy | images/s batch 64 | images/s batch 1 |")
    lines.append("|---|---|---|---|---|")
    for name in arguments.models.split(","):
        build, (x_train, y_train, x_test, y_test), epochs = CASES[name]()
        model = build()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x_train, y_train, batch_size=64, epochs=max(1, round(epochs * arguments.epochs_scale)), verbose=0)
        calibration = x_train[:512]
        with tempfile.TemporaryDirectory() as directory:
            ort_fp32, ort_int8 = ort_sessions(model, calibration, directory, threads)
        quantized = build()
        quantized.set_weights(model.get_weights())
        quantized.quantize("int8", calibration_data=calibration)
        engines = {
            "fastcnn fp32": lambda x: model.predict(x, batch_size=64, verbose=0),
            "fastcnn int8": lambda x: quantized.predict(x, batch_size=64, verbose=0),
            "ORT fp32": ort_predict(ort_fp32),
            "ORT int8 (quantize_static)": ort_predict(ort_int8),
        }
        accuracies = {engine: accuracy(predict, x_test, y_test) for engine, predict in engines.items()}
        speeds = {engine: {64: [], 1: []} for engine in engines}
        for _ in range(arguments.rounds):
            for batch in (64, 1):
                for engine, predict in engines.items():
                    speeds[engine][batch].append(images_per_second(predict, x_test[:batch]))
        for engine in engines:
            row = (f"| {name} | {engine} | {100 * accuracies[engine]:.1f}% | "
                   f"{statistics.median(speeds[engine][64]):.0f} | {statistics.median(speeds[engine][1]):.0f} |")
            lines.append(row)
            print(row, flush=True)
    lines += ["", "int8 - fp32 accuracy in points; images/s medians over interleaved rounds (shared machine: "
              "compare within a round, not across runs)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not arguments.no_write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
