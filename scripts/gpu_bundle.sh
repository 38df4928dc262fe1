#!/usr/bin/env bash
# Packs what scripts/gpu_device_bench.sh needs on a GPU machine that has no Rust toolchain:
# release builds of the two bench binaries (wgpu; stripped and xz-compressed, ~20 MB), into .gpu/
# (git-ignored); the PyTorch twins travel with the working tree (scripts/). With a name, also keeps the pair under
# .gpu/NAME/, so that one device run can time two versions of the code side by side:
#   scripts/gpu_bundle.sh            # .gpu/{rnnpool,train_step}.xz
#   scripts/gpu_bundle.sh base       # the same, plus a copy in .gpu/base/
# FEATURES (default train/wgpu, which turns on rnnpool-core's) can add train/autotune.
set -euo pipefail
cd "$(dirname "$0")/.."
features="${FEATURES:-train/wgpu}"
mkdir -p .gpu
json=$(cargo bench --no-run --message-format=json -p train -p rnnpool-core --features "$features")
for bench in rnnpool train_step; do
  exe=$(printf '%s\n' "$json" | python3 -c '
import json, sys
name = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == name and "bench" in m["target"]["kind"] and m.get("executable"):
        print(m["executable"])' "$bench" | tail -1)
  [ -n "$exe" ] || { echo "no executable for bench $bench" >&2; exit 1; }
  strip -o ".gpu/$bench" "$exe"
  xz -3 -T0 -f ".gpu/$bench"
  if [ -n "${1:-}" ]; then mkdir -p ".gpu/$1" && cp ".gpu/$bench.xz" ".gpu/$1/"; fi
done
du -sh .gpu >&2
