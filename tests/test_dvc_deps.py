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
