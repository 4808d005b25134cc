"""The fingerprint of the files a dataset is built from, so that DVC sees a change to them.

A real dataset's annotation files, id lists and images live outside the repository, where dvc.yaml cannot
name them (their paths are params). The `scan_sources` stage, run on every `dvc repro`, writes
`data/sources.json`: the sha256 of each annotation, id-list, class-name and label-row file, and per image
folder the count, bytes and a digest of every file's path, size and modification time (a stat per file,
as DVC's own state cache does: no image is read). build_data depends on it, so an edited, replaced,
added or removed file reruns build_data, which then reads and checks every image.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from comic.config import DataConfig
from comic.files import file_sha256

FILE_KEYS = ("train_annotations", "train_ids", "test_annotations", "test_ids", "class_names")
FOLDER_KEYS = ("train_images", "test_images")


def folder_digest(folder: Path) -> dict:
    """Count, bytes and a digest of (relative path, size, mtime in ns) of every file under `folder`."""
    digest, count, size = hashlib.sha256(), 0, 0
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            stat = path.stat()
            digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            count, size = count + 1, size + stat.st_size
    return {"files": count, "bytes": size, "digest": digest.hexdigest()}


def _entry(key: str, value: str) -> dict:
    path = Path(value)
    if path.is_dir():
        return folder_digest(path)
    if path.is_file():
        return {"sha256": file_sha256(path)}
    raise FileNotFoundError(f"data.{key} = {value}: no such file or folder")


def fingerprint(data: DataConfig) -> dict:
    """What `data/sources.json` holds for `data.source` (the embedded benchmark: its label-row files)."""
    given = {f"label_rows.{k}": v for k, v in (("train", data.label_rows.train), ("test", data.label_rows.test))}
    if data.source != "embedded":
        given |= {f"real.{k}": getattr(data.real, k) for k in FILE_KEYS + FOLDER_KEYS}
    return {"source": data.source, "files": {k: _entry(k, v) for k, v in given.items() if v is not None}}
