"""One DVC run at a time in a workspace: a second run stops at its first stage and puts params.yaml back as
the running one has it; the running one puts it back if it changed under it."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from comic.workspace import Owner, WorkspaceBusy, _process, claim, dvc_owner

REPO = Path(__file__).resolve().parents[1]


def owner_of(process: subprocess.Popen) -> Owner:
    _, start, command = _process(process.pid)
    return Owner(process.pid, start, command)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "params.yaml").write_text("x: 1\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_second_run_stops_and_puts_params_back_while_the_first_is_alive(workspace):
    first, second = (subprocess.Popen(["sleep", "60"]) for _ in range(2))
    try:
        claim(owner=owner_of(first))
        claim(owner=owner_of(first))  # its later stages
        (workspace / "params.yaml").write_text("x: 2\n")  # what `dvc exp run -S x=2` does before any stage
        with pytest.raises(WorkspaceBusy, match=f"another DVC run is going on in this workspace \\(pid {first.pid}"):
            claim(owner=owner_of(second))
        assert (workspace / "params.yaml").read_text() == "x: 1\n"
        with pytest.raises(WorkspaceBusy) as busy:
            claim(owner=owner_of(second))  # its params are back: nothing to put back, still refused
        assert "--queue" in str(busy.value) and "--temp" in str(busy.value) and "put" not in str(busy.value)

        # Changed under the first run and not put back (the second failed on DVC's lock before any stage):
        # the first run's next stage puts it back and keeps the changed file.
        (workspace / "params.yaml").write_text("x: 3\n")
        claim(owner=owner_of(first))
        assert (workspace / "params.yaml").read_text() == "x: 1\n"
        assert (workspace / "params.yaml.changed").read_text() == "x: 3\n"
    finally:
        first.kill()
        first.wait()
    claim(owner=owner_of(second))  # the first is gone: the workspace is free
    second.kill()
    second.wait()


def test_the_owner_is_the_nearest_dvc_process_above_the_stage(tmp_path):
    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    probe = "from comic.workspace import dvc_owner; o = dvc_owner(); print(o.pid, o.command)"
    fake.write_text(f"#!/bin/sh\nsh -c '{sys.executable} -c \"{probe}\"'\necho $$\n")
    fake.chmod(0o755)
    out = subprocess.run([str(fake), "exp", "run"], capture_output=True, text=True, check=True, cwd=REPO)
    found, shell_pid = out.stdout.splitlines()
    pid, command = found.split(" ", 1)
    assert pid == shell_pid and command.endswith("dvc exp run")
    assert dvc_owner() is None  # pytest is not run by DVC


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("slow_stage", ["work", "check"])
def test_two_dvc_exp_runs_in_one_workspace(tmp_path, slow_stage):
    """Real `dvc exp run`s, the second started while the first runs `slow_stage` of check -> mid -> work.
    work: the second fails at its first stage (our check) and puts params.yaml back. check: the second fails
    on DVC's lock of check.txt after DVC rewrote params.yaml, and the first run's next stage puts it back.
    Either way the first run's stages all read its own value; DVC then fails to record the first run (the
    second removed refs it shares), and `dvc exp save` records its results."""
    bin_dir = Path(sys.executable).parent
    env = os.environ | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "DVC_NO_ANALYTICS": "1",
        "SLOW_STAGE": slow_stage,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }

    def sh(*args, check=True):
        return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, check=check, timeout=120)

    (tmp_path / "params.yaml").write_text("x: 1\n")
    (tmp_path / "stage.py").write_text(
        textwrap.dedent(
            """
            import os, pathlib, sys, time, yaml
            from comic import stage

            def main():
                x = yaml.safe_load(open("params.yaml"))["x"]  # read once, at the start, as comic's stages do
                if sys.argv[1] == os.environ["SLOW_STAGE"]:
                    pathlib.Path("slow").touch()
                    time.sleep(10)
                pathlib.Path(f"{sys.argv[1]}.txt").write_text(str(x))

            stage.run(main)
            """
        )
    )
    stages, before = {}, "stage.py"
    for name in ("check", "mid", "work"):  # DVC read-locks a running stage's deps: `work` does not read check.txt
        stages[name] = {"cmd": f"python stage.py {name}", "deps": [before], "params": ["x"], "outs": [f"{name}.txt"]}
        before = f"{name}.txt"
    # Like check_params' output: DVC deletes a stage's outputs before running it, unless they persist.
    stages["check"]["outs"] = [{"check.txt": {"persist": True}}]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    sh("git", "add", ".")
    sh("git", "commit", "-qm", "scratch")
    first = subprocess.Popen(
        ["dvc", "exp", "run", "-S", "x=2"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "slow").exists():
            assert time.monotonic() < deadline and first.poll() is None, first.stdout.read().decode()
            time.sleep(0.2)
        second = sh("dvc", "exp", "run", "-S", "x=3", check=False)
        log = first.communicate(timeout=120)[0].decode()
    finally:
        first.kill()
    said = second.stdout + second.stderr
    assert second.returncode != 0, said
    if slow_stage == "work":
        assert "another DVC run is going on in this workspace" in said and "--queue" in said and "--temp" in said
    else:
        assert "check.txt' is busy" in said and "params.yaml changed while this DVC run was going on" in log
    assert yaml.safe_load((tmp_path / "params.yaml").read_text()) == {"x": 2}
    assert [(tmp_path / f"{name}.txt").read_text() for name in ("check", "mid", "work")] == ["2"] * 3, log
    assert sh("dvc", "exp", "save", "-n", "first", check=False).returncode == 0
