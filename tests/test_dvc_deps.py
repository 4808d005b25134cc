"""dvc.yaml's contract: each stage's code deps are exactly the project modules its command runs
(`tools/stage_deps.py` computes them). A dep that is not run reruns the stage for nothing; a module that
is run but not listed lets a change slip past `dvc repro`."""

import pytest
import yaml

from tools.stage_deps import REPO, closure, declared_code, stage_script

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def relative(paths) -> set[str]:
    return {p.relative_to(REPO).as_posix() for p in paths}


@pytest.mark.parametrize("name", list(STAGES))
def test_a_stage_depends_on_exactly_the_project_modules_it_runs(name):
    run, declared = relative(closure(stage_script(STAGES[name]))), relative(declared_code(STAGES[name]))
    assert sorted(run - declared) == [], f"stage {name} runs modules it does not list in deps"
    assert sorted(declared - run) == [], f"stage {name} lists modules it does not run"


def test_the_check_notices_a_removed_dep():
    stage = {**STAGES["train"], "deps": [d for d in STAGES["train"]["deps"] if d != "comic/engine.py"]}
    assert relative(closure(stage_script(stage))) - relative(declared_code(stage)) == {"comic/engine.py"}


def _outputs(stage: dict):
    for kind in ("outs", "metrics", "plots"):
        for out in stage.get(kind, []):
            yield (out, {}) if isinstance(out, str) else next(iter(out.items()))


@pytest.mark.parametrize("name", list(STAGES))
def test_an_output_dvc_cannot_restore_is_kept_when_its_stage_fails(name):
    """DVC deletes a stage's outputs before running it, and `dvc checkout` restores only cached ones: an
    uncached output (git-tracked) must be `persist`, or a failed or interrupted run loses it."""
    lost = [path for path, opts in _outputs(STAGES[name]) if opts.get("cache") is False and not opts.get("persist")]
    assert lost == [], f"stage {name}: {lost} would be deleted by a failed run"


def test_the_declared_plots_are_the_evaluate_stage_s_images_each_once():
    """Images rendered offline (no Vega from a CDN), one id each (two definitions of one file hide one)."""
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    assert all(isinstance(p, str) and p.endswith(".png") for p in plots), plots
    assert len(set(plots)) == len(plots)
    folders = [path for path, _ in _outputs(STAGES["evaluate"])]
    assert all(any(p.startswith(f"{folder}/") for folder in folders) for p in plots)


def test_the_plots_page_dvc_writes_is_ignored_by_git():
    import subprocess

    assert subprocess.run(["git", "check-ignore", "-q", "dvc_plots/index.html"], cwd=REPO).returncode == 0
