"""Where dataset files live: a local path or an `s3://bucket/key` URI, opened through `pyarrow.fs`.

S3 settings come from the standard AWS environment: credentials (`AWS_ACCESS_KEY_ID`, ...), the region
(`AWS_DEFAULT_REGION`) and, for S3-compatible servers (MinIO, Ceph, a test server on 127.0.0.1), the
endpoint `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`. Requests time out after `S3_TIMEOUT_S` and are tried
`S3_ATTEMPTS` times, so an unreachable endpoint fails in seconds with the URI in the message.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from urllib.parse import urlparse

S3_TIMEOUT_S = 10
S3_ATTEMPTS = 3


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def join(location: str | Path, *parts: str) -> str:
    """`location`/`parts` for a local path or a URI."""
    if is_uri(location):
        scheme, rest = str(location).split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, *parts))}"
    return os.path.normpath(os.path.join(location, *parts))


def absolute(location: str | Path) -> str:
    """A URI as given, a local path made absolute (Ray workers may run in another folder or on another node)."""
    return str(location) if is_uri(location) else str(Path(location).resolve())


def ray_storage(location: str | Path) -> dict:
    """`storage_path` (and, on S3, `storage_filesystem`) of Ray's RunConfig: Ray opens an s3:// URI with
    pyarrow's defaults, which ignore AWS_ENDPOINT_URL; the filesystem of `filesystem` carries it."""
    if str(location).startswith("s3://"):
        fs, path = filesystem(location)
        return {"storage_path": path, "storage_filesystem": fs}
    return {"storage_path": absolute(location)}


def relative(target: str, start: str | Path) -> str:
    """`target` as written in a file of folder `start`: relative when both are local, else as it is."""
    if is_uri(target) or is_uri(start):
        return target
    return os.path.relpath(target, start)


def s3_endpoint() -> dict:
    """`endpoint_override` and `scheme` of `pyarrow.fs.S3FileSystem` from the AWS environment, if set."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return {}
    parsed = urlparse(url if "://" in url else f"https://{url}")
    return {"endpoint_override": parsed.netloc, "scheme": parsed.scheme}


def filesystem(location: str | Path):
    """`(pyarrow FileSystem, path inside it)` of a local path or an `s3://` URI."""
    import pyarrow.fs as pafs

    if not is_uri(location):
        return pafs.LocalFileSystem(), os.path.abspath(location)
    scheme, rest = str(location).split("://", 1)
    if scheme != "s3":
        return pafs.FileSystem.from_uri(str(location))
    s3 = pafs.S3FileSystem(
        connect_timeout=S3_TIMEOUT_S,
        request_timeout=S3_TIMEOUT_S,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
        **s3_endpoint(),
    )
    return s3, rest


def where(location: str | Path) -> str:
    """How errors name a location: the URI with its endpoint, so a wrong server shows."""
    endpoint = s3_endpoint().get("endpoint_override") if str(location).startswith("s3://") else None
    return f"{location} (endpoint {endpoint})" if endpoint else str(location)


def open_error(location: str | Path, err: OSError) -> OSError:
    """An error for a file that could not be opened or read, naming it and what to check."""
    if is_uri(location):
        hint = "check the URI, the credentials and that the endpoint (AWS_ENDPOINT_URL) is reachable"
        return OSError(f"{where(location)}: cannot read ({err}); {hint}")
    if isinstance(err, FileNotFoundError) or not Path(location).exists():
        return FileNotFoundError(f"{location}: not found; rebuild the data (`dvc repro`) or restore the file")
    return OSError(f"{location}: cannot read ({err})")
