"""`python -m tests` (make test's runner) exits with pytest's verdict, even when teardown would crash."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A test module whose import arms a crash in Python's teardown: SIGSEGV from an atexit handler, after
# pytest has reported, as a native library's finalizer can.
CRASHING_TEARDOWN = """
import atexit, os, signal
atexit.register(lambda: os.kill(os.getpid(), signal.SIGSEGV))

def test_passes():
    assert True

def test_fails_when_asked():
    assert os.environ.get("FAIL") != "1"
"""


def run(module: str, folder: Path, fail: bool) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "FAIL": "1" if fail else "0"}
    args = [sys.executable, "-m", module, "-q", "-p", "no:cacheprovider", "--rootdir", str(folder), str(folder)]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("fail", "status"), [(False, 0), (True, 1)])
def test_the_runner_exits_with_pytest_s_status_and_skips_a_crashing_teardown(tmp_path, fail, status):
    (tmp_path / "test_probe.py").write_text(CRASHING_TEARDOWN)
    plain = run("pytest", tmp_path, fail)
    assert plain.returncode == -11, "the probe must crash plain pytest's teardown, or this test shows nothing"
    done = run("tests", tmp_path, fail)
    assert done.returncode == status, done.stdout + done.stderr
    assert ("1 failed, 1 passed" if fail else "2 passed") in done.stdout  # the summary was flushed out
