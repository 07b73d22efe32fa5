"""Pretrained-network workloads side by side: fastcnn vs TensorFlow, Keras 3 on JAX and PyTorch
(eager, and channels_last + torch.compile), each peer only if installed (compare_training.py's
frameworks and rules: one process per framework and workload, the same thread count, rounds
interleaved so that drift on a shared machine hits every framework alike).

Workloads (--workloads):
  resnet50_infer       ResNet50 at 224x224, batch 8, inference (images/s)
  mobilenetv2_infer    MobileNetV2 at 224x224, batch 8, inference (images/s)
  transfer_frozen      the Keras transfer-learning guide's recipe at 160x160, batch 32: MobileNetV2
                       base (include_top=False) frozen and called with training=False, its input
                       rescaled to [-1, 1], GlobalAveragePooling2D, Dropout(0.2), Dense(1) logits,
                       binary cross-entropy, Adam(1e-4) (training images/s)
  transfer_fine_tune   the same model with the base unfrozen from its layer 100 on (Keras's
                       block_11_expand_relu; BatchNormalization stays in inference mode),
                       RMSprop(1e-5) (training images/s)

The Keras frameworks build the networks with their own keras.applications (weights=None: the
speed does not depend on the weights); PyTorch gets twins written here with the same layers
(ResNet50 v1 with Keras's stride on the first 1x1 convolution and its biases, MobileNetV2 as
keras.applications builds it, whose blocks are torchvision's), since PyPI's torchvision does
not install beside the CPU build of torch on this project's machines.

    python benchmarks/transfer_learning_peers.py [--rounds 3] [--steps 10] [--threads 2]
                                                 [--workloads resnet50_infer,...] [--frameworks fastcnn,...]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

from compare_training import FRAMEWORKS, child_environment, missing_requirement

WORKLOADS = {  # name: (batch, input size, what is measured)
    "resnet50_infer": (8, 224, "inference"),
    "mobilenetv2_infer": (8, 224, "inference"),
    "transfer_frozen": (32, 160, "training"),
    "transfer_fine_tune": (32, 160, "training"),
}
FINE_TUNE_AT = 100  # the Keras guide's first unfrozen layer of MobileNetV2

WORKER = textwrap.dedent('''
    import json, os, sys, time
    import numpy as np
    framework, workload, batch, size, steps, fine_tune_at = (sys.argv[1], sys.argv[2], int(sys.argv[3]),
                                                             int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch * steps, size, size, 3)).astype(np.float32)
    y = rng.integers(0, 2, batch * steps).astype(np.float32)
    inference = workload.endswith("_infer")

    def timed(call, warmup, count):
        for step in range(warmup):
            call(step % steps)
        start = time.perf_counter()
        for step in range(count):
            call(step)
        return batch * count / (time.perf_counter() - start)

    if framework.startswith("pytorch"):
        import torch
        from torch import nn
        torch.set_num_threads(threads)
        torch.manual_seed(0)

        def conv_bn(cin, cout, kernel, stride=1, groups=1, bias=False, epsilon=1e-3, relu6=True):
            layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=bias),
                      nn.BatchNorm2d(cout, eps=epsilon, momentum=0.001)]
            return layers + ([nn.ReLU6()] if relu6 else [])

        class InvertedResidual(nn.Module):
            def __init__(self, cin, cout, expansion, stride):
                super().__init__()
                hidden = cin * expansion
                expand = conv_bn(cin, hidden, 1) if expansion != 1 else []
                self.body = nn.Sequential(*expand, *conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                          *conv_bn(hidden, cout, 1, relu6=False))
                self.residual = stride == 1 and cin == cout

            def forward(self, x):
                return x + self.body(x) if self.residual else self.body(x)

        def mobilenet_v2_features():
            blocks, cin = [nn.Sequential(*conv_bn(3, 32, 3, 2))], 32
            for expansion, cout, repeats, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                                     (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
                for repeat in range(repeats):
                    blocks.append(InvertedResidual(cin, cout, expansion, stride if repeat == 0 else 1))
                    cin = cout
            blocks.append(nn.Sequential(*conv_bn(320, 1280, 1)))
            return nn.Sequential(*blocks)  # blocks[0] stem, [1] Keras's expanded_conv, [k] block_(k-1), [18] Conv_1

        class Bottleneck(nn.Module):  # Keras's ResNet50 (v1): stride on the first 1x1, biases, epsilon 1.001e-5
            def __init__(self, cin, filters, stride, shortcut):
                super().__init__()
                bn = dict(bias=True, epsilon=1.001e-5)
                self.body = nn.Sequential(*conv_bn(cin, filters, 1, stride, **bn)[:2], nn.ReLU(),
                                          *conv_bn(filters, filters, 3, **bn)[:2], nn.ReLU(),
                                          *conv_bn(filters, 4 * filters, 1, **bn)[:2])
                self.shortcut = nn.Sequential(*conv_bn(cin, 4 * filters, 1, stride, **bn)[:2]) if shortcut else nn.Identity()

            def forward(self, x):
                return torch.relu(self.body(x) + self.shortcut(x))

        def resnet50():
            layers, cin = [nn.Conv2d(3, 64, 7, 2, 3), nn.BatchNorm2d(64, eps=1.001e-5), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 64
            for filters, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
                for block in range(blocks):
                    layers.append(Bottleneck(cin, filters, stride if block == 0 else 1, block == 0))
                    cin = 4 * filters
            return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000), nn.Softmax(dim=1))

        compiled = framework == "pytorch-compiled"
        layout = torch.channels_last if compiled else torch.contiguous_format
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=layout)
        yt = torch.from_numpy(y).unsqueeze(1)
        if inference:
            net = resnet50() if workload == "resnet50_infer" else nn.Sequential(
                mobilenet_v2_features(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                nn.Linear(1280, 1000), nn.Softmax(dim=1))
            net = net.to(memory_format=layout).eval()
            model = torch.compile(net) if compiled else net

            def step(index):
                with torch.no_grad():
                    model(xt[index * batch:(index + 1) * batch])
            rate = timed(step, 2, steps)
        else:
            features = mobilenet_v2_features()
            head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, 1))
            for parameter in features.parameters():
                parameter.requires_grad = False
            if workload == "transfer_fine_tune":
                # Keras's layer 100 is block_11's expand ReLU: blocks 12 on (block_11 onwards) train here.
                for block in list(features)[12:]:
                    for parameter in block.parameters():
                        parameter.requires_grad = True

            class Transfer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.features, self.head = features, head

                def forward(self, images):
                    return self.head(self.features(images / 127.5 - 1.0))
            net = Transfer().to(memory_format=layout)
            net.train()
            net.features.eval()  # base(x, training=False): BatchNormalization in inference mode
            trainable = [p for p in net.parameters() if p.requires_grad]
            optimizer = (torch.optim.Adam(trainable, lr=1e-4, eps=1e-7) if workload == "transfer_frozen"
                         else torch.optim.RMSprop(trainable, lr=1e-5, alpha=0.9, eps=1e-7))
            model = torch.compile(net) if compiled else net
            loss_function = nn.BCEWithLogitsLoss()

            def step(index):
                optimizer.zero_grad()
                loss_function(model(xt[index * batch:(index + 1) * batch]), yt[index * batch:(index + 1) * batch]).backward()
                optimizer.step()
            rate = timed(step, 3, steps)
        print(json.dumps({"rate": rate}))
        sys.exit(0)

    if framework == "fastcnn":
        import fastcnn as keras
        keras.config.set_num_threads(threads)
    elif framework == "keras-jax":
        os.environ["KERAS_BACKEND"] = "jax"
        import warnings; warnings.filterwarnings("ignore")
        import keras
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import warnings; warnings.filterwarnings("ignore")
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        keras = tf.keras
    layers = keras.layers
    if inference:
        builder = keras.applications.ResNet50 if workload == "resnet50_infer" else keras.applications.MobileNetV2
        model = builder(weights=None)
        rate = timed(lambda index: model.predict_on_batch(x[index * batch:(index + 1) * batch]), 2, steps)
    else:
        base = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights=None)
        base.trainable = False
        inputs = keras.Input((size, size, 3))
        features = base(layers.Rescaling(1 / 127.5, offset=-1)(inputs), training=False)
        outputs = layers.Dense(1)(layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(features)))
        model = keras.Model(inputs, outputs)
        optimizer = keras.optimizers.Adam(1e-4)
        if workload == "transfer_fine_tune":
            base.trainable = True
            for layer in base.layers[:fine_tune_at]:
                layer.trainable = False
            optimizer = keras.optimizers.RMSprop(1e-5)
        model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(from_logits=True))
        model.fit(x[:batch * 3], y[:batch * 3], batch_size=batch, epochs=1, verbose=0)  # warm-up (and compilation)
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        rate = batch * steps / (time.perf_counter() - start)
    print(json.dumps({"rate": rate}))
''')


def run(framework, workload, steps, threads):
    batch, size, _ = WORKLOADS[workload]
    env = child_environment(framework, threads)
    cpus = env.pop("FASTCNN_BENCH_CPUS", None)
    preexec = (lambda: os.sched_setaffinity(0, [int(c) for c in cpus.split(",")])) if cpus else None
    result = subprocess.run([sys.executable, "-c", WORKER, framework, workload, str(batch), str(size), str(steps),
                             str(FINE_TUNE_AT)], capture_output=True, text=True, env=env,
                            cwd=os.path.expanduser("~"), preexec_fn=preexec)
    if result.returncode != 0:
        raise RuntimeError(f"{framework} {workload} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["rate"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of: {', '.join(WORKLOADS)}")
    parser.add_argument("--frameworks", default="fastcnn,tensorflow,keras-jax,pytorch,pytorch-compiled")
    args = parser.parse_args()
    workloads = args.workloads.split(",")
    for workload in workloads:
        if workload not in WORKLOADS:
            parser.error(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")
    frameworks = []
    for framework in args.frameworks.split(","):
        if framework not in FRAMEWORKS or framework == "fastcnn-baseline":
            parser.error(f"unknown framework {framework!r}")
        reason = missing_requirement(framework)
        if reason:
            print(f"note: {reason}", flush=True)
        else:
            frameworks.append(framework)
    rates = {(framework, workload): [] for framework in frameworks for workload in workloads}
    for _ in range(args.rounds):
        for workload in workloads:
            for framework in frameworks:
                rates[(framework, workload)].append(run(framework, workload, args.steps, args.threads))
    print(f"\n{args.threads} threads, images/s, median of {args.rounds} interleaved rounds of {args.steps} steps")
    labels = [FRAMEWORKS[framework][0] for framework in frameworks]
    print(f"{'workload':20s}" + "".join(f"{label:>18s}" for label in labels) + f"{'fastcnn / best peer':>22s}")
    for workload in workloads:
        medians = {framework: statistics.median(rates[(framework, workload)]) for framework in frameworks}
        peers = [value for framework, value in medians.items() if framework != "fastcnn"]
        ratio = f"{medians['fastcnn'] / max(peers):.2f}x" if "fastcnn" in medians and peers else "-"
        print(f"{workload:20s}" + "".join(f"{medians[f]:18.1f}" for f in frameworks) + f"{ratio:>22s}")


if __name__ == "__main__":
    main()
