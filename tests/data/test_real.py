import numpy as np
import pytest

from comic.config import load_params
from comic.data.build import build_raw
from comic.data.store import load_classes, read_split

from .conftest import run_data_stages, write_params
from .formats import COCO_TEST, COCO_TRAIN, write_coco, write_comic_json, write_voc


def one_hot(labels, num_classes):
    out = np.zeros((len(labels), num_classes), np.int16)
    for row, classes in enumerate(labels):
        out[row, classes] = 1
    return out


def coco_params(tmp_path, **extra):
    train_json, train_images = write_coco(tmp_path / "coco", "train2017", COCO_TRAIN)
    test_json, test_images = write_coco(tmp_path / "coco", "val2017", COCO_TEST)
    return write_params(
        tmp_path,
        source="coco",
        **{
            "real.train_annotations": str(train_json),
            "real.train_images": str(train_images),
            "real.test_annotations": str(test_json),
            "real.test_images": str(test_images),
        },
        **extra,
    )


@pytest.mark.parametrize("embed", [True, False])
def test_coco_goes_through_the_same_stages_as_the_embedded_benchmark(tmp_path, monkeypatch, embed):
    params = coco_params(tmp_path, **{"real.embed_images": embed})
    plt = run_data_stages(params, tmp_path / "out", monkeypatch)
    classes = load_classes(plt)
    assert classes["names"] == ["person", "car", "dog"]  # sorted by category id, ids 1, 3, 7
    splits = {name: read_split(plt, name) for name in ("train", "val", "test")}
    assert len(splits["train"]) + len(splits["val"]) == len(COCO_TRAIN)
    np.testing.assert_array_equal(splits["test"].labels_full, one_hot(COCO_TEST, 3))
    assert splits["test"].ids == [str(100 + i) for i in range(len(COCO_TEST))]
    assert (splits["train"].labels_observed < splits["train"].labels_full).any()  # labels were hidden
    train = splits["train"]
    assert (train.offsets >= 0).all() == embed and (train.offsets == -1).all() != embed  # in the store, or not


def test_a_coco_id_list_selects_and_orders_the_images(tmp_path, monkeypatch):
    ids = tmp_path / "img_id.txt"
    ids.write_text("105\n100\n101\n102\n103\n106\n")
    params = coco_params(tmp_path, **{"real.train_ids": str(ids)})
    plt = run_data_stages(params, tmp_path / "out", monkeypatch)
    train, val = read_split(plt, "train"), read_split(plt, "val")
    assert sorted(train.ids + val.ids) == sorted(["105", "100", "101", "102", "103", "106"])


def test_voc_labels_come_from_the_xml_and_skip_difficult_objects(tmp_path, monkeypatch):
    year = write_voc(tmp_path)
    real = {"real.train_annotations": str(year), "real.test_annotations": str(year)}
    params = write_params(tmp_path, source="voc", val_fraction=0.3, **real)  # ~2 positives per class
    plt = run_data_stages(params, tmp_path / "out", monkeypatch)
    test = read_split(plt, "test")
    assert len(test) == 22 and test.ids[0] == "2012_001000"
    expected = one_hot([[i % 20, (i + 7) % 20] for i in range(22)], 20)
    np.testing.assert_array_equal(test.labels_full, expected)  # "person" (difficult) appears only via i % 20
    assert load_classes(plt)["names"][0] == "aeroplane"


def test_the_authors_json_layout_is_read_with_its_class_names(tmp_path, monkeypatch):
    train = [[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1], [1, 0, 0], [0, 1, 1], [1, 0, 0]]
    test = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    train_json, images = write_comic_json(tmp_path, "train", train)
    test_json, _ = write_comic_json(tmp_path, "test", test)
    names = tmp_path / "class.txt"
    names.write_text("cat\ndog\nbird\n")
    params = write_params(
        tmp_path,
        source="comic_json",
        **{
            "real.train_annotations": str(train_json),
            "real.train_images": str(images),
            "real.test_annotations": str(test_json),
            "real.test_images": str(images),
            "real.class_names": str(names),
        },
    )
    plt = run_data_stages(params, tmp_path / "out", monkeypatch)
    assert load_classes(plt)["names"] == ["cat", "dog", "bird"]
    np.testing.assert_array_equal(read_split(plt, "test").labels_full, np.asarray(test))
    assert read_split(plt, "test").ids == ["test_0.jpg", "test_1.jpg", "test_2.jpg"]


def test_a_real_source_without_its_annotation_paths_is_a_clear_error(tmp_path):
    data = load_params(write_params(tmp_path, source="coco")).data
    with pytest.raises(
        ValueError, match="data.source=coco needs data.real.train_annotations and data.real.train_images"
    ):
        build_raw(data, tile_bank="unused.npz")
