#!/usr/bin/env python3
"""Writes the bundled sample's WIDER FACE evaluation ground truth in the official .mat layout
(datasets/wider_sample/eval_tools/ground_truth/wider_{face,easy,medium,hard}_val.mat), from its
wider_face_val_bbx_gt.txt: event_list, file_list, face_bbx_list (x y w h), and gt_list (1-based
indices of the faces each setting keeps). The official subsets come from WIDER's own difficulty
labels; the sample has none, so here a face is Easy at >= 50 px tall, Medium at >= 40, Hard
always. Needs scipy. Usage: python3 scripts/make_sample_wider_mat.py [SAMPLE_ROOT]"""
import os, sys
from collections import OrderedDict
import numpy as np
from scipy.io import savemat

root = sys.argv[1] if len(sys.argv) > 1 else "datasets/wider_sample"
lines = [l.strip() for l in open(os.path.join(root, "wider_face_split/wider_face_val_bbx_gt.txt")) if l.strip()]
events = OrderedDict()
i = 0
while i < len(lines):
    path, n = lines[i], int(lines[i + 1])
    boxes = [list(map(float, l.split()[:4])) for l in lines[i + 2:i + 2 + max(n, 1)]][:n]
    event, name = path.split("/")
    events.setdefault(event, []).append((name.rsplit(".", 1)[0], np.array(boxes, dtype=np.float64).reshape(-1, 4)))
    i += 2 + max(n, 1)


def cell(items):
    out = np.empty((len(items), 1), dtype=object)
    for k, v in enumerate(items):
        out[k, 0] = v
    return out


out = os.path.join(root, "eval_tools/ground_truth")
os.makedirs(out, exist_ok=True)
ev = list(events)
base = {
    "event_list": cell(ev),
    "file_list": cell([cell([f for f, _ in events[e]]) for e in ev]),
    "face_bbx_list": cell([cell([b for _, b in events[e]]) for e in ev]),
}
savemat(os.path.join(out, "wider_face_val.mat"), base, do_compression=True)
for setting, min_h in (("easy", 50), ("medium", 40), ("hard", 0)):
    keep = cell([cell([np.array([[k + 1] for k, bb in enumerate(b) if bb[3] >= min_h], dtype=np.float64).reshape(-1, 1) for _, b in events[e]]) for e in ev])
    savemat(os.path.join(out, f"wider_{setting}_val.mat"), dict(base, gt_list=keep), do_compression=True)
print("wrote", sorted(os.listdir(out)))
