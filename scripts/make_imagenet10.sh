#!/usr/bin/env bash
# Builds the paper's ImageNet-10 (App. A.1) from an ImageNet copy, as the data crate reads it
# (`data::imagenet::ImageNet::new(DEST)`): $DEST/train/<wnid>/*.JPEG, $DEST/val/<wnid>/*.JPEG.
#   scripts/make_imagenet10.sh IMAGENET_ROOT [DEST] [DEER_DIR]
# IMAGENET_ROOT holds train/<wnid>/ and either val/<wnid>/ or a flat val/ with
# LOC_val_solution.csv (Kaggle's ILSVRC/Data/CLS-LOC layout; point at CLS-LOC and put the CSV
# beside it). The deer class n02430045 is not in ImageNet-1K: give a folder of its ImageNet-22K
# images as DEER_DIR (the first 1300 go to train, the next 50 to val). Files are symlinked.
set -euo pipefail
SRC=${1:?usage: $0 IMAGENET_ROOT [DEST] [DEER_DIR]}
DEST=${2:-datasets/imagenet10}
DEER=${3:-}
WNIDS="n02690373 n04285008 n01560419 n02124075 n02430045 n02099601 n01641577 n03538406 n03673027 n04467665"
CSV=""
for c in "$SRC/LOC_val_solution.csv" "$SRC/../LOC_val_solution.csv" "$SRC/val/LOC_val_solution.csv"; do
  [ -f "$c" ] && CSV=$c && break
done
for w in $WNIDS; do
  mkdir -p "$DEST/train/$w" "$DEST/val/$w"
  if [ -d "$SRC/train/$w" ]; then
    find "$SRC/train/$w" -maxdepth 1 -type f | sort | head -n 1300 | while read -r f; do ln -sf "$(realpath "$f")" "$DEST/train/$w/"; done
    if [ -d "$SRC/val/$w" ]; then
      find "$SRC/val/$w" -maxdepth 1 -type f | sort | head -n 50 | while read -r f; do ln -sf "$(realpath "$f")" "$DEST/val/$w/"; done
    elif [ -n "$CSV" ]; then
      grep ",$w " "$CSV" | cut -d, -f1 | sort | head -n 50 | while read -r id; do ln -sf "$(realpath "$SRC/val/$id.JPEG")" "$DEST/val/$w/"; done
    else
      echo "no val/$w and no LOC_val_solution.csv" >&2; exit 1
    fi
  elif [ "$w" = n02430045 ] && [ -n "$DEER" ]; then
    find "$DEER" -maxdepth 1 -type f | sort | head -n 1300 | while read -r f; do ln -sf "$(realpath "$f")" "$DEST/train/$w/"; done
    find "$DEER" -maxdepth 1 -type f | sort | sed -n 1301,1350p | while read -r f; do ln -sf "$(realpath "$f")" "$DEST/val/$w/"; done
  else
    echo "class $w is missing from $SRC/train (n02430045, deer, needs DEER_DIR from ImageNet-22K)" >&2; exit 1
  fi
done
echo "ImageNet-10 ready in $DEST: $(find "$DEST/train" -type l | wc -l) train, $(find "$DEST/val" -type l | wc -l) val"
