import numpy as np
import pyarrow.parquet as pq
import pytest

from comic.data.shards import ImageReader, ShardWriter
from comic.data.store import SplitTable, read_split, write_split
from comic.files import atomic_dir


def make_table(split="train", n=5, c=3, store="/data/images"):
    labels = (np.arange(n * c).reshape(n, c) % 2).astype(np.int16)
    return SplitTable(
        split=split,
        ids=[f"{split}-{i}" for i in range(n)],
        files=["images-00000.tar"] * (n - 1) + ["/elsewhere/photo.jpg"],
        offsets=np.array([512 * (i + 1) for i in range(n - 1)] + [-1], dtype=np.int64),
        sizes=np.full(n, 100, dtype=np.int64),
        labels_observed=labels * (np.arange(n)[:, None] % 2 == 0),
        labels_full=labels,
        image_store=store,
    )


def test_a_split_round_trips_through_parquet(tmp_path):
    table = make_table(store=str(tmp_path / "images"))
    write_split(tmp_path / "plt", table)
    back = read_split(tmp_path / "plt", "train")
    assert back.ids == table.ids and back.files == table.files and back.image_store == table.image_store
    np.testing.assert_array_equal(back.offsets, table.offsets)
    np.testing.assert_array_equal(back.sizes, table.sizes)
    np.testing.assert_array_equal(back.labels_observed, table.labels_observed)
    np.testing.assert_array_equal(back.labels_full, table.labels_full)
    assert back.labels_full.shape == (5, 3)


def test_a_split_file_names_its_image_store_relative_to_its_folder_so_the_data_can_move(tmp_path):
    write_split(tmp_path / "data" / "plt", make_table(store=str(tmp_path / "data" / "images")))
    meta = pq.read_schema(tmp_path / "data" / "plt" / "train.parquet").metadata
    assert meta[b"comic.image_store"] == b"../images"
    (tmp_path / "data").rename(tmp_path / "moved")
    assert read_split(tmp_path / "moved" / "plt", "train").image_store == str(tmp_path / "moved" / "images")


def test_labels_are_stored_as_list_int16_columns_and_no_image_bytes(tmp_path):
    write_split(tmp_path, make_table())
    schema = pq.read_schema(tmp_path / "train.parquet")
    assert str(schema.field("labels_observed").type) == "list<element: int16>"
    assert str(schema.field("labels_full").type) == "list<element: int16>"
    assert set(schema.names) == {"id", "file", "offset", "size", "labels_observed", "labels_full", "split"}


def test_images_read_back_from_shards_exactly_and_shards_roll_over_at_their_size(tmp_path):
    images = [bytes([i]) * (300 + 97 * i) for i in range(12)]
    writer = ShardWriter(tmp_path, shard_bytes=2048)
    refs = [writer.add(f"img/{i}.jpg", data) for i, data in enumerate(images)]
    writer.close()
    assert len({file for file, _, _ in refs}) > 1
    reader = ImageReader(str(tmp_path))
    assert [reader.read(*ref) for ref in refs] == images
    import tarfile

    with tarfile.open(tmp_path / refs[0][0]) as tar:  # a shard is a plain tar file
        assert tar.getnames()[0] == "img/0.jpg"


def test_a_truncated_shard_fails_naming_the_shard(tmp_path):
    writer = ShardWriter(tmp_path)
    ref = writer.add("a.jpg", b"x" * 5000)
    writer.close()
    (tmp_path / ref[0]).write_bytes((tmp_path / ref[0]).read_bytes()[:1000])
    with pytest.raises(OSError, match=r"images-00000\.tar: .* shard is truncated"):
        ImageReader(str(tmp_path)).read(*ref)


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
