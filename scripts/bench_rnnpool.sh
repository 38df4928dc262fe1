#!/usr/bin/env bash
# The RNNPool layer benchmark beside PyTorch's, one process per case (so each peak RSS is its own).
#   scripts/bench_rnnpool.sh [threads] [steps]       (needs: pip install torch, in $PYTHON)
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
steps="${2:-5}"
python="${PYTHON:-python3}"
torch_script="${TORCH_BENCH:-../shared/bench/torch_rnnpool.py}"
cargo build --release -q -p rnnpool-core --bench rnnpool
bench=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/rnnpool-* | grep -v '\.d$' | head -n 1)
for case in face_m4_train face_quant_train vww_train mobilenetv2_train; do
  for backend in flex ndarray; do
    "$bench" --case "$case" --threads "$threads" --steps "$steps" --backend "$backend" --impl fused
  done
  "$bench" --case "$case" --threads "$threads" --steps "$steps" --backend flex --impl composed
  if "$python" -c "import torch" 2>/dev/null; then
    /usr/bin/time -f "{\"case\": \"$case\", \"torch_peak_rss_mb\": %M}" "$python" "$torch_script" \
      --threads "$threads" --steps "$steps" --case "$case" 2>&1 | sed 's/"torch_peak_rss_mb": \([0-9]*\)/"torch_peak_rss_kb": \1/'
  fi
done
