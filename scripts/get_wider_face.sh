#!/usr/bin/env bash
# Downloads WIDER FACE (images, annotations, official evaluation ground truth) and lays it out
# as the data crate reads it:
#   $DEST/WIDER_{train,val,test}/images/<event>/<name>.jpg
#   $DEST/wider_face_split/wider_face_{train,val}_bbx_gt.txt, wider_face_{val,test}.mat
#   $DEST/eval_tools/ground_truth/wider_{face_val,easy_val,medium_val,hard_val}.mat
# Usage: scripts/get_wider_face.sh [DEST]   (default datasets/WIDER_FACE; about 3.6 GB)
# Mirrors: the images come from the Hugging Face copy of the official archives (the official
# site, http://shuoyang1213.me/WIDERFACE/, links to Google Drive which cannot be scripted).
set -euo pipefail
DEST=${1:-datasets/WIDER_FACE}
HF=https://huggingface.co/datasets/CUHK-CSE/wider_face/resolve/main/data
OFFICIAL=http://shuoyang1213.me/WIDERFACE/support
mkdir -p "$DEST/_downloads"
fetch() { # url file
  if [ ! -s "$DEST/_downloads/$2" ]; then
    echo "downloading $2" >&2
    curl -fL --retry 3 -o "$DEST/_downloads/$2.part" "$1" && mv "$DEST/_downloads/$2.part" "$DEST/_downloads/$2"
  fi
}
for z in WIDER_train WIDER_val WIDER_test; do fetch "$HF/$z.zip" "$z.zip"; done
fetch "$OFFICIAL/bbx_annotation/wider_face_split.zip" wider_face_split.zip
fetch "$OFFICIAL/eval_script/eval_tools.zip" eval_tools.zip
for z in WIDER_train WIDER_val WIDER_test wider_face_split eval_tools; do
  [ -d "$DEST/$z" ] || unzip -q "$DEST/_downloads/$z.zip" -d "$DEST"
done
test -f "$DEST/wider_face_split/wider_face_train_bbx_gt.txt"
test -d "$DEST/WIDER_train/images"
echo "WIDER FACE ready in $DEST (remove $DEST/_downloads to free 3.6 GB)"
