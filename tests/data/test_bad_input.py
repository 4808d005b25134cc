"""Each bad input fails with an error naming the file, row or class, and leaves no output behind."""

import json
import re

import numpy as np
import pytest

from comic.data.dataset import MultiLabelDataset
from comic.data.store import read_split, write_split
from comic.data.tiles import TILE_BANK_PATH
from comic.data.transforms import InputSpec, build_transform

from .conftest import run_data_stages, run_stage, write_params
from .formats import COCO_TEST, COCO_TRAIN, write_coco, write_comic_json


def fails_cleanly(tmp_path, monkeypatch, params, match):
    """Run the three stages into tmp_path/out; expect the stage to exit with one line matching `match`
    (no traceback) and nothing written."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=match):
        run_data_stages(params, out, monkeypatch)
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")] if out.exists() else []
    assert leftovers == [], f"temporary output left behind: {leftovers}"
    return out


def coco_params(tmp_path, **overrides):
    train_json, train_images = write_coco(tmp_path / "coco", "train2017", COCO_TRAIN)
    test_json, test_images = write_coco(tmp_path / "coco", "val2017", COCO_TEST)
    real = {
        "real.train_annotations": str(train_json),
        "real.train_images": str(train_images),
        "real.test_annotations": str(test_json),
        "real.test_images": str(test_images),
    }
    return write_params(tmp_path, source="coco", **real, **overrides), train_json, train_images


def test_corrupt_image_bytes_in_a_source_fail_the_build_naming_the_file(tmp_path, monkeypatch):
    params, _, images = coco_params(tmp_path)
    (images / "000000000103.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = fails_cleanly(tmp_path, monkeypatch, params, r"000000000103\.jpg, referenced by .*: image does not decode")
    assert not (out / "raw").exists()


def test_corrupt_image_bytes_in_a_split_fail_naming_the_split_file_row_and_id(tmp_path, plt_dir):
    table = read_split(plt_dir, "val")
    (tmp_path / "garbage.png").write_bytes(b"garbage")
    files, offsets = list(table.files), table.offsets.copy()
    files[2], offsets[2] = str(tmp_path / "garbage.png"), -1
    write_split(tmp_path, table.replace(files=files, offsets=offsets))
    dataset = MultiLabelDataset(tmp_path, "val", build_transform(False, InputSpec(36)))
    match = rf"val\.parquet: row 2 \(id {table.ids[2]}\): image does not decode"
    with pytest.raises(ValueError, match=match):
        dataset[2]


def test_a_missing_image_file_fails_the_build_naming_the_file(tmp_path, monkeypatch):
    params, _, images = coco_params(tmp_path)
    (images / "000000000104.jpg").unlink()
    match = r"000000000104\.jpg: image file not found"
    fails_cleanly(tmp_path, monkeypatch, params, match)


def test_a_label_index_beyond_the_classes_fails_naming_the_annotation(tmp_path, monkeypatch):
    params, train_json, _ = coco_params(tmp_path)
    data = json.loads(train_json.read_text())
    data["annotations"][4]["category_id"] = 99
    train_json.write_text(json.dumps(data))
    match = r"annotation 5 \(image 102\) has category_id 99.*label index >= C"
    fails_cleanly(tmp_path, monkeypatch, params, match)


def test_duplicate_ids_fail_naming_the_id(tmp_path, monkeypatch):
    train_json, images = write_comic_json(tmp_path, "train", [[1, 0], [0, 1], [1, 1]] * 3)
    test_json, _ = write_comic_json(tmp_path, "test", [[1, 0], [0, 1]])
    text = train_json.read_text()
    train_json.write_text(text[:-1] + ', "train_0.jpg": [0, 1]}')
    real = {
        "real.train_annotations": str(train_json),
        "real.train_images": str(images),
        "real.test_annotations": str(test_json),
        "real.test_images": str(images),
    }
    params = write_params(tmp_path, source="comic_json", **real)
    fails_cleanly(tmp_path, monkeypatch, params, r"train\.json: duplicate id 'train_0\.jpg'")


def test_a_class_left_without_a_positive_fails_naming_the_class(tmp_path, monkeypatch):
    rows = np.eye(5, dtype=np.int64)[np.arange(40) % 5]
    rows[:, 3] = 0
    np.save(tmp_path / "train.npy", rows)
    params = write_params(tmp_path, **{"label_rows.train": str(tmp_path / "train.npy")})
    match = re.escape("train.npy, split 'train': class 3 (digit-3) has no positive")
    fails_cleanly(tmp_path, monkeypatch, params, match)


def test_an_empty_split_fails_naming_the_split(tmp_path, monkeypatch):
    np.save(tmp_path / "train.npy", np.eye(4, dtype=np.int64))
    rows = {"label_rows.train": str(tmp_path / "train.npy")}
    params = write_params(tmp_path, val_split="carve", val_fraction=0.1, **rows)
    out = fails_cleanly(tmp_path, monkeypatch, params, r"split 'val' would be empty: 4 training images")
    assert (out / "raw").exists() and not (out / "split").exists()  # build_data ran; split_data wrote nothing


@pytest.mark.parametrize(
    "rows,match",
    [
        (np.ones(10), r"shape \(10,\)"),
        (np.ones((10, 21)), r"1 <= C <= 20, got shape \(10, 21\)"),
        (np.full((10, 3), 2), r"row 0 \(from 0\) has values other than 0/1"),
    ],
)
def test_a_label_rows_file_of_the_wrong_shape_fails_naming_the_file(tmp_path, monkeypatch, rows, match):
    np.save(tmp_path / "rows.npy", rows)
    params = write_params(tmp_path, **{"label_rows.test": str(tmp_path / "rows.npy")})
    with pytest.raises(SystemExit, match=r"rows\.npy: .*" + match):
        run_stage("build_data", "--tile-bank", str(TILE_BANK_PATH), "--images", str(tmp_path / "images"),
                  "--out", str(tmp_path / "raw"),
                  "--params", str(params), monkeypatch=monkeypatch)  # fmt: skip
    assert not (tmp_path / "raw").exists()


def test_a_ragged_csv_fails_naming_the_line(tmp_path, monkeypatch):
    (tmp_path / "rows.csv").write_text("1,0,1\n0,1,1\n1,1\n")
    params = write_params(tmp_path, **{"label_rows.train": str(tmp_path / "rows.csv")})
    fails_cleanly(tmp_path, monkeypatch, params, r"rows\.csv: line 3 has 2 values, line 1 has 3")
