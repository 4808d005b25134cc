"""Small datasets written in each official layout (COCO, Pascal VOC, COMIC's authors' JSON)."""

import json
from pathlib import Path

import cv2
import numpy as np

from comic.data.real import VOC_CLASSES


def write_jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)


def write_coco(root: Path, split: str, labels: list[list[int]]) -> tuple[Path, Path]:
    """`root/annotations/instances_<split>.json` + `root/<split>/*.jpg`; category ids 1, 3, 7 (with gaps)."""
    categories = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 7, "name": "dog"}]
    images, annotations = [], []
    for i, classes in enumerate(labels):
        image_id = 100 + i
        file_name = f"{image_id:012d}.jpg"
        write_jpeg(root / split / file_name, seed=image_id)
        images.append({"id": image_id, "file_name": file_name, "width": 40, "height": 30})
        for c in classes:
            bbox = [1.0, 2.0, 10.0, 8.0]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": categories[c]["id"],
                 "bbox": bbox, "area": 80.0, "iscrowd": 0}
            )  # fmt: skip
    annotation_file = root / "annotations" / f"instances_{split}.json"
    annotation_file.parent.mkdir(parents=True, exist_ok=True)
    coco = {"images": images, "annotations": annotations, "categories": categories}
    annotation_file.write_text(json.dumps(coco))
    return annotation_file, root / split


COCO_TRAIN = [[0], [0, 1], [0, 2], [1], [0], [0, 1, 2], [0], [2], [0, 1], [0], [1, 2], [0]]
COCO_TEST = [[0, 1], [2], [1], [0, 2], [0]]


def write_voc(root: Path) -> Path:
    """`root/VOCdevkit/VOC2012`, 24 trainval and 22 test images; image i holds classes i and i+7 (mod 20)."""
    year = root / "VOCdevkit" / "VOC2012"
    (year / "Annotations").mkdir(parents=True)
    (year / "ImageSets" / "Main").mkdir(parents=True)
    for split, count, start in (("trainval", 24, 0), ("test", 22, 1000)):
        ids = [f"2012_{start + i:06d}" for i in range(count)]
        (year / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for i, id_ in enumerate(ids):
            write_jpeg(year / "JPEGImages" / f"{id_}.jpg", seed=start + i)
            # (name, difficult): a difficult "person" does not make the image positive for it
            objects = [(VOC_CLASSES[i % 20], 0), (VOC_CLASSES[(i + 7) % 20], 0), ("person", 1)]
            xml = "".join(
                f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated><difficult>{difficult}"
                "</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
                for name, difficult in objects
            )
            (year / "Annotations" / f"{id_}.xml").write_text(
                f"<annotation><folder>VOC2012</folder><filename>{id_}.jpg</filename><size><width>40</width>"
                f"<height>30</height><depth>3</depth></size>{xml}</annotation>"
            )
    return year


def write_comic_json(root: Path, split: str, labels: list[list[int]]) -> tuple[Path, Path]:
    """`root/<split>.json` = {"<split>_i.jpg": [0/1 x C]} + `root/images/`."""
    entries = {}
    for i, row in enumerate(labels):
        name = f"{split}_{i}.jpg"
        write_jpeg(root / "images" / name, seed=i + (500 if split == "test" else 0))
        entries[name] = row
    path = root / f"{split}.json"
    path.write_text(json.dumps(entries))
    return path, root / "images"
