#!/usr/bin/env bash
# Training-step benchmarks for a GPU machine, at the paper's batch sizes: RNNPool-Face-M4 64 x
# 320x320 and RNNPool-Face-Quant 32 x 640x640 on burn's wgpu backend, and the PyTorch twin of
# Face-M4 on CUDA when torch with CUDA is there (PYTHON=/path/to/python). JSON lines on stdout.
# Not yet run on a GPU (none was lent to the session that wrote it); the release build with wgpu
# takes ~30 minutes on 2 cores.
#   scripts/bench_gpu.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-20}"
python="${PYTHON:-python3}"
bench() { cargo bench -q -p train --features wgpu --bench train_step -- --backend wgpu --steps "$steps" "$@"; }
bench --case face_m4 --batch 64
bench --case face_quant --batch 32
if "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  "$python" scripts/bench_train_step.py --device cuda --case face_m4 --batch 64 --steps "$steps"
else
  echo "PyTorch with CUDA not found ($python): skipped the PyTorch baseline" >&2
fi
