"""The image store: every image's encoded bytes, written once, in uncompressed tar shards.

The build_data stage appends images to `images-00000.tar`, `images-00001.tar`, ... (a new shard after
`SHARD_BYTES`); a split file row points at its image by shard name, byte offset and size, so the stages
that only change labels or membership never copy an image, and a reader fetches one image with one
positioned read (one HTTP range request on S3). The shards are plain tar files (`tar tf` lists them);
their bytes depend only on the images, so a rebuild is byte-identical.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from comic.data.location import filesystem, is_uri, join, open_error

SHARD_BYTES = 256 * 1024 * 1024


class ShardWriter:
    """Appends encoded images to tar shards in `folder`; `add` returns where the bytes went."""

    def __init__(self, folder: str | Path, shard_bytes: int = SHARD_BYTES):
        self.folder, self.shard_bytes = Path(folder), shard_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tar: tarfile.TarFile | None = None
        self._count = 0
        self._name = ""

    def add(self, name: str, data: bytes) -> tuple[str, int, int]:
        """Store `data` as member `name`; returns (shard file name, byte offset of the data, size)."""
        if self._tar is None or self._tar.offset >= self.shard_bytes:
            self.close()
            self._name = f"images-{self._count:05d}.tar"
            self._tar = tarfile.open(self.folder / self._name, "w", format=tarfile.PAX_FORMAT)
            self._count += 1
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        self._tar.addfile(info, io.BytesIO(data))
        padded = -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE  # the data ends on a block boundary
        return self._name, self._tar.offset - padded, len(data)

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None


class ImageReader:
    """Reads images by reference: `(file, offset, size)` inside the store at `root` (local or `s3://`), or
    with offset -1 the whole file `file`. Open files are per process: DataLoader workers fork after the
    dataset is built, and each opens its own."""

    def __init__(self, root: str | None):
        self.root = root
        self._pid = -1
        self._open: dict[str, object] = {}
        self._fs = None

    def _files(self) -> dict:
        if self._pid != os.getpid():
            self._pid, self._open, self._fs = os.getpid(), {}, None
        return self._open

    def _location(self, file: str, offset: int) -> str:
        return file if offset < 0 or self.root is None else join(self.root, file)

    def read(self, file: str, offset: int, size: int) -> bytes:
        location = self._location(file, offset)
        handles = self._files()
        try:
            if not is_uri(location):
                if offset < 0:
                    return Path(location).read_bytes()
                if location not in handles:
                    handles[location] = os.open(location, os.O_RDONLY)
                data = os.pread(handles[location], size, offset)
            else:
                if self._fs is None:
                    self._fs = filesystem(location)[0]
                path = location.split("://", 1)[1]
                if offset < 0:
                    with self._fs.open_input_file(path) as handle:
                        return handle.read()
                if location not in handles:
                    handles[location] = self._fs.open_input_file(path)
                data = handles[location].read_at(size, offset)
        except OSError as err:
            raise open_error(location, err) from None
        if len(data) != size:
            raise OSError(f"{location}: {len(data)} of {size} bytes at offset {offset}; the shard is truncated")
        return data
