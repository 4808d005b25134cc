"""`data.source` -> the raw dataset: the embedded benchmark or one of the real-dataset builders; then its
images into the image store and its label tables into the raw dataset folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from comic.config import DataConfig
from comic.data.embedded import build_embedded
from comic.data.real import BUILDERS, load_image
from comic.data.shards import ShardWriter
from comic.data.store import RawDataset, SourceSplit, SplitTable, require_positives, write_dataset
from comic.data.tiles import load_tile_bank
from comic.files import atomic_dir


def build_raw(data: DataConfig, tile_bank: str | Path) -> RawDataset:
    """Training pool, test split (and the natural validation split) of `data.source`, nothing hidden yet;
    `tile_bank` serves `embedded`."""
    if data.source == "embedded":
        return build_embedded(load_tile_bank(tile_bank), data)
    real = data.real
    extra = {"class_names": real.class_names} if data.source == "comic_json" else {}
    splits, names = {}, {}
    for split in ("train", "test"):
        annotations, images = getattr(real, f"{split}_annotations"), getattr(real, f"{split}_images")
        if annotations is None or (images is None and data.source != "voc"):
            raise ValueError(
                f"data.source={data.source} needs data.real.{split}_annotations"
                + ("" if data.source == "voc" else f" and data.real.{split}_images")
            )
        splits[split], names[split] = BUILDERS[data.source](
            annotations=annotations, images=images, ids=getattr(real, f"{split}_ids"), split=split, **extra
        )
    if names["train"] != names["test"]:
        raise ValueError(
            f"{real.train_annotations} and {real.test_annotations} name different classes: "
            f"{names['train'][:5]}... vs {names['test'][:5]}..."
        )
    for split, table in splits.items():
        where = f"{getattr(real, f'{split}_annotations')}, split '{split}'"
        require_positives(table.labels_nc, names[split], where)
    return RawDataset(train=splits["train"], test=splits["test"], names=names["train"])


def _store_split(source: SourceSplit, writer: ShardWriter, embed: bool, store: str) -> SplitTable:
    """Each row's image into the store (or, `embed` false, checked and referenced where it is), one image in
    memory at a time; returns the split's label table."""
    files, offsets, sizes = [], np.empty(len(source), np.int64), np.empty(len(source), np.int64)
    for row, id_ in enumerate(source.ids):
        if source.images is not None:
            data, path = source.images[row], None
        else:
            path = source.files[row]
            data = load_image(path, f"{source.where}, id {id_}")
        if embed or path is None:
            file, offsets[row], sizes[row] = writer.add(id_, data)
        else:
            file, offsets[row], sizes[row] = str(path), -1, len(data)
        files.append(file)
    labels = source.labels_nc.astype(np.int16)
    return SplitTable(source.split, source.ids, files, offsets, sizes, labels.copy(), labels, image_store=store)


def store_images(raw: RawDataset, out_dir, images_dir, *, embed: bool, classes: dict) -> list[SplitTable]:
    """Write the image store `images_dir` and the raw dataset folder `out_dir` (both atomically): images are
    read and decoded one at a time, so memory does not grow with the number of images."""
    store = str(Path(images_dir).resolve())
    with atomic_dir(images_dir) as tmp:
        writer = ShardWriter(tmp)
        try:
            tables = [_store_split(split, writer, embed, store) for split in raw.splits]
        finally:
            writer.close()
        write_dataset(out_dir, tables, classes)
    return tables
