"""On-disk layout of a dataset: label tables in a dataset folder, image bytes in the image store.

A dataset folder holds one Parquet file per split (`train.parquet`, `val.parquet`, `test.parquet`) with
columns `id` (string, unique), `file`, `offset` and `size` (where the image is: `size` bytes at `offset` of
shard `file` of the image store, `comic.data.shards`; offset -1: the whole image file `file`, as given),
`labels_observed` and `labels_full` (list<int16>, a 0/1 vector of length C; observed <= full) and `split`;
the file's metadata names the image store, relative to the folder. Plus `classes.json` (`names`, and after
label dropping `train_counts` and `groups`). A split file holds no image, so reading one costs its labels
only; stages that change labels write new tables that point at the same images. Everything is written to a
temporary path and renamed into place. A folder may be local or an `s3://` URI (`comic.data.location`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from comic.data.location import filesystem, is_uri, join, open_error, relative
from comic.files import atomic_dir, atomic_file, write_json

SPLITS = ("train", "val", "test")
CLASSES_FILE = "classes.json"
ROW_GROUP_SIZE = 1024
STORE_KEY = b"comic.image_store"  # split-file metadata: the image store, relative to the dataset folder


@dataclass(frozen=True)
class SplitTable:
    """One split's labels and image references: N rows, C classes. `labels_*` are (N, C) int16 0/1 arrays;
    row i's image is `sizes[i]` bytes at `offsets[i]` of shard `files[i]` in `image_store` (an absolute
    path or URI), or with offset -1 the image file `files[i]`."""

    split: str
    ids: list[str]
    files: list[str]
    offsets: np.ndarray
    sizes: np.ndarray
    labels_observed: np.ndarray
    labels_full: np.ndarray
    image_store: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        return self.labels_full.shape[1]

    def take(self, rows: np.ndarray) -> SplitTable:
        """The rows `rows` (in that order)."""
        return dataclasses.replace(
            self,
            ids=[self.ids[i] for i in rows],
            files=[self.files[i] for i in rows],
            offsets=self.offsets[rows],
            sizes=self.sizes[rows],
            labels_observed=self.labels_observed[rows],
            labels_full=self.labels_full[rows],
        )

    def replace(self, **changes) -> SplitTable:
        return dataclasses.replace(self, **changes)


def check_split(table: SplitTable, where: str) -> None:
    """Raise ValueError naming `where` and the row if `table` breaks the layout above."""
    n = len(table)
    if n == 0:
        raise ValueError(f"{where}: split '{table.split}' is empty; give it images (check source and sizes)")
    if not (len(table.files) == len(table.offsets) == len(table.sizes) == n):
        raise ValueError(f"{where}: id, file, offset and size columns differ in length")
    for name in ("labels_observed", "labels_full"):
        labels = getattr(table, name)
        if labels.ndim != 2 or labels.shape[0] != n:
            raise ValueError(f"{where}: {name} must be (N={n}, C), got shape {labels.shape}")
        bad = np.argwhere((labels != 0) & (labels != 1))
        if len(bad):
            row, col = bad[0]
            value = labels[row, col]
            raise ValueError(f"{where}: row {row} (id {table.ids[row]}): {name}[{col}] = {value}, not 0/1")
    if table.labels_observed.shape != table.labels_full.shape:
        raise ValueError(f"{where}: labels_observed {table.labels_observed.shape} != labels_full shape")
    bad = np.argwhere(table.labels_observed > table.labels_full)
    if len(bad):
        row, col = bad[0]
        raise ValueError(f"{where}: row {row} (id {table.ids[row]}): class {col} is observed but not full")
    seen: dict[str, int] = {}
    for row, id_ in enumerate(table.ids):
        if id_ in seen:
            raise ValueError(f"{where}: duplicate id {id_!r} in rows {seen[id_]} and {row}; make ids unique")
        seen[id_] = row
    bad = np.flatnonzero((table.offsets < -1) | (table.sizes < 0))
    if len(bad) or any(not f for f in table.files):
        row = int(bad[0]) if len(bad) else next(i for i, f in enumerate(table.files) if not f)
        raise ValueError(f"{where}: row {row} (id {table.ids[row]}) has no valid image reference")
    if table.image_store is None and (table.offsets >= 0).any():
        raise ValueError(f"{where}: rows point into an image store, but the table names none")


def _labels_column(labels_nc: np.ndarray) -> pa.ListArray:
    n, c = labels_nc.shape
    offsets = pa.array(np.arange(0, n * c + 1, c, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(labels_nc.astype(np.int16).ravel()))


SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("file", pa.dictionary(pa.int32(), pa.string())),
        ("offset", pa.int64()),
        ("size", pa.int64()),
        ("labels_observed", pa.list_(pa.int16())),
        ("labels_full", pa.list_(pa.int16())),
        ("split", pa.string()),
    ]
)


def split_path(data_dir: str | Path, split: str) -> str:
    return join(data_dir, f"{split}.parquet")


def write_split(data_dir: str | Path, table: SplitTable) -> Path:
    """Check `table` and write it to `data_dir/<split>.parquet` (local; atomically, byte-reproducibly)."""
    path = Path(split_path(data_dir, table.split))
    check_split(table, str(path))
    arrow = pa.Table.from_arrays(
        [
            pa.array(table.ids, pa.string()),
            pa.array(table.files, pa.string()).dictionary_encode(),
            pa.array(table.offsets, pa.int64()),
            pa.array(table.sizes, pa.int64()),
            _labels_column(table.labels_observed),
            _labels_column(table.labels_full),
            pa.array([table.split] * len(table), pa.string()),
        ],
        schema=SCHEMA,
    )
    if table.image_store is not None:
        store = relative(table.image_store, Path(data_dir).resolve())
        arrow = arrow.replace_schema_metadata({STORE_KEY: store.encode()})
    with atomic_file(path) as tmp:
        pq.write_table(arrow, tmp, row_group_size=ROW_GROUP_SIZE, compression="zstd")
    return path


def _labels_array(column: pa.ChunkedArray, path: str, name: str) -> np.ndarray:
    lists = column.combine_chunks()
    lengths = np.diff(lists.offsets.to_numpy())
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise ValueError(f"{path}: row {row}: {name} has {lengths[row]} entries, row 0 has {lengths[0]}")
    width = int(lengths[0]) if len(lengths) else 0
    return lists.flatten().to_numpy(zero_copy_only=False).astype(np.int16).reshape(len(lengths), width)


def read_split(data_dir: str | Path, split: str) -> SplitTable:
    """Read and check `data_dir/<split>.parquet` (a local folder or a URI): labels and image references."""
    path = split_path(data_dir, split)
    fs, inside = filesystem(path)
    try:
        arrow = pq.read_table(inside, filesystem=fs)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: split file not found; build the data first (`dvc repro`)") from None
    except OSError as err:
        raise open_error(path, err) from None
    missing = [name for name in SCHEMA.names if name not in arrow.column_names]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; rebuild it with the data stages (`dvc repro`)")
    store = (arrow.schema.metadata or {}).get(STORE_KEY)
    base = data_dir if is_uri(data_dir) else Path(data_dir).resolve()
    table = SplitTable(
        split=split,
        ids=arrow.column("id").to_pylist(),
        files=arrow.column("file").to_pylist(),
        offsets=arrow.column("offset").to_numpy(),
        sizes=arrow.column("size").to_numpy(),
        labels_observed=_labels_array(arrow.column("labels_observed"), path, "labels_observed"),
        labels_full=_labels_array(arrow.column("labels_full"), path, "labels_full"),
        image_store=join(base, store.decode()) if store is not None else None,
    )
    check_split(table, path)
    return table


def write_classes(data_dir: str | Path, classes: dict) -> Path:
    path = Path(data_dir) / CLASSES_FILE
    write_json(path, classes)
    return path


def load_classes(data_dir: str | Path) -> dict:
    """`classes.json` of a dataset folder: `names`, and after label dropping `train_counts`, `groups`."""
    path = join(data_dir, CLASSES_FILE)
    fs, inside = filesystem(path)
    try:
        with fs.open_input_stream(inside) as handle:
            classes = json.loads(handle.read())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found; build the data first (`dvc repro`)") from None
    except OSError as err:
        raise open_error(path, err) from None
    if not isinstance(classes.get("names"), list) or not classes["names"]:
        raise ValueError(f"{path}: needs a non-empty list `names`")
    return classes


def require_positives(labels_nc: np.ndarray, names: list[str], where: str) -> None:
    """Raise if some class has no positive in `labels_nc` (its AP and its sampling need one)."""
    empty = np.flatnonzero(np.asarray(labels_nc).sum(axis=0) == 0)
    if len(empty):
        listed = ", ".join(f"{c} ({names[c]})" for c in empty)
        raise ValueError(
            f"{where}: class {listed} has no positive; every class needs at least one "
            "(add images of it, or drop the class)"
        )


@dataclass(frozen=True)
class SourceSplit:
    """A split as a builder returns it, before its images are stored: ids and labels (every label
    observed), and each row's image as encoded bytes (`images`) or as a file to read (`files`)."""

    split: str
    ids: list[str]
    labels_nc: np.ndarray
    images: list[bytes] | None = None
    files: list[Path] | None = None
    where: str = ""  # what errors name as the rows' origin (an annotation file)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class RawDataset:
    """What a builder returns: the training pool, the test split and optionally a validation split drawn
    apart from the pool, and the class names."""

    train: SourceSplit
    test: SourceSplit
    names: list[str]
    val: SourceSplit | None = None

    @property
    def splits(self) -> list[SourceSplit]:
        return [t for t in (self.train, self.val, self.test) if t is not None]


def write_dataset(out_dir: str | Path, tables: list[SplitTable], classes: dict) -> None:
    """Write a whole dataset folder atomically: one Parquet file per table, plus `classes.json`."""
    for table in tables:
        check_split(table, str(split_path(out_dir, table.split)))  # errors name the final path
    with atomic_dir(out_dir) as tmp:
        for table in tables:
            write_split(tmp, table)
        write_classes(tmp, classes)
