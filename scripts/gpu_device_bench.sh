#!/usr/bin/env bash
# Runs on the GPU machine (see README, Speed): unpacks the Vulkan loader from .gl/ where the
# machine has none and the bench binaries that scripts/gpu_bundle.sh left in .gpu/, points
# Vulkan at NVIDIA's driver where it is installed, profiles one Face-M4 training step kernel by
# kernel (scripts/kernel_profile.py), then runs scripts/bench_gpu.sh with them.
# With .gpu/NAME/ bundles, first times the RNNPool layer and Face-M4's training step of each
# version beside the current one, so that a comparison comes from one machine (the 64 MiB that a
# device run carries hold one named bundle beside the current one). Output: stdout, and $OUT/bench.log if set.
#   bash scripts/gpu_device_bench.sh [steps]      # LIMIT: seconds per run (default 90)
set -uo pipefail
cd "$(dirname "$0")/.."
steps="${1:-5}"
export LIMIT="${LIMIT:-90}"
if ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES="$icd"
unpack() { # dir of .xz bundles -> dir of executables
  mkdir -p "$2"
  for f in "$1"/*.xz; do xz -dc "$f" >"$2/$(basename "$f" .xz)" && chmod +x "$2/$(basename "$f" .xz)"; done
}
unpack .gpu /tmp/gpu-bin
log="${OUT:-/tmp}/bench.log"
{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null
  # Where a Face-M4 training step's GPU time goes, kernel by kernel (CubeCL's profiler syncs
  # after every kernel): runs of 2 and 3 steps, whose difference is one step.
  for n in 2 3; do
    CUBECL_DEBUG_LOG="/tmp/kernels-$n.log" CUBECL_DEBUG_OPTION=profile timeout "$LIMIT" \
      /tmp/gpu-bin/train_step --backend wgpu --steps "$n" --case face_m4 --batch 64 >/dev/null
  done
  python3 scripts/kernel_profile.py /tmp/kernels-2.log /tmp/kernels-3.log
  for other in .gpu/*/; do
    [ -f "$other/rnnpool.xz" ] || continue
    name=$(basename "$other")
    unpack "$other" "/tmp/gpu-bin-$name"
    for bin in "/tmp/gpu-bin-$name" /tmp/gpu-bin; do
      for case in "face_m4_train --batch 64" "face_quant_train --batch 32"; do
        echo "# $bin: layer $case"
        # shellcheck disable=SC2086
        timeout "$LIMIT" "$bin/rnnpool" --backend wgpu --impl fused --steps "$steps" --case $case
      done
      echo "# $bin: training step"
      timeout "$LIMIT" "$bin/train_step" --backend wgpu --steps 3 --case face_m4 --batch 64 --phases
    done
  done
  BIN=/tmp/gpu-bin bash scripts/bench_gpu.sh "$steps"
} 2>&1 | tee "$log"
