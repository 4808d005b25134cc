"""Every search space the benchmarks document (benchmarks/space_*.yaml) is one the search accepts for the
model and loss its documented command sets, so a typo'd key fails here and not an hour into a search."""

from pathlib import Path

import pytest
import yaml

from comic.config import Params, check_search_space, override

SPACES = Path(__file__).resolve().parents[1] / "benchmarks"
PRETRAINED = {"model.backbone": "efficientnet_lite0", "model.pretrained": True, "model.freeze_backbone": True,
              "balance.shared_backbone": True, "model.input_size": 128, "correction.start_epoch": 2}  # fmt: skip
SINGLE_HEAD = {"model.name": "single", "correction.weight": 0.0}
# the --set of each space's command in docs/studies/tuning-*.md and pretrained-five-seeds.md
COMMANDS = {
    "space_options.yaml": PRETRAINED,
    "space_centred.yaml": {},
    "space_hill.yaml": {**PRETRAINED, **SINGLE_HEAD, "loss.name": "hill"},
    "space_asl.yaml": {**PRETRAINED, **SINGLE_HEAD, "loss.name": "asl"},
    "space_bce.yaml": {**PRETRAINED, **SINGLE_HEAD, "loss.name": "bce"},
}


def params_with_space(name: str, sets: dict) -> Params:
    space = yaml.safe_load((SPACES / name).read_text())
    return override(override(Params(), sets), {"tune.space": space})


def test_every_space_file_has_its_command_here():
    assert sorted(p.name for p in SPACES.glob("space_*.yaml")) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_documented_space_is_valid_for_its_model_and_loss(name):
    check_search_space(params_with_space(name, COMMANDS[name]))


def test_a_baseline_space_under_another_loss_names_the_key_that_would_change_nothing():
    with pytest.raises(ValueError, match="loss.hill"):
        check_search_space(params_with_space("space_hill.yaml", {**SINGLE_HEAD, "loss.name": "asl"}))
