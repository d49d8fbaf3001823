#!/usr/bin/env python3
"""PyTorch eager timings of kiln-bench's rows without recorded anchors:
the model-zoo rows (Z1-Z3), issue #16's ResNet-18 (R18) and the LSTM
scaling rows (the W5 LSTM over 32, 128 and 512 time steps).

The same training steps as crates/kiln-bench/src/workloads_zoo.rs and
workloads.rs:

  Z1-resnet18-sgd   torchvision's resnet18 (10 classes) on 3x32x32, batch 32,
                    SGD lr 0.01 momentum 0.9
  Z2-inception-sgd  the course notes' Inception net (two InceptionA blocks,
                    88 channels, fc 1408 -> 10) on 1x28x28, batch 64, SGD
                    lr 0.01 momentum 0.9
  Z3-tinyvit-adam   the course's tiny ViT (7x7 patches, width 16, 2 pre-norm
                    GELU encoder layers of 4 heads, feed-forward 32) on 1x28x28,
                    batch 64, Adam 1e-3

float32, fixed seed, one synthetic batch (standard-normal inputs, uniform
labels) reused every step, torch.set_num_threads(2) (the 2-core reference
machine); each step is zero_grad, forward, mean cross-entropy, backward,
optimizer step. Timing as ../../../shared/bench/common.py's time_fn: 10
warm-up calls, then at least 30 calls and 3 s, each timed on its own; the
median and p10/p90 are printed. "build" is the time to construct the model
(eager PyTorch has no compile step; compare with kiln's compile time).

Usage:
    python3 crates/kiln-bench/scripts/zoo_torch_bench.py [--cases Z1-resnet18-sgd ...]
        [--threads 2] [--min-time 3] [--json out.jsonl]

Needs torch; torchvision is used for resnet18 when installed, otherwise an
equivalent definition below (same layers, same order).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

CASES = ("Z1-resnet18-sgd", "Z2-inception-sgd", "Z3-tinyvit-adam", "R18-resnet18-sgd",
         "S32-lstm-adam", "S128-lstm-adam", "S512-lstm-adam")
SEED = 0
CLASSES = 10


def resnet18(num_classes: int, small_stem: bool = False):
    import torch.nn as nn
    try:
        import torchvision
        m = torchvision.models.resnet18(num_classes=num_classes)
        if small_stem:
            m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            m.maxpool = nn.Identity()
        return m
    except ImportError:
        pass

    class BasicBlock(nn.Module):
        def __init__(self, cin, c, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)
            self.downsample = None
            if stride != 1 or cin != c:
                self.downsample = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return self.relu(y + idt)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False) if small_stem else nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.Identity() if small_stem else nn.MaxPool2d(3, 2, 1)
            layers, cin = [], 64
            for c, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers.append(nn.Sequential(BasicBlock(cin, c, s), BasicBlock(c, c, 1)))
                cin = c
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet18()


def inception_net(num_classes: int):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class InceptionA(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.branch1x1 = nn.Conv2d(cin, 16, 1)
            self.branch5x5_1 = nn.Conv2d(cin, 16, 1)
            self.branch5x5_2 = nn.Conv2d(16, 24, 5, padding=2)
            self.branch3x3_1 = nn.Conv2d(cin, 16, 1)
            self.branch3x3_2 = nn.Conv2d(16, 24, 3, padding=1)
            self.branch3x3_3 = nn.Conv2d(24, 24, 3, padding=1)
            self.branch_pool = nn.Conv2d(cin, 24, 1)

        def forward(self, x):
            b1 = self.branch1x1(x)
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3_3(self.branch3x3_2(self.branch3x3_1(x)))
            bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
            return torch.cat([b1, b5, b3, bp], dim=1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 10, 5)
            self.conv2 = nn.Conv2d(88, 20, 5)
            self.incep1 = InceptionA(10)
            self.incep2 = InceptionA(20)
            self.mp = nn.MaxPool2d(2)
            self.fc = nn.Linear(1408, num_classes)

        def forward(self, x):
            x = F.relu(self.mp(self.conv1(x)))
            x = self.incep1(x)
            x = F.relu(self.mp(self.conv2(x)))
            x = self.incep2(x)
            return self.fc(x.flatten(1))

    return Net()


def tiny_vit(num_classes: int, image=28, patch=7, dim=16, depth=2, heads=4, mlp=32):
    import torch
    import torch.nn as nn

    class TinyViT(nn.Module):
        def __init__(self):
            super().__init__()
            tokens = (image // patch) ** 2 + 1
            self.patch = nn.Conv2d(1, dim, patch, stride=patch)
            self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
            self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
            layer = nn.TransformerEncoderLayer(dim, heads, mlp, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, num_classes)

        def forward(self, x):
            e = self.patch(x).flatten(2).transpose(1, 2)
            cls = self.cls_token.expand(x.shape[0], -1, -1)
            t = torch.cat([cls, e], dim=1) + self.pos_embed
            y = self.encoder(t)
            return self.head(self.norm(y[:, 0]))

    return TinyViT()


def lstm_net(num_classes: int):
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(64, 256)
            self.fc = nn.Linear(256, num_classes)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return self.fc(h[0])

    return Net()


def time_fn(fn, warmup=10, min_iters=30, min_time_s=3.0):
    for _ in range(warmup):
        fn()
    samples = []
    t_loop = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) >= min_iters and time.perf_counter() - t_loop >= min_time_s:
            break
    samples.sort()
    return statistics.median(samples), samples[int(0.1 * (len(samples) - 1))], samples[int(0.9 * (len(samples) - 1))], len(samples)


def run_case(case: str, min_time: float) -> dict:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    if case == "Z1-resnet18-sgd":
        batch, model, shape = 32, resnet18(CLASSES), (32, 3, 32, 32)
    elif case == "Z2-inception-sgd":
        batch, model, shape = 64, inception_net(CLASSES), (64, 1, 28, 28)
    elif case == "Z3-tinyvit-adam":
        batch, model, shape = 64, tiny_vit(CLASSES), (64, 1, 28, 28)
    elif case == "R18-resnet18-sgd":
        batch, model, shape = 16, resnet18(CLASSES, small_stem=True), (16, 3, 32, 32)
    elif case.endswith("-lstm-adam"):
        batch, model, shape = 32, lstm_net(CLASSES), (int(case[1:case.index("-")]), 32, 64)
    else:
        raise ValueError(case)
    build_s = time.perf_counter() - t0
    x = torch.randn(*shape)
    y = torch.randint(0, CLASSES, (batch,))
    model.train()
    if case.endswith("-adam"):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    med, p10, p90, iters = time_fn(step, min_time_s=min_time)
    return {"workload": case, "framework": "torch-eager", "batch": batch, "median_ms": med,
            "p10_ms": p10, "p90_ms": p90, "samples_per_s": batch / (med / 1e3), "iters": iters,
            "build_s": build_s, "params": sum(p.numel() for p in model.parameters()),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-time", type=float, default=3.0)
    p.add_argument("--json", help="append one JSON object per case to this file")
    a = p.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    torch.set_default_dtype(torch.float32)
    print(f"{'workload':<20} {'batch':>5} {'median ms':>10} {'p10/p90 ms':>17} {'samples/s':>10} {'build s':>8} {'params':>10}")
    for case in a.cases:
        r = run_case(case, a.min_time)
        print(f"{r['workload']:<20} {r['batch']:>5} {r['median_ms']:>10.2f} {r['p10_ms']:>8.2f}/{r['p90_ms']:<8.2f} "
              f"{r['samples_per_s']:>10.0f} {r['build_s']:>8.3f} {r['params']:>10}")
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
