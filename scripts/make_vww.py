#!/usr/bin/env python3
"""Downloads COCO 2014 and lays out Visual Wake Words as the data crate reads it
(`data::vww::split(ROOT, "train"|"val")`):
  ROOT/all2014/*.jpg                       train2014 + val2014 images together
  ROOT/annotations/instances_maxitrain.json   COCO instances of every image not in minival
  ROOT/annotations/instances_minival.json     COCO instances of the ~8K minival images
The person/not-person label is computed by the loader (person area > 0.5 % of the image), as
TF's build_visualwakewords_data does; this script only splits COCO.
Usage: python3 scripts/make_vww.py [ROOT]   (default datasets/vww; about 20 GB of downloads)
Standard library only."""
import json
import os
import shutil
import sys
import urllib.request
import zipfile

ROOT = sys.argv[1] if len(sys.argv) > 1 else "datasets/vww"
COCO = "http://images.cocodataset.org"
FILES = {
    "train2014.zip": f"{COCO}/zips/train2014.zip",
    "val2014.zip": f"{COCO}/zips/val2014.zip",
    "annotations_trainval2014.zip": f"{COCO}/annotations/annotations_trainval2014.zip",
    "mscoco_minival_ids.txt": "https://raw.githubusercontent.com/tensorflow/models/master/"
    "research/object_detection/data/mscoco_minival_ids.txt",
}


def fetch(name, url, downloads):
    path = os.path.join(downloads, name)
    if not os.path.exists(path):
        print(f"downloading {url}", file=sys.stderr)
        with urllib.request.urlopen(url) as r, open(path + ".part", "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
        os.replace(path + ".part", path)
    return path


def main():
    downloads = os.path.join(ROOT, "_downloads")
    os.makedirs(downloads, exist_ok=True)
    paths = {n: fetch(n, u, downloads) for n, u in FILES.items()}
    images = os.path.join(ROOT, "all2014")
    os.makedirs(images, exist_ok=True)
    for z in ("train2014.zip", "val2014.zip"):
        with zipfile.ZipFile(paths[z]) as zf:
            for info in zf.infolist():
                name = os.path.basename(info.filename)
                if name.endswith(".jpg") and not os.path.exists(os.path.join(images, name)):
                    with zf.open(info) as src, open(os.path.join(images, name), "wb") as dst:
                        shutil.copyfileobj(src, dst)
    merged = {"images": [], "annotations": [], "categories": None}
    with zipfile.ZipFile(paths["annotations_trainval2014.zip"]) as zf:
        for split in ("train2014", "val2014"):
            data = json.loads(zf.read(f"annotations/instances_{split}.json"))
            merged["images"] += data["images"]
            merged["annotations"] += data["annotations"]
            merged["categories"] = data["categories"]
    minival = {int(l) for l in open(paths["mscoco_minival_ids.txt"]) if l.strip()}
    out = os.path.join(ROOT, "annotations")
    os.makedirs(out, exist_ok=True)
    for name, keep in (("maxitrain", lambda i: i not in minival), ("minival", lambda i: i in minival)):
        imgs = [i for i in merged["images"] if keep(i["id"])]
        ids = {i["id"] for i in imgs}
        anns = [a for a in merged["annotations"] if a["image_id"] in ids]
        doc = {"images": imgs, "annotations": anns, "categories": merged["categories"]}
        tmp = os.path.join(out, f"instances_{name}.json.tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, os.path.join(out, f"instances_{name}.json"))
        print(f"{name}: {len(imgs)} images, {len(anns)} annotations")


if __name__ == "__main__":
    main()
