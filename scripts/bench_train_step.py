#!/usr/bin/env python3
"""PyTorch twin of `cargo bench -p train --bench train_step`: one training step (forward, loss,
backward, SGD momentum 0.9) of RNNPool-Face-M4 (batch 8 x 1x320x320) and RNNPool-Face-Quant
(batch 32 x 3x640x640), both with the S3FD multibox loss (matching and 3:1 hard negative mining
on the same fixed faces), and of the VWW MobileNetV2-0.35x-RNNPool (batch 16 x 3x224x224,
cross-entropy). Median ms over steps.

  python3 scripts/bench_train_step.py --threads 2 --steps 10 [--case face_m4|face_quant|vww]
  python3 scripts/bench_train_step.py --device cuda --case face_m4 --batch 64   # the paper's M4 batch

--batch and --size override the batch (8, 32, 16) and input side (320, 640, 224); `all` leaves
out face_quant, as the Rust bench does. On CUDA the step is timed
after torch.cuda.synchronize(); the first step (warm-up) is not counted.

The RNNPool layer is scripts/torch_rnnpool.py's (checked against the fixtures); the
rest follows EdgeML's RPool_Face_M4.py and model_mobilenet_rnnpool.py. Needs torch.
"""
import argparse, json, math, os, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_rnnpool import RNNPoolLayer  # noqa: E402


def cbr(cin, cout, k=3, s=1, g=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=g, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())


class IR(nn.Module):
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


def rnnpool_map(layer, x):
    out = layer(x)  # [B, 4*h2, Ho, Wo]; replicate the last row and column as the face models do
    return F.pad(out, (0, 1, 0, 1), mode="replicate")


class S3FD(nn.Module):
    """The heads of EdgeML's RNNPool face models: L2Norm on the first three sources, a 3x3 loc and
    conf conv per source, max-out over three background scores on the first."""

    def heads(self, chans, head_in=None):
        head_in = head_in or chans
        self.norms = nn.ModuleList([L2Norm(c, s) for c, s in zip(chans, (10, 8, 5))])
        self.loc = nn.ModuleList([nn.Conv2d(c, 4, 3, 1, 1) for c in head_in])
        self.conf = nn.ModuleList([nn.Conv2d(c, 4 if i == 0 else 2, 3, 1, 1) for i, c in enumerate(head_in)])

    def detect(self, srcs, pre=None):
        locs, confs, maps = [], [], []
        b = srcs[0].shape[0]
        for i, s in enumerate(srcs):
            s = self.norms[i](s) if i < 3 else s
            l_in, c_in = (pre[0](s), pre[1](s)) if (pre and i == 0) else (s, s)
            l, c = self.loc[i](l_in), self.conf[i](c_in)
            if i == 0:
                c = torch.cat([c[:, :3].max(1, keepdim=True)[0], c[:, 3:]], 1)
            maps.append(l.shape[2:])
            locs.append(l.permute(0, 2, 3, 1).reshape(b, -1))
            confs.append(c.permute(0, 2, 3, 1).reshape(b, -1))
        return torch.cat(locs, 1).view(b, -1, 4), torch.cat(confs, 1).view(b, -1, 2), maps


class FaceM4(S3FD):
    steps, anchors = (8, 8, 16, 16), (8, 16, 32, 48)

    def __init__(self):
        super().__init__()
        self.conv = cbr(1, 4, 3, 2)
        self.rnn = RNNPoolLayer(4, 8, 4, 16, 16)
        self.mob = nn.ModuleList([IR(64, 32, 1, 2), IR(32, 32, 1, 2), IR(32, 64, 2, 2), IR(64, 64, 1, 2)])
        self.heads([32, 32, 64, 64])

    def forward(self, x):
        h, srcs = rnnpool_map(self.rnn, self.conv(x)), []
        for m in self.mob:
            h = m(h)
            srcs.append(h)
        return self.detect(srcs)


class FaceQuant(S3FD):
    """RPool_Face_Quant: two 3x3 convs, RNNPool (4 channels, hidden 8), 12 inverted residuals;
    the first source is the stem's output through a stride-2 ConvBNReLU6 (4 -> 8) per head."""
    steps, anchors = (4, 8, 16, 32, 64, 128), (16, 32, 64, 128, 256, 512)
    blocks = [(32, 16, 1, 2)] + [(16, 16, 1, 2)] * 3 + [(16, 24, 2, 2)] + [(24, 24, 1, 2)] * 3 + [
        (24, 32, 2, 2), (32, 32, 1, 2), (32, 64, 2, 2), (64, 96, 2, 2)]
    sources = (3, 7, 9, 10, 11)

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(cbr(3, 4, 3, 2), cbr(4, 4, 3, 1))
        self.rnn = RNNPoolLayer(4, 8, 4, 8, 8)
        self.mob = nn.ModuleList([IR(*b) for b in self.blocks])
        self.pre = nn.ModuleList([cbr(4, 8, 3, 2), cbr(4, 8, 3, 2)])
        chans = [4, 16, 24, 32, 64, 96]
        self.heads(chans, [8] + chans[1:])

    def forward(self, x):
        stem = self.stem(x)
        h, feats = rnnpool_map(self.rnn, stem), []
        for m in self.mob:
            h = m(h)
            feats.append(h)
        return self.detect([stem] + [feats[i] for i in self.sources], self.pre)


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
    area = lambda t: (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
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


class VWW(nn.Module):
    def __init__(self):
        super().__init__()
        self.init = cbr(3, 8, 3, 2)
        self.rnn = RNNPoolLayer(8, 6, 4, 8, 8)
        cfg, cin, layers = [(6, 24, 4, 2), (6, 32, 3, 1), (6, 56, 3, 2), (6, 112, 1, 1)], 32, []
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(IR(cin, c, s if i == 0 else 1, t))
                cin = c
        self.features = nn.Sequential(*layers, cbr(cin, 320, 1))
        self.fc = nn.Linear(320, 2)

    def forward(self, x):
        h = self.features(rnnpool_map(self.rnn, self.init(x)))
        return self.fc(h.mean((2, 3)))


def bench(case, steps, device="cpu", batch=None, size=None):
    face = case in ("face_m4", "face_quant")
    if case == "face_m4":
        model, batch, size, channels = FaceM4(), batch or 8, size or 320, 1
    elif case == "face_quant":
        model, batch, size, channels = FaceQuant(), batch or 32, size or 640, 3
    else:
        model, batch, size, channels = VWW(), batch or 16, size or 224, 3
        labels = torch.arange(batch, device=device) % 2
    if face:
        faces = [torch.tensor([[0.1 + 0.02 * i, 0.1, 0.15 + 0.02 * i, 0.16], [0.4, 0.3 + 0.02 * i, 0.5, 0.42 + 0.02 * i], [0.6, 0.6, 0.85, 0.9]], device=device) for i in range(batch)]
    model = model.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    times = []
    for _ in range(steps + 1):
        x = torch.randn(batch, channels, size, size, device=device) * (60 if face else 1)
        sync()
        t0 = time.perf_counter()
        if face:
            loc, conf, maps = model(x)
            loss = multibox(loc, conf, priors(size, maps, model.steps, model.anchors, device=device), faces)
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
    return {"case": case, "framework": "pytorch", "device": name, "threads": torch.get_num_threads(), "batch": batch, "size": size, "median_ms": round(ms, 1), "images_per_s": round(batch * 1e3 / ms, 1)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--case", default="all")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int)
    ap.add_argument("--size", type=int)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for c in ["face_m4", "vww", "face_quant"]:
        if a.case == c or (a.case == "all" and c != "face_quant"):
            print(json.dumps(bench(c, a.steps, a.device, a.batch, a.size)))
