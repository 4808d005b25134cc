import numpy as np
import pyarrow.parquet as pq
import pytest

from comic.data.store import SplitTable, read_split, write_split
from comic.files import atomic_dir


def make_table(split="train", n=5, c=3, paths=False):
    labels = (np.arange(n * c).reshape(n, c) % 2).astype(np.int16)
    return SplitTable(
        split=split,
        ids=[f"{split}-{i}" for i in range(n)],
        images=[None] * n if paths else [f"png-{i}".encode() for i in range(n)],
        paths=[f"img/{i}.png" for i in range(n)] if paths else [None] * n,
        labels_observed=labels * (np.arange(n)[:, None] % 2 == 0),
        labels_full=labels,
    )


@pytest.mark.parametrize("paths", [False, True])
def test_a_split_round_trips_through_parquet(tmp_path, paths):
    table = make_table(paths=paths)
    write_split(tmp_path, table)
    back = read_split(tmp_path, "train")
    assert back.ids == table.ids and back.images == table.images and back.paths == table.paths
    np.testing.assert_array_equal(back.labels_observed, table.labels_observed)
    np.testing.assert_array_equal(back.labels_full, table.labels_full)
    assert back.labels_full.shape == (5, 3)


def test_labels_are_stored_as_list_int16_columns(tmp_path):
    write_split(tmp_path, make_table())
    schema = pq.read_schema(tmp_path / "train.parquet")
    assert str(schema.field("labels_observed").type) == "list<element: int16>"
    assert str(schema.field("labels_full").type) == "list<element: int16>"
    assert set(schema.names) == {"id", "image", "path", "labels_observed", "labels_full", "split"}


def test_an_observed_label_must_also_be_a_full_label(tmp_path):
    table = make_table()
    observed = table.labels_observed.copy()
    observed[1, 0] = 1
    full = table.labels_full.copy()
    full[1, 0] = 0
    with pytest.raises(ValueError, match=r"row 1 \(id train-1\): class 0 is observed but not full"):
        write_split(tmp_path, table.replace(labels_observed=observed, labels_full=full))


def test_atomic_dir_replaces_the_folder_only_on_success(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("stage failed")
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
