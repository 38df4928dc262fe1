#!/usr/bin/env bash
# GPU benchmarks at the paper's training batches (RNNPool-Face-M4: 64 x 320x320; Face-Quant:
# 32 x 640x640): the RNNPool layer alone (forward + backward; burn wgpu with the fused CubeCL
# kernel and with composed tensor ops, and PyTorch eager on CUDA), then a whole training step of
# each model (burn wgpu; PyTorch eager on CUDA). JSON lines on stdout; PyTorch runs are skipped
# where torch has no CUDA.
#   scripts/bench_gpu.sh [steps]              # builds the benches (release + wgpu: ~30 min cold on 2 cores)
#   BIN=dir scripts/bench_gpu.sh [steps]      # prebuilt dir/rnnpool and dir/train_step bench binaries
#   FEATURES=wgpu,autotune scripts/bench_gpu.sh   # cargo builds with burn's kernel autotuning
# PYTHON picks the interpreter; LIMIT the seconds each run may take (default 120).
set -uo pipefail
cd "$(dirname "$0")/.."
steps="${1:-10}"
python="${PYTHON:-python3}"
limit="${LIMIT:-120}"
layer() {
  if [ -n "${BIN:-}" ]; then timeout "$limit" "$BIN/rnnpool" "$@"
  else timeout "$limit" cargo bench -q -p rnnpool-core --features "${FEATURES:-wgpu}" --bench rnnpool -- "$@"; fi
}
step() {
  if [ -n "${BIN:-}" ]; then timeout "$limit" "$BIN/train_step" "$@"
  else timeout "$limit" cargo bench -q -p train --features "${FEATURES:-wgpu}" --bench train_step -- "$@"; fi
}
torch_ok() { "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }

# Most wanted first, so that a run cut short still has them: the backward's stage breakdown
# (stderr), then the figures.
RNNPOOL_PROFILE=1 layer --backend wgpu --impl fused --steps 2 --case face_m4_train --batch 64 >/dev/null
layer --backend wgpu --impl fused --steps "$steps" --case face_m4_train --batch 64
layer --backend wgpu --impl fused --steps "$steps" --case face_quant_train --batch 32
if torch_ok; then
  timeout "$limit" "$python" scripts/torch_rnnpool.py --device cuda --steps "$steps" --case face_m4_train --batch 64
  timeout "$limit" "$python" scripts/torch_rnnpool.py --device cuda --steps "$steps" --case face_quant_train --batch 32
else
  echo "PyTorch with CUDA not found ($python): skipped the PyTorch baselines" >&2
fi
step --backend wgpu --steps "$steps" --case face_m4 --batch 64
step --backend wgpu --steps "$steps" --case face_quant --batch 32
if torch_ok; then
  timeout "$limit" "$python" scripts/bench_train_step.py --device cuda --steps "$steps" --case face_m4 --batch 64
  timeout "$limit" "$python" scripts/bench_train_step.py --device cuda --steps "$steps" --case face_quant --batch 32
fi
# Where a burn step's time goes: forward, loss, backward, optimizer (synced between).
step --backend wgpu --steps 3 --case face_m4 --batch 64 --phases
step --backend wgpu --steps 3 --case face_quant --batch 32 --phases
layer --backend wgpu --impl composed --steps "$steps" --case face_m4_train --batch 64
layer --backend wgpu --impl composed --steps "$steps" --case face_quant_train --batch 32
