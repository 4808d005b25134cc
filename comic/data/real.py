"""Builders of real datasets; each returns one split (all labels observed) and the class names.

- COCO: `instances_*.json` + image folder; classes are the categories sorted by id; an image is positive
  for every category it has an annotation of (crowd included).
- Pascal VOC: a `VOCdevkit/VOC20xx` folder; labels from `Annotations/<id>.xml`, an object marked
  `difficult` does not make its class positive.
- COMIC's authors' layout: `{"file.jpg": [0/1 x C], ...}` JSON + image folder; their 0s are taken as
  negatives (the label-dropping stage then hides more; set data.missing_rate 0 to keep theirs as is).
An optional id list (one id per line, like COCO-MLT's `img_id.txt`) selects and orders the images.
Builders list the files; the build (`comic.data.build.store_images`) then reads and decodes every image
once, one at a time, so a missing or corrupt file fails the build, not training.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from comic.data.store import SourceSplit
from comic.images import decode_image

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOC_DEFAULT_IDS = {"train": "trainval.txt", "test": "test.txt"}


def read_ids(path: str | Path) -> list[str]:
    """Non-empty stripped lines of an id list; a repeated id is an error naming both lines."""
    seen: dict[str, int] = {}
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        id_ = line.strip()
        if not id_:
            continue
        if id_ in seen:
            raise ValueError(f"{path}: duplicate id {id_!r} on lines {seen[id_]} and {line_no}")
        seen[id_] = line_no
    return list(seen)


def load_image(path: Path, where: str) -> bytes:
    """Encoded bytes of an image file, checked to decode; errors name the file and who refers to it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found (referenced by {where})")
    data = path.read_bytes()
    decode_image(data, f"{path}, referenced by {where}")
    return data


def _table(split: str, ids: list[str], files: list[Path], labels_nc: np.ndarray, where: str) -> SourceSplit:
    return SourceSplit(split=split, ids=ids, labels_nc=labels_nc, files=files, where=where)


def _select(available: list[str], ids_file: str | Path | None, where: str) -> list[str]:
    if ids_file is None:
        return available
    known = set(available)
    ids = read_ids(ids_file)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ValueError(f"{ids_file}: ids {unknown[:5]} are not in {where}; is it this split's id list?")
    return ids


def build_coco(*, annotations, images, ids=None, split: str):
    """(SourceSplit, names) from a COCO `instances_*.json` and its image folder."""
    where = str(annotations)
    data = json.loads(Path(annotations).read_text())
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise ValueError(f"{where}: not a COCO instances file, missing keys {missing}")
    categories = sorted(data["categories"], key=lambda cat: cat["id"])
    names = [cat["name"] for cat in categories]
    class_of = {cat["id"]: c for c, cat in enumerate(categories)}
    file_of: dict[str, str] = {}
    for record in data["images"]:
        key = str(record["id"])
        if key in file_of:
            raise ValueError(f"{where}: duplicate image id {key}")
        file_of[key] = record["file_name"]
    selected = _select(list(file_of), ids, where)
    row_of = {key: row for row, key in enumerate(selected)}
    labels = np.zeros((len(selected), len(names)), dtype=np.int16)
    for ann in data["annotations"]:
        key = str(ann["image_id"])
        if key not in file_of:
            raise ValueError(f"{where}: annotation {ann.get('id')} refers to unknown image id {key}")
        if ann["category_id"] not in class_of:
            raise ValueError(
                f"{where}: annotation {ann.get('id')} (image {key}) has category_id {ann['category_id']}, "
                f"which is not among the {len(names)} categories (label index >= C); fix the file"
            )
        if key in row_of:
            labels[row_of[key], class_of[ann["category_id"]]] = 1
    files = [Path(images) / file_of[key] for key in selected]
    return _table(split, selected, files, labels, where), names


def build_voc(*, annotations, images=None, ids=None, split: str):
    """(SourceSplit, names) from a `VOCdevkit/VOC20xx` folder (Annotations/, JPEGImages/, ImageSets/)."""
    root = Path(annotations)
    ids_file = Path(ids) if ids else root / "ImageSets" / "Main" / VOC_DEFAULT_IDS[split]
    if not ids_file.is_file():
        raise FileNotFoundError(f"{ids_file}: VOC id list not found; is {root} a VOCdevkit/VOC20xx folder?")
    selected = read_ids(ids_file)
    class_of = {name: c for c, name in enumerate(VOC_CLASSES)}
    labels = np.zeros((len(selected), len(VOC_CLASSES)), dtype=np.int16)
    for row, id_ in enumerate(selected):
        xml_path = root / "Annotations" / f"{id_}.xml"
        if not xml_path.is_file():
            raise FileNotFoundError(f"{xml_path}: annotation of id {id_} (listed in {ids_file}) not found")
        for obj in ET.parse(xml_path).getroot().iter("object"):
            name = (obj.findtext("name") or "").strip()
            if name not in class_of:
                raise ValueError(f"{xml_path}: object {name!r} is not a VOC class (label index >= C)")
            if int(obj.findtext("difficult") or 0) == 0:
                labels[row, class_of[name]] = 1
    image_dir = Path(images) if images else root / "JPEGImages"
    files = [image_dir / f"{id_}.jpg" for id_ in selected]
    return _table(split, selected, files, labels, str(ids_file)), list(VOC_CLASSES)


def _unique_keys(pairs: list[tuple[str, object]], where: str) -> dict:
    keys: dict[str, object] = {}
    for key, value in pairs:
        if key in keys:
            raise ValueError(f"{where}: duplicate id {key!r}; each image may appear once")
        keys[key] = value
    return keys


def build_comic_json(*, annotations, images, ids=None, split: str, class_names=None):
    """(SourceSplit, names) from the authors' `{"file.jpg": [0/1 x C]}` JSON and an image folder."""
    where = str(annotations)
    entries = json.loads(Path(annotations).read_text(), object_pairs_hook=lambda p: _unique_keys(p, where))
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f'{where}: expected a non-empty object {{"file.jpg": [0/1 x C], ...}}')
    selected = _select(list(entries), ids, where)
    width = len(next(iter(entries.values())))
    for key in selected:
        vector = entries[key]
        if not isinstance(vector, list) or len(vector) != width or any(v not in (0, 1) for v in vector):
            raise ValueError(f"{where}: entry {key!r} must be a list of {width} 0/1 values, like the first")
    labels = np.asarray([entries[key] for key in selected], dtype=np.int16).reshape(len(selected), width)
    names = [f"class-{c}" for c in range(width)]
    if class_names:
        names = [line.strip() for line in Path(class_names).read_text().splitlines() if line.strip()]
        if len(names) != width:
            raise ValueError(f"{class_names}: {len(names)} class names, but {where} has {width} per image")
    files = [Path(images) / key for key in selected]
    return _table(split, selected, files, labels, where), names


BUILDERS = {"coco": build_coco, "voc": build_voc, "comic_json": build_comic_json}
