"""The README's pipeline numbers are the committed run's: its default-model row says what
reports/metrics.json holds as git has it (the evaluate stage of the `make repro` that produced the
committed dvc.lock). A user's own `make repro` rewrites the working tree's metrics file, and on another
CPU scores differently; that must not make `make test` fail."""

import json
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METRICS = "reports/metrics.json"
ROW = "the default COMIC model"


def committed_metrics(repo: Path) -> dict:
    """`reports/metrics.json` at HEAD; the working tree's file where `repo` is not a git checkout."""
    try:
        shown = subprocess.run(
            ["git", "show", f"HEAD:{METRICS}"], cwd=repo, capture_output=True, text=True, check=True, timeout=60
        )
        return json.loads(shown.stdout)
    except (OSError, subprocess.CalledProcessError):
        return json.loads((repo / METRICS).read_text())


def readme_row_mismatch(repo: Path) -> str | None:
    """None when the README's default-model row carries the committed test mAP total / many / medium / few."""
    metrics = committed_metrics(repo)
    row = next(line for line in (repo / "README.md").read_text().splitlines() if ROW in line)
    expected = " / ".join(f"{metrics[key]:.2f}" for key in ("mAP", "mAP_many", "mAP_medium", "mAP_few"))
    return None if expected in row else f"README says {row[:200]}; committed {METRICS}: {expected}"


def test_the_readme_s_default_model_row_is_the_committed_metrics():
    assert readme_row_mismatch(REPO) is None, readme_row_mismatch(REPO)


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    (copy / "reports").mkdir(parents=True)
    shutil.copy(REPO / "README.md", copy / "README.md")
    (copy / METRICS).write_text(json.dumps(committed_metrics(REPO)))
    return copy


def _rerun_elsewhere(repo: Path) -> None:
    """What `make repro` on another CPU does: the same metrics file, another score (1.07 mAP lower here)."""
    metrics = json.loads((repo / METRICS).read_text())
    metrics["mAP"] -= 1.07
    (repo / METRICS).write_text(json.dumps(metrics))


def test_a_rerun_that_scores_differently_keeps_the_readme_check_passing(tmp_path):
    repo = _copy(tmp_path)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "README.md", METRICS], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "committed run"], cwd=repo, check=True)
    _rerun_elsewhere(repo)
    assert json.loads((repo / METRICS).read_text())["mAP"] != committed_metrics(REPO)["mAP"]
    assert readme_row_mismatch(repo) is None


def test_outside_a_git_checkout_the_working_tree_s_metrics_are_checked(tmp_path):
    repo = _copy(tmp_path)
    assert readme_row_mismatch(repo) is None
    _rerun_elsewhere(repo)
    assert readme_row_mismatch(repo) is not None
