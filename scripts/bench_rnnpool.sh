#!/usr/bin/env bash
# The RNNPool layer benchmark beside PyTorch's, one process per run so that each peak RSS is its
# own. Prints JSON lines; PyTorch's lines get "impl": "torch" and its peak RSS from /usr/bin/time.
#   scripts/bench_rnnpool.sh [threads] [steps]
# PyTorch is optional: PYTHON=/path/to/python-with-torch (pip install torch).
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
steps="${2:-5}"
python="${PYTHON:-python3}"
torch_script=scripts/torch_rnnpool.py
cargo build --release -q -p rnnpool-core --bench rnnpool
bench=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/rnnpool-* | grep -v '\.d$' | head -n 1)
rss=$(mktemp)
trap 'rm -f "$rss"' EXIT
for case in face_c_train face_m4_train face_quant_train vww_train mobilenetv2_train; do
  for run in "flex fused" "ndarray fused" "flex composed"; do
    set -- $run
    "$bench" --case "$case" --threads "$threads" --steps "$steps" --backend "$1" --impl "$2"
  done
  if "$python" -c "import torch" 2>/dev/null; then
    line=$(/usr/bin/time -o "$rss" -f "%M" "$python" "$torch_script" --threads "$threads" --steps "$steps" --case "$case")
    echo "${line%\}}, \"impl\": \"torch\", \"peak_rss_mb\": $(awk '{printf "%.1f", $1 / 1024}' "$rss")}"
  fi
done
