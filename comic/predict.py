"""Batch inference for `comic predict`: a registered model version (or a model file) over a folder of
images or a Parquet split, written as JSON Lines: {"id", "probabilities": {class: p}, "labels": [...]}.

Labels are the classes whose probability reaches the model's per-class threshold (chosen on validation
at training time), exactly as the served pyfunc returns them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_predictor(model: str, tracking_uri: str, scratch: str | Path):
    """A loaded `comic.serving.ComicModel` of `model_file` (the installed comic code and the model file
    alone: no code logged to the registry is run)."""
    from comic.serving import ComicModel

    path = model_file(model, tracking_uri, scratch)
    try:
        return ComicModel().load(path)
    except ValueError as err:
        raise ValueError(f"{model}: not a comic model ({err})") from err


def model_file(model: str, tracking_uri: str, scratch: str | Path) -> Path:
    """The comic model file of `model`: a model file itself, or of a registered version
    (`models:/comic@champion`, `models:/comic/3`), downloaded into `scratch` after every file of the
    version was checked against its `artifact_sha256` tag and the model file against `model_sha256`."""
    if Path(model).is_file():
        return Path(model)
    if not model.startswith("models:/"):
        raise FileNotFoundError(
            f"{model}: no such model file, and not a registered model version (models:/comic@champion, models:/comic/3)"
        )
    from comic.registry import (
        check_reachable,
        download_verified_model_file,
        http_limits,
        registry_client,
        resolve_version,
    )

    store = tracking_uri.removeprefix("sqlite:///")
    if tracking_uri.startswith("sqlite:///") and not Path(store).is_file():
        raise FileNotFoundError(
            f"no MLflow tracking store at {tracking_uri}; pass --tracking-uri or set MLFLOW_TRACKING_URI"
        )
    with http_limits(timeout=30):
        check_reachable(tracking_uri, timeout=30, untouched="Nothing was read.")
        client = registry_client(tracking_uri)
        name, version = resolve_version(client, model)
        return download_verified_model_file(client, tracking_uri, name, version, str(scratch))


def iter_images(source: str | Path, batch_size: int) -> tuple[int, Iterator[tuple[list[str], Iterator[bytes]]]]:
    """(number of images, batches of (ids, their encoded images)) from an image folder or a comic Parquet
    file. A folder's files are read one at a time, as the batch's images are consumed. Folder ids are paths
    relative to the folder; Parquet ids are its `id` column."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{source}: no {'/'.join(IMAGE_SUFFIXES)} images in this folder")

        def folder_batches():
            for start in range(0, len(files), batch_size):
                chunk = files[start : start + batch_size]
                yield [p.relative_to(source).as_posix() for p in chunk], (p.read_bytes() for p in chunk)

        return len(files), folder_batches()
    if source.is_file() and source.suffix == ".parquet":
        from comic.data.dataset import MultiLabelDataset

        split = MultiLabelDataset(source.parent, source.stem, transform=None)  # labels and references only

        def split_batches():
            for start in range(0, len(split), batch_size):
                rows = range(start, min(start + batch_size, len(split)))
                yield [split.ids[i] for i in rows], (split.image_bytes(i) for i in rows)

        return len(split), split_batches()
    raise ValueError(f"{source}: give an image folder or a .parquet split file")


def predict_to_jsonl(predictor, source: str | Path, output: str | Path, *, batch_size: int = 64) -> int:
    """Write one JSON line per image to `output` (atomically); returns the number of rows. Images are
    read, decoded and resized one at a time (`ComicModel.probabilities`): a batch of any size holds at most
    one full-size image."""
    from tqdm import tqdm

    from comic.files import atomic_file

    names = predictor.class_names
    total, batches = iter_images(source, batch_size)
    rows = 0
    with (
        atomic_file(output) as tmp,
        tmp.open("w") as handle,
        tqdm(total=total, unit="img", desc="predict", file=sys.stderr, disable=None) as bar,
    ):
        for ids, images in batches:
            named = ((f"{source}: image {id_!r}", data) for id_, data in zip(ids, images, strict=True))
            probabilities = predictor.probabilities(named, batch_size)  # (B, C)
            for id_, row, labels in zip(ids, probabilities, predictor.labels(probabilities), strict=True):
                line = {"id": id_, "probabilities": dict(zip(names, map(float, row), strict=True)), "labels": labels}
                handle.write(json.dumps(line) + "\n")
            rows += len(ids)
            bar.update(len(ids))
    return rows
