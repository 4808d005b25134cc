"""The DVC remote gives a job exactly the data version of its commit: two commits with different data are
pushed through infra/dvc-remote.sh; the tree of the first (as a cluster job gets it: `git archive`, no
.git) and a clone at the second each pull their own version, file by file as dvc.lock pins it."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.cluster_job import DATA, data_md5
from infra.scratch_repo import GIT
from tests.infra.conftest import sh

FOLDERS = (DATA, "data/images")  # the data version: the dataset folder and the image store it points into


def pinned_files(remote: Path, version: str) -> dict[str, str]:
    """folder/relpath -> md5 of every file of a data version (`plt md5+images md5`), from the manifests
    in the remote."""
    files = {}
    for folder, dir_md5 in zip(FOLDERS, version.split("+"), strict=True):
        manifest = remote / "files" / "md5" / dir_md5[:2] / dir_md5[2:]
        files |= {f"{folder}/{entry['relpath']}": entry["md5"] for entry in json.loads(manifest.read_text())}
    return files


def pulled_files(root: Path) -> dict[str, str]:
    """folder/relpath -> md5 of every file the pull put in the data version's folders under `root`."""
    return {
        path.relative_to(root).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
        for folder in FOLDERS
        for path in sorted((root / folder).rglob("*"))
        if path.is_file()
    }


@pytest.mark.timeout(240)
def test_a_checkout_of_each_commit_pulls_exactly_the_data_version_its_dvc_lock_pins(tiny_repo, dvc_remote, tmp_path):
    first = sh("git", "rev-parse", "HEAD", cwd=tiny_repo).strip()
    first_md5 = data_md5(tiny_repo / "dvc.lock")

    # A second commit with other data: a clone of the first, another data seed, pushed the same way.
    repo = tmp_path / "second"
    sh("git", "clone", "-q", str(tiny_repo), str(repo), cwd=tmp_path)
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["data"]["seed"] = 1
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    sh(sys.executable, "-m", "dvc", "repro", "-q", "drop_labels", cwd=repo)
    sh("bash", "infra/dvc-remote.sh", "push", cwd=repo, env={"DVC_REMOTE_URL": str(dvc_remote)})
    sh(*GIT, "commit", "-qam", "other data seed", cwd=repo)
    second = sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    second_md5 = data_md5(repo / "dvc.lock")
    assert second_md5 != first_md5
    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")

    # The first commit as a job's working dir: the tree without .git, nothing but the remote to pull from.
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    archive = subprocess.run(["git", "archive", first], cwd=repo, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x"], cwd=job_dir, input=archive, check=True)
    assert not (job_dir / ".git").exists() and not (job_dir / DATA).exists()
    sh("bash", "infra/dvc-remote.sh", "pull", cwd=job_dir, env={"DVC_REMOTE_URL": str(dvc_remote)})
    assert pulled_files(job_dir) == pinned_files(dvc_remote, first_md5)

    # The second commit in a git checkout pulls its own version.
    sh("git", "checkout", "-q", second, cwd=repo)
    sh("bash", "infra/dvc-remote.sh", "pull", cwd=repo, env={"DVC_REMOTE_URL": str(dvc_remote)})
    assert pulled_files(repo) == pinned_files(dvc_remote, second_md5)
    assert pulled_files(repo) != pulled_files(job_dir)

    # No bucket and no credential enter the repository: the remote lives in the git-ignored config.local.
    assert str(dvc_remote) not in (repo / ".dvc" / "config").read_text()
    assert "config.local" in (repo / ".dvc" / ".gitignore").read_text()


@pytest.mark.timeout(60)
def test_a_job_without_a_remote_or_storage_path_stops_before_training(tmp_path):
    from tests.data.conftest import REPO

    done = subprocess.run(
        ["bash", str(REPO / "infra" / "dvc-remote.sh"), "pull"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode != 0 and "DVC_REMOTE_URL" in done.stderr
    done = subprocess.run(
        [sys.executable, str(REPO / "infra" / "cluster_job.py"), "train"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode != 0 and "COMIC_STORAGE_PATH" in done.stderr
