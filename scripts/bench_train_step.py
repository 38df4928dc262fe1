#!/usr/bin/env python3
"""PyTorch twin of `cargo bench -p train --bench train_step`: one training step (forward, loss,
backward, SGD with momentum 0.9) of every model a shipped config trains, as rnnpool-rs builds it,
in eager PyTorch. Face models take the S3FD multibox loss (matching with scale compensation, 3:1
hard negative mining) on the same fixed faces, classifiers cross-entropy. Median ms over steps
after one warm-up step; one JSON line per case with the Rust bench's keys.

  python3 scripts/bench_train_step.py [--case NAME]... [--batch N] [--size S] [--steps N]
      [--threads N] [--device cpu|cuda]

Cases (default batch, input): face_m4 (8, 1x320x320), face_qvga (4, 1x320x320), face_quant and
face_c (4, 3x320x320), vww (16, 3x224x224), imagenet_rnnpool (8, 3x224x224, 10 classes),
densenet_rnnpool (4, 3x224x224, 10 classes), fashion (64, 1x28x28). The RNNPool layer is
scripts/torch_rnnpool.py's (checked against the fixtures); the face models follow EdgeML's
RPool_Face_*.py, the classifiers torchvision's MobileNetV2 and DenseNet121 with RNNPool as the
paper places it. Needs torch.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_rnnpool import RNNPoolLayer  # noqa: E402


def cbr(cin, cout, k=3, s=1, g=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=g, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())


class IR(nn.Module):
    """MobileNetV2's inverted residual."""

    def __init__(self, cin, cout, s, t):
        super().__init__()
        h = cin * t
        layers = ([cbr(cin, h, 1)] if t != 1 else []) + [cbr(h, h, 3, s, h), nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv, self.res = nn.Sequential(*layers), s == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class L2Norm(nn.Module):
    def __init__(self, c, scale):
        super().__init__()
        self.w = nn.Parameter(torch.full((c,), float(scale)))

    def forward(self, x):
        return x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) * self.w.view(1, -1, 1, 1)


def repeat(n, block):
    return [block] * n


# name: (input channels, stem convs (cin, cout, stride), RNNPool (channels, hidden), blocks
# (cin, cout, stride, expansion), sources (None: the stem's output, i: after block i), head
# kernels, VGA), as rnnpool-rs's models::face builds them.
FACES = {
    "face_m4": (1, [(1, 4, 2)], (4, 16), [(64, 32, 1, 2), (32, 32, 1, 2), (32, 64, 2, 2), (64, 64, 1, 2)],
                [0, 1, 2, 3], [3] * 4, False),
    "face_qvga": (1, [(1, 4, 2)], (4, 16),
                  [(64, 32, 1, 2)] + repeat(7, (32, 32, 1, 2)) + [(32, 96, 2, 2)] + repeat(2, (96, 96, 1, 2))
                  + [(96, 128, 1, 2)] + repeat(2, (128, 128, 1, 2)), [3, 7, 10, 13], [3] * 4, False),
    "face_quant": (3, [(3, 4, 2), (4, 4, 1)], (4, 8),
                   [(32, 16, 1, 2)] + repeat(3, (16, 16, 1, 2)) + [(16, 24, 2, 2)] + repeat(3, (24, 24, 1, 2))
                   + [(24, 32, 2, 2), (32, 32, 1, 2), (32, 64, 2, 2), (64, 96, 2, 2)],
                   [None, 3, 7, 9, 10, 11], [3] * 6, True),
    "face_c": (3, [], (3, 16),
               [(64, 24, 1, 1), (24, 24, 1, 6), (24, 32, 2, 6)] + repeat(2, (32, 32, 1, 6)) + [(32, 64, 2, 6)]
               + repeat(3, (64, 64, 1, 6)) + [(64, 96, 2, 6)] + repeat(2, (96, 96, 1, 6))
               + [(96, 160, 2, 6), (160, 160, 1, 6), (160, 320, 2, 6)], [1, 4, 8, 11, 13, 14], [5, 5, 5, 1, 1, 3], True),
}


class Face(nn.Module):
    """An RNNPool face detector with S3FD heads: L2Norm on the first three sources, a loc and a
    conf conv per source, max-out over three background logits on the first; Face-Quant's
    first source goes through a stride-2 ConvBNReLU6 (to 8 channels) in each head."""

    def __init__(self, name):
        super().__init__()
        cin, stem, (rk, rh), blocks, sources, kernels, self.vga = FACES[name]
        self.stem = nn.Sequential(*[cbr(i, o, 3, s) for i, o, s in stem])
        self.rnn = RNNPoolLayer(rk, 8, 4, rh, rh)
        self.blocks = nn.ModuleList([IR(*b) for b in blocks])
        self.sources = sources
        stem_out = stem[-1][1] if stem else cin
        chans = [stem_out if s is None else blocks[s][1] for s in sources]
        quant = name == "face_quant"
        self.pre = nn.ModuleList([cbr(chans[0], 8, 3, 2), cbr(chans[0], 8, 3, 2)]) if quant else None
        head_in = [8 if (k == 0 and quant) else c for k, c in enumerate(chans)]
        self.norms = nn.ModuleList([L2Norm(c, s) for c, s in zip(chans, (10, 8, 5))])
        self.loc = nn.ModuleList([nn.Conv2d(c, 4, k, 1, (k - 1) // 2) for c, k in zip(head_in, kernels)])
        self.conf = nn.ModuleList([nn.Conv2d(c, 4 if i == 0 else 2, k, 1, (k - 1) // 2) for i, (c, k) in enumerate(zip(head_in, kernels))])
        self.steps, self.anchors = ((4, 8, 16, 32, 64, 128), (16, 32, 64, 128, 256, 512)) if self.vga else ((8, 8, 16, 16), (8, 16, 32, 48))

    def forward(self, x):
        stem = self.stem(x)
        feats = [stem] if None in self.sources else []
        h = self.rnn(stem)
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i in self.sources:
                feats.append(h)
        locs, confs, maps, b = [], [], [], x.shape[0]
        for k, f in enumerate(feats):
            f = self.norms[k](f) if k < 3 else f
            l_in, c_in = (self.pre[0](f), self.pre[1](f)) if (self.pre is not None and k == 0) else (f, f)
            l, c = self.loc[k](l_in), self.conf[k](c_in)
            if k == 0:
                c = torch.cat([c[:, :3].max(1, keepdim=True)[0], c[:, 3:]], 1)
            maps.append(l.shape[2:])
            locs.append(l.permute(0, 2, 3, 1).reshape(b, -1))
            confs.append(c.permute(0, 2, 3, 1).reshape(b, -1))
        return torch.cat(locs, 1).view(b, -1, 4), torch.cat(confs, 1).view(b, -1, 2), maps


def priors(img, maps, steps, anchors, device="cpu"):
    out = []
    for (fh, fw), st, a in zip(maps, steps, anchors):
        for i in range(fh):
            for j in range(fw):
                out.append([(j + 0.5) * st / img, (i + 0.5) * st / img, a / img, a / img])
    return torch.tensor(out, device=device)


def iou(a, b):
    lt, rb = torch.max(a[:, None, :2], b[None, :, :2]), torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area = lambda t: (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def match(truths, pri):
    pf = torch.cat([pri[:, :2] - pri[:, 2:] / 2, pri[:, :2] + pri[:, 2:] / 2], 1)
    ov = iou(truths, pf)
    bp_ov, bp = ov.max(1)
    bt_ov, bt = ov.max(0)
    bt_ov.index_fill_(0, bp, 2)
    for j in range(bp.size(0)):
        bt[bp[j]] = j
    conf = (bt_ov >= 0.35).long()
    n = (int((bp_ov >= 0.35).sum()) + int((bp_ov >= 0.5).sum())) // 2
    cand = bt_ov.clone()
    cand[~((bt_ov > 0.1) & (bt_ov < 0.35))] = 0
    so, si = cand.sort(descending=True)
    n = min(n, int((so[:n] > 0.1).sum()))
    conf[si[:n]] = 1
    m = truths[bt]
    g_c = ((m[:, :2] + m[:, 2:]) / 2 - pri[:, :2]) / (0.1 * pri[:, 2:])
    g_wh = torch.log((m[:, 2:] - m[:, :2]) / pri[:, 2:]) / 0.2
    return torch.cat([g_c, g_wh], 1), conf


def multibox(loc, conf, pri, faces):
    tl, tc = zip(*[match(f, pri) for f in faces])
    tl, tc = torch.stack(tl), torch.stack(tc)
    pos = tc > 0
    loss_l = F.smooth_l1_loss(loc[pos], tl[pos], reduction="sum")
    ce = F.cross_entropy(conf.reshape(-1, 2), tc.reshape(-1), reduction="none").view(tc.shape)
    mine = ce.detach().clone()
    mine[pos] = 0
    _, idx = mine.sort(1, descending=True)
    _, rank = idx.sort(1)
    num_neg = torch.clamp(3 * pos.long().sum(1, keepdim=True), max=pos.size(1) - 1)
    neg = rank < num_neg
    loss_c = ce[pos | neg].sum()
    n = max(int(pos.sum()), 1)
    return (loss_l + loss_c) / n


def make_divisible(v, d=8):
    r = max(d, int(v + d / 2) // d * d)
    return r + d if r < 0.9 * v else r


class MobileNetV2RNNPool(nn.Module):
    """torchvision's MobileNetV2 with an RNNPool in place of stages 1-3 (patch 6, stride 4):
    ImageNet's (h1 = h2 = 16) or the Visual Wake Words model (width 0.35, stem 8, h 8, last 320)."""

    def __init__(self, classes, width=1.0, stem=None, hidden=16, last=None):
        super().__init__()
        stem = stem or make_divisible(32 * width)
        last = last or make_divisible(1280 * max(1.0, width))
        self.stem = cbr(3, stem, 3, 2)
        self.rnn = RNNPoolLayer(stem, 6, 4, hidden, hidden)
        cin, layers = 4 * hidden, []
        for t, c, n, s in [(6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)] if width == 1.0 else \
                [(6, 24, 4, 2), (6, 32, 3, 1), (6, 56, 3, 2), (6, 112, 1, 1)]:
            c = make_divisible(c * width) if width == 1.0 else c
            for i in range(n):
                layers.append(IR(cin, c, s if i == 0 else 1, t))
                cin = c
        self.features = nn.Sequential(*layers, cbr(cin, last, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x):
        return self.classifier(self.features(self.rnn(self.stem(x))).mean((2, 3)))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth=32, bn_size=4):
        super().__init__()
        self.f = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, bn_size * growth, 1, bias=False),
                               nn.BatchNorm2d(bn_size * growth), nn.ReLU(), nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.f(x)], 1)


def transition(cin, cout):
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2, 2))


class DenseNetRNNPool(nn.Module):
    """DenseNet121 with an RNNPool (patch 8, stride 4, h 48) after its 7x7 stem in place of the
    max pool, dense blocks 1-2 and their transitions, then transition2 to 256 channels."""

    def __init__(self, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.rnn = RNNPoolLayer(64, 8, 4, 48, 48)
        layers, c = [transition(192, 256)], 256
        for b, n in enumerate((24, 16)):
            layers += [DenseLayer(c + i * 32) for i in range(n)]
            c += n * 32
            if b == 0:
                layers.append(transition(c, c // 2))
                c //= 2
        self.features = nn.Sequential(*layers, nn.BatchNorm2d(c), nn.ReLU())
        self.classifier = nn.Linear(c, classes)

    def forward(self, x):
        return self.classifier(self.features(self.rnn(self.stem(x))).mean((2, 3)))


class Fashion(nn.Module):
    """The small 28x28 classifier: 3x3 stem (16), RNNPool (patch 4, stride 2, h 8), three
    inverted residuals, 1x1 to 128, mean, linear."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem, self.rnn = cbr(1, 16, 3, 1), RNNPoolLayer(16, 4, 2, 8, 8)
        self.features = nn.Sequential(IR(32, 32, 1, 2), IR(32, 64, 2, 2), IR(64, 64, 1, 2), cbr(64, 128, 1))
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        return self.fc(self.features(self.rnn(self.stem(x))).mean((2, 3)))


# name: (model factory, default batch, channels, size, classes; 0 classes: a detector)
CASES = {
    "face_m4": (lambda: Face("face_m4"), 8, 1, 320, 0),
    "face_qvga": (lambda: Face("face_qvga"), 4, 1, 320, 0),
    "face_quant": (lambda: Face("face_quant"), 4, 3, 320, 0),
    "face_c": (lambda: Face("face_c"), 4, 3, 320, 0),
    "vww": (lambda: MobileNetV2RNNPool(2, width=0.35, stem=8, hidden=8, last=320), 16, 3, 224, 2),
    "imagenet_rnnpool": (lambda: MobileNetV2RNNPool(10), 8, 3, 224, 10),
    "densenet_rnnpool": (lambda: DenseNetRNNPool(10), 4, 3, 224, 10),
    "fashion": (Fashion, 64, 1, 28, 10),
}


def faces(batch, device):
    return [torch.tensor([[0.1 + 0.02 * i, 0.1, 0.15 + 0.02 * i, 0.16], [0.4, 0.3 + 0.02 * i, 0.5, 0.42 + 0.02 * i],
                          [0.6, 0.6, 0.85, 0.9]], device=device) for i in range(batch)]


def bench(case, steps, device, batch, size):
    make, default_batch, channels, default_size, classes = CASES[case]
    batch, size = batch or default_batch, size or default_size
    torch.manual_seed(0)
    model = make().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    labels = torch.arange(batch, device=device) % max(classes, 1)
    boxes = faces(batch, device)
    times = []
    for _ in range(steps + 1):  # the first step warms up and is not counted
        x = torch.randn(batch, channels, size, size, device=device) * (60 if classes == 0 else 1)
        sync()
        t0 = time.perf_counter()
        if classes == 0:
            loc, conf, maps = model(x)
            loss = multibox(loc, conf, priors(size, maps, model.steps, model.anchors, device=device), boxes)
        else:
            loss = F.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
    times = sorted(times[1:])
    ms = times[len(times) // 2] * 1e3
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    return {"case": case, "framework": "pytorch", "device": name, "threads": torch.get_num_threads(), "batch": batch,
            "size": size, "steps": steps, "median_ms": round(ms, 1), "images_per_s": round(batch * 1e3 / ms, 1),
            "peak_rss_mb": round(rss)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", action="append", choices=sorted(CASES) + ["all"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int)
    ap.add_argument("--size", type=int)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    wanted = a.case or ["all"]
    for c in CASES:
        if "all" in wanted or c in wanted:
            print(json.dumps(bench(c, a.steps, a.device, a.batch, a.size)), flush=True)
