"""`data.source` -> the raw dataset: the embedded benchmark or one of the real-dataset builders."""

from __future__ import annotations

from pathlib import Path

from comic.config import DataConfig
from comic.data.embedded import build_embedded
from comic.data.real import BUILDERS
from comic.data.store import RawDataset, require_positives
from comic.data.tiles import load_tile_bank


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
            annotations=annotations,
            images=images,
            ids=getattr(real, f"{split}_ids"),
            split=split,
            embed_images=real.embed_images,
            **extra,
        )
    if names["train"] != names["test"]:
        raise ValueError(
            f"{real.train_annotations} and {real.test_annotations} name different classes: "
            f"{names['train'][:5]}... vs {names['test'][:5]}..."
        )
    for split, table in splits.items():
        where = f"{getattr(real, f'{split}_annotations')}, split '{split}'"
        require_positives(table.labels_full, names[split], where)
    return RawDataset(train=splits["train"], test=splits["test"], names=names["train"])
