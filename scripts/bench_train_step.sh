#!/usr/bin/env bash
# Training-step speed of every case beside its PyTorch twin, one process per case and framework
# (so that each peak RSS is its own), run after run; then a table of the medians with the ratio
# burn images/s / PyTorch images/s.
#   scripts/bench_train_step.sh [runs] [steps] [extra bench options, e.g. --batch 2 --size 160]
# PYTHON names an interpreter with torch (pip install torch); CASES overrides the case list.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-2}"
steps="${2:-10}"
shift $(( $# > 2 ? 2 : $# ))
python="${PYTHON:-python3}"
cases="${CASES:-face_m4 face_qvga face_quant face_c vww imagenet_rnnpool densenet_rnnpool fashion}"
cargo build --release -q -p train --bench train_step
bench=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/train_step-* | grep -v '\.d$' | head -n 1)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for run in $(seq "$runs"); do
  for case in $cases; do
    "$bench" --case "$case" --steps "$steps" --threads 2 "$@" | sed "s/^{/{\"run\":$run,/" | tee -a "$out"
    "$python" scripts/bench_train_step.py --case "$case" --steps "$steps" --threads 2 "$@" | sed "s/^{/{\"run\": $run, /" | tee -a "$out"
  done
done
"$python" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
key = lambda r: (r["case"], r["batch"], r["size"])
print("\n| case | batch x size | burn ms | PyTorch ms | burn / PyTorch images/s | peak RSS MB burn / PyTorch |")
print("|---|---|---|---|---|---|")
for k in dict.fromkeys(key(r) for r in rows):
    b = [r for r in rows if key(r) == k and r["framework"] == "burn"]
    t = [r for r in rows if key(r) == k and r["framework"] == "pytorch"]
    ms = lambda rs: " / ".join(str(r["median_ms"]) for r in rs)
    ratio = " / ".join("%.2fx" % (x["images_per_s"] / y["images_per_s"]) for x, y in zip(b, t))
    rss = " / ".join("%s / %s" % (x["peak_rss_mb"], y["peak_rss_mb"]) for x, y in zip(b, t))
    print(f"| {k[0]} | {k[1]} x {k[2]} | {ms(b)} | {ms(t)} | {ratio} | {rss} |")
PY
