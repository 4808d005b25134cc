"""A real S3 API for tests: moto's server on a free 127.0.0.1 port, and the AWS environment that points the
project's storage code at it. Import the fixtures into a test module to use them."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BUCKET = "comic-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free loopback port, with bucket `BUCKET`; its URL."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    server = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("moto_server did not start in 30 s")
        import pyarrow.fs as pafs

        s3 = pafs.S3FileSystem(
            access_key="testing", secret_key="testing", endpoint_override=f"127.0.0.1:{port}", scheme="http",
            region="us-east-1", allow_bucket_creation=True,
        )  # fmt: skip
        s3.create_dir(BUCKET)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    """The AWS environment of a user whose S3 is the test server."""
    for key, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    return s3_endpoint


def upload_dataset(plt_dir: Path, prefix: str) -> str:
    """Copy a dataset folder and its image store (its sibling `images`) to s3://BUCKET/<prefix>/{plt,images};
    the dataset folder's URI."""
    import pyarrow.fs as pafs

    from comic.data.location import filesystem

    s3, _ = filesystem(f"s3://{BUCKET}")
    for folder in ("images", "plt"):
        pafs.copy_files(str(plt_dir.parent / folder), f"{BUCKET}/{prefix}/{folder}", destination_filesystem=s3)
    return f"s3://{BUCKET}/{prefix}/plt"
