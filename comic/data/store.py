"""On-disk layout of a dataset folder.

A dataset folder holds one Parquet file per split (`train.parquet`, `val.parquet`, `test.parquet`) with
columns `id` (string, unique), `image` (encoded PNG/JPEG bytes, or null), `path` (image file, or null:
exactly one of `image`/`path` is set), `labels_observed` and `labels_full` (list<int16>, a 0/1 vector
of length C; observed <= full) and `split`; plus `classes.json` (`names`, and after label dropping
`train_counts` and `groups`). Everything is written to a temporary path and renamed into place.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from comic.files import atomic_dir, atomic_file, write_json

SPLITS = ("train", "val", "test")
CLASSES_FILE = "classes.json"
ROW_GROUP_SIZE = 1024


@dataclass(frozen=True)
class SplitTable:
    """One split in memory: N rows, C classes. `labels_*` are (N, C) int16 0/1 arrays."""

    split: str
    ids: list[str]
    images: list[bytes | None]
    paths: list[str | None]
    labels_observed: np.ndarray
    labels_full: np.ndarray

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
            images=[self.images[i] for i in rows],
            paths=[self.paths[i] for i in rows],
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
    if not (len(table.images) == len(table.paths) == n):
        raise ValueError(f"{where}: id, image and path columns differ in length")
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
    for row, (image, path) in enumerate(zip(table.images, table.paths, strict=True)):
        if (image is None) == (path is None):
            raise ValueError(f"{where}: row {row} (id {table.ids[row]}) needs exactly one of image or path")


def _labels_column(labels_nc: np.ndarray) -> pa.ListArray:
    n, c = labels_nc.shape
    offsets = pa.array(np.arange(0, n * c + 1, c, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(labels_nc.astype(np.int16).ravel()))


SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("image", pa.binary()),
        ("path", pa.string()),
        ("labels_observed", pa.list_(pa.int16())),
        ("labels_full", pa.list_(pa.int16())),
        ("split", pa.string()),
    ]
)


def split_path(data_dir: str | Path, split: str) -> Path:
    return Path(data_dir) / f"{split}.parquet"


def write_split(data_dir: str | Path, table: SplitTable) -> Path:
    """Check `table` and write it to `data_dir/<split>.parquet` (atomically, byte-reproducibly)."""
    path = split_path(data_dir, table.split)
    check_split(table, str(path))
    arrow = pa.Table.from_arrays(
        [
            pa.array(table.ids, pa.string()),
            pa.array(table.images, pa.binary()),
            pa.array(table.paths, pa.string()),
            _labels_column(table.labels_observed),
            _labels_column(table.labels_full),
            pa.array([table.split] * len(table), pa.string()),
        ],
        schema=SCHEMA,
    )
    with atomic_file(path) as tmp:
        pq.write_table(arrow, tmp, row_group_size=ROW_GROUP_SIZE, compression="zstd")
    return path


def _labels_array(column: pa.ChunkedArray, path: Path, name: str) -> np.ndarray:
    lists = column.combine_chunks()
    lengths = np.diff(lists.offsets.to_numpy())
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise ValueError(f"{path}: row {row}: {name} has {lengths[row]} entries, row 0 has {lengths[0]}")
    width = int(lengths[0]) if len(lengths) else 0
    return lists.flatten().to_numpy(zero_copy_only=False).astype(np.int16).reshape(len(lengths), width)


def read_split(data_dir: str | Path, split: str) -> SplitTable:
    """Read and check `data_dir/<split>.parquet`."""
    path = split_path(data_dir, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found; build the data first (`dvc repro`)")
    arrow = pq.read_table(path)
    missing = [name for name in SCHEMA.names if name not in arrow.column_names]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; rebuild it with the data stages")
    table = SplitTable(
        split=split,
        ids=arrow.column("id").to_pylist(),
        images=arrow.column("image").to_pylist(),
        paths=arrow.column("path").to_pylist(),
        labels_observed=_labels_array(arrow.column("labels_observed"), path, "labels_observed"),
        labels_full=_labels_array(arrow.column("labels_full"), path, "labels_full"),
    )
    check_split(table, str(path))
    return table


def write_classes(data_dir: str | Path, classes: dict) -> Path:
    path = Path(data_dir) / CLASSES_FILE
    write_json(path, classes)
    return path


def load_classes(data_dir: str | Path) -> dict:
    """`classes.json` of a dataset folder: `names`, and after label dropping `train_counts`, `groups`."""
    path = Path(data_dir) / CLASSES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; build the data first (`dvc repro`)")
    classes = json.loads(path.read_text())
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
class RawDataset:
    """What a builder returns: the training pool, the test split and optionally a validation split drawn
    apart from the pool (all labels observed), and the class names."""

    train: SplitTable
    test: SplitTable
    names: list[str]
    val: SplitTable | None = None

    @property
    def tables(self) -> list[SplitTable]:
        return [t for t in (self.train, self.val, self.test) if t is not None]


def write_dataset(out_dir: str | Path, tables: list[SplitTable], classes: dict) -> None:
    """Write a whole dataset folder atomically: one Parquet file per table, plus `classes.json`."""
    for table in tables:
        check_split(table, str(split_path(out_dir, table.split)))  # errors name the final path
    with atomic_dir(out_dir) as tmp:
        for table in tables:
            write_split(tmp, table)
        write_classes(tmp, classes)
