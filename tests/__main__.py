"""`make test`'s runner: `python -m tests [pytest args]` runs pytest, then leaves without Python's teardown.

Once pytest has printed its summary, the process still has to finalize every native library it loaded
(torch, Ray's core worker, gRPC, Arrow's allocators) while their background threads may still run. On CI
that step once crashed (SIGSEGV) after all 323 tests had passed, and the run failed on it. The verdict is
pytest's exit status, so the runner flushes the streams and exits with it directly. faulthandler is on
for the whole process: a crash anywhere before that prints every thread's Python stack.
"""

import faulthandler
import os
import sys

import pytest


def main() -> None:
    faulthandler.enable()
    status = int(pytest.main(sys.argv[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
