"""The three data stages end to end: byte-reproducible outputs, and DVC's contract (slow)."""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from comic.data.store import read_split
from infra.scratch_repo import commit, copy_repo

from .conftest import run_data_stages, write_params


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_the_same_params_and_seed_give_byte_identical_outputs(tmp_path, monkeypatch, plt_dir):
    params = write_params(tmp_path)
    again = run_data_stages(params, tmp_path / "again", monkeypatch)
    assert digest(again) == digest(plt_dir)
    for stage in ("raw", "split"):
        assert digest(tmp_path / "again" / stage) == digest(plt_dir.parent / stage)


def test_another_seed_gives_another_dataset(tmp_path, monkeypatch, plt_dir):
    other = run_data_stages(write_params(tmp_path, seed=1), tmp_path / "other", monkeypatch)
    assert digest(other)["train.parquet"] != digest(plt_dir)["train.parquet"]


def test_the_missing_rate_changes_only_the_observed_labels(tmp_path, monkeypatch, plt_dir):
    more = run_data_stages(write_params(tmp_path, missing_rate=0.6), tmp_path / "more", monkeypatch)
    base, hidden = read_split(plt_dir, "train"), read_split(more, "train")
    assert base.ids == hidden.ids and (base.labels_full == hidden.labels_full).all()
    assert hidden.labels_observed.sum() < base.labels_observed.sum()


def dvc(repo: Path, *args: str, ok: bool = True) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    command = [sys.executable, "-m", "dvc", *args]
    # stderr into stdout, interleaved: the log as a user's terminal shows it
    done = subprocess.run(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert (done.returncode == 0) == ok, f"dvc {' '.join(args)} {'failed' if ok else 'succeeded'}:\n{done.stdout}"
    return done.stdout


def ran_stages(log: str) -> list[str]:
    """The stages a `dvc repro` log says it ran. `scan_sources` runs every time (it fingerprints a real
    dataset's files, which DVC cannot track); a run with nothing changed runs it alone."""
    return re.findall(r"Running stage '([^']+)'", log)


def scratch_repo(root: Path, **params_updates: dict) -> Path:
    """A committed git + DVC repo in `root/repo` with the project's code, dvc.yaml and tiny params;
    `params_updates` maps a params section to the keys to change in it."""
    params = yaml.safe_load(write_params(root).read_text())
    for section, updates in params_updates.items():
        params[section].update(updates)
    repo = copy_repo(root / "repo", params)
    commit(repo, "scratch")
    return repo


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_dvc_repro_twice_is_a_no_op_and_exp_run_overrides_the_missing_rate(tmp_path):
    repo = scratch_repo(tmp_path)
    first = dvc(repo, "repro", "drop_labels")
    assert "Running stage 'build_data'" in first and "Running stage 'drop_labels'" in first
    assert ran_stages(dvc(repo, "repro", "drop_labels")) == ["scan_sources"]
    commit(repo, "data built")

    changed = dvc(repo, "exp", "run", "-S", "data.missing_rate=0.5", "drop_labels")
    assert "Running stage 'drop_labels'" in changed and "Running stage 'build_data'" not in changed
    assert yaml.safe_load((repo / "params.yaml").read_text())["data"]["missing_rate"] == 0.5
    # Every key is a column of `dvc exp show` (the first stage tracks the whole file); the README's
    # --only-changed shows the experiment's own.
    assert len(dvc(repo, "exp", "show", "--csv").splitlines()[0].split(",")) > 100
    columns = dvc(repo, "exp", "show", "--only-changed", "--csv").splitlines()[0].split(",")
    assert "data.missing_rate" in columns and len(columns) < 10, columns


def test_a_natural_validation_split_is_held_out_apart_from_the_pool_and_hidden_like_training(plt_dir):
    raw, val = read_split(plt_dir.parent / "raw", "train"), read_split(plt_dir, "val")
    assert read_split(plt_dir, "train").ids == raw.ids  # nothing carved out of the long-tailed pool
    assert all(i.startswith("val-") for i in val.ids) and not set(val.ids) & set(raw.ids)
    assert val.labels_observed.sum() < val.labels_full.sum()  # labels hidden as in training
