#!/usr/bin/env python3
"""The RNNPool layer, forward + backward of mean(y^2), in PyTorch on CPU or CUDA: the layer of
../shared/bench/torch_rnnpool.py (checked against the fixtures) at its cases, with the batch
overridable so that GPU runs use the paper's training batches. One JSON line per case, in the
form of `cargo bench -p rnnpool-core --bench rnnpool`.

  python3 scripts/bench_torch_rnnpool.py --device cuda --case face_m4_train --batch 64
  python3 scripts/bench_torch_rnnpool.py --device cuda --case face_quant_train --batch 32

$TORCH_RNNPOOL_DIR names the folder of torch_rnnpool.py where ../shared is not beside the
checkout. Needs torch.
"""
import argparse, json, os, sys, time
import torch

sys.path.insert(0, os.environ.get("TORCH_RNNPOOL_DIR", os.path.join(os.path.dirname(__file__), "../../shared/bench")))
from torch_rnnpool import CASES, RNNPoolLayer  # noqa: E402


def bench(name, steps, device, batch):
    b, k, h, w, r, s, h1, h2 = CASES[name]
    b = batch or b
    layer = RNNPoolLayer(k, r, s, h1, h2).to(device)
    x = torch.randn(b, k, h, w, device=device, requires_grad=True)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    for _ in range(steps + 1):
        sync()
        t0 = time.perf_counter()
        layer(x).square().mean().backward()
        sync()
        times.append(time.perf_counter() - t0)
    times = sorted(times[1:])
    ms = 1000 * times[len(times) // 2]
    name_dev = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return {"case": name, "framework": "pytorch", "device": name_dev, "batch": b, "ms_median": round(ms, 3),
            "ms_min": round(1000 * times[0], 3), "images_per_s": round(b * 1000 / ms, 1),
            "patches": b * ((h - r) // s + 1) * ((w - r) // s + 1)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for c in a.case or sorted(CASES):
        print(json.dumps(bench(c, a.steps, a.device, a.batch)), flush=True)
