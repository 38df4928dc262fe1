#!/usr/bin/env python3
"""The RNNPool layer in PyTorch: the twin that rnnpool-rs's speed is compared with.

It computes EdgeML's RNNPool (FastGRNN cells, zero initial states; RNN1 over every row and column
of a patch, RNN2 over those summaries in both directions; outputs ordered row-forward,
row-backward, column-forward, column-backward; one replicated last row and column of the map) and
batches it as well as eager PyTorch allows: all patches of a batch at once, RNN1's row and column
sweeps as one batch of sequences, RNN2's four sweeps as another, time steps in a Python loop.

  python3 scripts/torch_rnnpool.py --check fixtures/rnnpool       # against the reference tensors
  python3 scripts/torch_rnnpool.py --case face_m4_train --threads 2
  python3 scripts/torch_rnnpool.py --device cuda --case face_m4_train --batch 64

The timed step is the forward and backward of mean(y^2); one JSON line per case, in the form of
`cargo bench -p rnnpool-core --bench rnnpool`. Needs torch (and safetensors for --check).
"""
import argparse
import glob
import json
import math
import os
import time

import torch
import torch.nn.functional as F

# name: (batch, channels, height, width, patch, stride, hidden1, hidden2, spread), the map each
# model's RNNPool sees at its training resolution; spread is the inputs' standard deviation
# (RNNPool-Face-C's layer reads mean-subtracted pixels, the others normalised maps).
CASES = {
    "face_c_train": (1, 3, 224, 224, 8, 4, 16, 16, 60.0),
    "face_m4_train": (8, 4, 160, 160, 8, 4, 16, 16, 1.0),
    "face_quant_train": (4, 4, 320, 320, 8, 4, 8, 8, 1.0),
    "vww_train": (16, 8, 112, 112, 6, 4, 8, 8, 1.0),
    "mobilenetv2_train": (16, 32, 112, 112, 6, 4, 16, 16, 1.0),
}

# EdgeML's state_dict prefixes of the two cells.
PREFIXES = ("cell_rnn.cell.", "cell_bidirrnn.cell.")


class FastGRNNCell(torch.nn.Module):
    """h' = z*h + (sigmoid(zeta)*(1 - z) + sigmoid(nu)) * tanh(pre + b_u), z = sigmoid(pre + b_g),
    pre = x@W + h@U; EdgeML's initialisation."""

    def __init__(self, inputs, hidden):
        super().__init__()
        self.W = torch.nn.Parameter(0.1 * torch.randn(inputs, hidden))
        self.U = torch.nn.Parameter(0.1 * torch.randn(hidden, hidden))
        self.bias_gate = torch.nn.Parameter(torch.ones(1, hidden))
        self.bias_update = torch.nn.Parameter(torch.ones(1, hidden))
        self.zeta = torch.nn.Parameter(torch.full((1, 1), 100.0))
        self.nu = torch.nn.Parameter(torch.full((1, 1), -100.0))

    def run(self, xs):
        """Last state of each sequence of `xs` [steps, sequences, inputs]."""
        projected = xs @ self.W
        zeta, nu = torch.sigmoid(self.zeta), torch.sigmoid(self.nu)
        h = projected.new_zeros(projected.shape[1:])
        for x_w in projected:
            pre = x_w + h @ self.U
            z = torch.sigmoid(pre + self.bias_gate)
            h = z * h + (zeta * (1 - z) + nu) * torch.tanh(pre + self.bias_update)
        return h


class RNNPoolLayer(torch.nn.Module):
    def __init__(self, channels, patch, stride, hidden1, hidden2):
        super().__init__()
        self.patch, self.stride = patch, stride
        self.rnn1 = FastGRNNCell(channels, hidden1)
        self.rnn2 = FastGRNNCell(hidden1, hidden2)

    def pool(self, patches):
        """[n, k, r, c] patches -> [n, 4*h2]."""
        n, k, r, c = patches.shape
        # A row is a sequence over its columns and a column one over its rows.
        rows = patches.permute(3, 0, 2, 1).reshape(c, n * r, k)
        cols = patches.permute(2, 0, 3, 1).reshape(r, n * c, k)
        if r == c:
            summaries = self.rnn1.run(torch.cat([rows, cols], 1))
            row_sum, col_sum = summaries[: n * r], summaries[n * r:]
        else:
            row_sum, col_sum = self.rnn1.run(rows), self.rnn1.run(cols)
        row_seq = row_sum.reshape(n, r, -1).transpose(0, 1)  # [r, n, h1]
        col_seq = col_sum.reshape(n, c, -1).transpose(0, 1)  # [c, n, h1]
        if r == c:
            both = torch.cat([row_seq, row_seq.flip(0), col_seq, col_seq.flip(0)], 1)
            return self.rnn2.run(both).reshape(4, n, -1).transpose(0, 1).reshape(n, -1)
        sweeps = [self.rnn2.run(s) for s in (row_seq, row_seq.flip(0), col_seq, col_seq.flip(0))]
        return torch.cat(sweeps, 1)

    def forward(self, x):
        """[b, k, H, W] -> [b, 4*h2, Ho + 1, Wo + 1]."""
        b, k, height, width = x.shape
        out_h = (height - self.patch) // self.stride + 1
        out_w = (width - self.patch) // self.stride + 1
        cols = F.unfold(x, self.patch, stride=self.stride)  # [b, k*r*r, Ho*Wo]
        patches = cols.transpose(1, 2).reshape(-1, k, self.patch, self.patch)
        y = self.pool(patches).reshape(b, out_h, out_w, -1).permute(0, 3, 1, 2)
        return F.pad(y, (0, 1, 0, 1), mode="replicate")

    def load_edgeml(self, tensors, prefix=""):
        with torch.no_grad():
            for cell, cell_prefix in zip((self.rnn1, self.rnn2), PREFIXES):
                for name, param in cell.named_parameters():
                    param.copy_(tensors[prefix + cell_prefix + name])
        return self


def check(folder):
    """Largest relative difference of the output and of every gradient, per fixture case."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise SystemExit(f"no *.safetensors in {folder}")
    worst = 0.0
    for path in files:
        meta, t = safe_open(path, "pt").metadata(), load_file(path)
        k, r, s, h1, h2 = (int(meta[key]) for key in ("in_channels", "patch", "stride", "hidden1", "hidden2"))
        layer = RNNPoolLayer(k, r, s, h1, h2).double().load_edgeml(t)
        x = t["input"].clone().requires_grad_(True)
        y = layer.pool(x) if meta["kind"] == "op" else layer(x)
        (y * t["grad_output"]).sum().backward()
        pairs = [("output", y.detach(), t["output"]), ("grad_input", x.grad, t["grad_input"])]
        for cell, cell_prefix in zip((layer.rnn1, layer.rnn2), PREFIXES):
            pairs += [(cell_prefix + n, p.grad, t["grad." + cell_prefix + n]) for n, p in cell.named_parameters()]
        rel = {name: float((a - b).abs().max() / b.abs().max().clamp(min=1e-30)) for name, a, b in pairs}
        name, largest = max(rel.items(), key=lambda kv: kv[1])
        worst = max(worst, largest)
        print(f"{os.path.basename(path)}: largest relative difference {largest:.2e} ({name})")
    if worst > 1e-9:
        raise SystemExit(f"FAILED: {worst:.2e} > 1e-9")


def bench(name, steps, device, batch, spread):
    b, k, h, w, r, s, h1, h2, case_spread = CASES[name]
    spread = case_spread if spread is None else spread
    b = batch or b
    layer = RNNPoolLayer(k, r, s, h1, h2).to(device)
    x = (spread * torch.randn(b, k, h, w, device=device)).requires_grad_()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    for _ in range(steps + 1):  # the first step warms up and is not counted
        sync()
        start = time.perf_counter()
        layer(x).square().mean().backward()
        sync()
        times.append(time.perf_counter() - start)
    times = sorted(times[1:])
    ms = 1000 * times[len(times) // 2]
    device_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return {"case": name, "framework": "pytorch", "device": device_name, "threads": torch.get_num_threads(),
            "batch": b, "ms_median": round(ms, 3), "ms_min": round(1000 * times[0], 3),
            "images_per_s": round(b * 1000 / ms, 1), "patches": b * ((h - r) // s + 1) * ((w - r) // s + 1)}


def positive(text):
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", metavar="FOLDER", help="compare with every operator fixture in FOLDER")
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, help="override the case's batch")
    ap.add_argument("--spread", type=positive, help="override the case's standard deviation of the inputs")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.check:
        torch.set_default_dtype(torch.float64)
        check(a.check)
    for case in a.case or ([] if a.check else sorted(CASES)):
        print(json.dumps(bench(case, a.steps, a.device, a.batch, a.spread)), flush=True)
