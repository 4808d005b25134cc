"""A real dataset's files, outside the repository, are fingerprinted so that DVC sees them change."""

import os

import pytest
import yaml

from comic.config import load_params
from comic.data.sources import fingerprint

from .conftest import REPO
from .formats import COCO_TEST, COCO_TRAIN, write_coco
from .test_stages import dvc, scratch_repo


def coco_data(root):
    train_json, train_images = write_coco(root / "coco", "train2017", COCO_TRAIN)
    test_json, test_images = write_coco(root / "coco", "val2017", COCO_TEST)
    return {
        "source": "coco",
        "val_split": "carve",
        "real": {
            "train_annotations": str(train_json),
            "train_images": str(train_images),
            "test_annotations": str(test_json),
            "test_images": str(test_images),
        },
    }


def scan(root, data: dict):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update({k: v for k, v in data.items() if k != "real"})
    raw["data"]["real"].update(data["real"])
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return fingerprint(load_params(root / "params.yaml").data)


def test_an_image_replaced_added_or_removed_or_an_annotation_edited_changes_the_fingerprint(tmp_path):
    data = coco_data(tmp_path)
    first = scan(tmp_path, data)
    assert scan(tmp_path, data) == first  # nothing changed: the same fingerprint
    images = tmp_path / "coco" / "train2017"
    one = next(images.iterdir())
    seen = [first]
    for change in (
        lambda: (one.write_bytes(b"\xff\xd8 corrupt"), os.utime(one, ns=(1, 1))),
        lambda: (images / "extra.jpg").write_bytes(b"x"),
        lambda: (images / "extra.jpg").unlink(),
        lambda: (tmp_path / "coco" / "annotations" / "instances_val2017.json").write_text("{}"),
    ):
        change()
        seen.append(scan(tmp_path, data))
        assert seen[-1] != seen[-2]
    assert seen[1]["files"]["real.train_images"]["files"] == len(COCO_TRAIN)


def test_the_embedded_benchmark_fingerprints_only_its_label_row_files(tmp_path):
    assert fingerprint(load_params().data) == {"source": "embedded", "files": {}}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dvc_repro_rebuilds_after_an_image_is_corrupted_and_fails_naming_it(tmp_path):
    repo = scratch_repo(tmp_path, data=coco_data(tmp_path))
    assert "Running stage 'build_data'" in dvc(repo, "repro", "build_data")
    assert "'build_data' didn't change" in dvc(repo, "repro", "build_data")
    corrupted = tmp_path / "coco" / "train2017" / "000000000103.jpg"
    corrupted.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = dvc(repo, "repro", "build_data", ok=False)
    assert "Running stage 'build_data'" in out and "000000000103.jpg, referenced by" in out, out
