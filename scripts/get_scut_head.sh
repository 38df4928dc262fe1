#!/usr/bin/env bash
# Lays out SCUT-HEAD part B for the data crate (`data::scut::split`):
#   $DEST/{Annotations/*.xml, JPEGImages/*.jpg, ImageSets/Main/{train,val,trainval,test}.txt}
# SCUT-HEAD is distributed through Google Drive / Baidu links on
# https://github.com/HCIILAB/SCUT-HEAD-Release (not scriptable): download SCUT_HEAD_Part_B.zip
# there, then run
#   scripts/get_scut_head.sh path/to/SCUT_HEAD_Part_B.zip [DEST]   (default datasets/SCUT_HEAD_Part_B)
set -euo pipefail
ZIP=${1:?usage: $0 SCUT_HEAD_Part_B.zip [DEST]}
DEST=${2:-datasets/SCUT_HEAD_Part_B}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
unzip -q "$ZIP" -d "$TMP"
SRC=$(dirname "$(find "$TMP" -type d -name Annotations | head -n1)")
[ -d "$SRC/JPEGImages" ] || { echo "$ZIP: no Annotations/ + JPEGImages/ inside" >&2; exit 1; }
mkdir -p "$DEST"
cp -r "$SRC/Annotations" "$SRC/JPEGImages" "$DEST/"
if [ -d "$SRC/ImageSets" ]; then
  cp -r "$SRC/ImageSets" "$DEST/"
else
  # No official split in the archive: the paper's random 80/20 split, fixed seed.
  mkdir -p "$DEST/ImageSets/Main"
  ls "$DEST/Annotations" | sed 's/\.xml$//' | sort | python3 -c '
import random, sys
ids = [l.strip() for l in sys.stdin if l.strip()]
random.Random(0).shuffle(ids)
cut = int(len(ids) * 0.8)
open(sys.argv[1] + "/trainval.txt", "w").write("\n".join(sorted(ids[:cut])) + "\n")
open(sys.argv[1] + "/test.txt", "w").write("\n".join(sorted(ids[cut:])) + "\n")' "$DEST/ImageSets/Main"
fi
echo "SCUT-HEAD part B ready in $DEST: $(ls "$DEST/Annotations" | wc -l) annotations"
