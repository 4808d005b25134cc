"""Every recipe in recipes/ applies to params.yaml and validates, every config benchmarks/accuracy.py runs is
a recipe, and the command that selects one for `dvc exp run` gives back exactly the recipe's values."""

import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from comic import recipes
from comic.config import Params, check_search_space, flatten, load_params, override

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")
ACCURACY = runpy.run_path(str(REPO / "benchmarks" / "accuracy.py"))  # its __main__ guard keeps main() from running
# the recipes `dvc exp run` can take today: params.yaml's tune.space searches COMIC's keys, and the check_params
# stage refuses a search over keys a single-head model or another loss ignores (docs/recipes.md)
PIPELINE = ("comic", "comic_full", "comic_paper", "comic_shared_trunk", "comic_no_mask", "comic_ht_factor",
            "comic_no_ht_factor", "pretrained", "photos")  # fmt: skip


def test_the_recipes_folder_holds_the_benchmark_rows_and_the_user_recipes():
    assert set(recipes.names()) == {*ACCURACY["TABLE"], "pretrained", "photos"}


@pytest.mark.parametrize("name", recipes.names())
def test_a_recipe_applies_to_params_yaml_and_validates(name):
    params = recipes.apply(PARAMS, name)
    changed = {key for key, value in flatten(params).items() if flatten(PARAMS)[key] != value}
    assert changed <= set(recipes.load(name))  # nothing but the recipe's own keys moved


@pytest.mark.parametrize("name", PIPELINE)
def test_a_pipeline_recipe_passes_the_check_params_stage(name):
    check_search_space(recipes.apply(PARAMS, name))


def test_every_benchmark_default_row_is_a_recipe_file():
    assert all((recipes.FOLDER / f"{name}.yaml").is_file() for name in ACCURACY["TABLE"])


def test_nested_and_dotted_keys_read_the_same_and_a_mapping_valued_key_stays_whole():
    nested = {"loss": {"mfm": {"negative": "hill"}}, "correction.tau": 0.9, "tune": {"space": {"a.b": {"x": 1}}}}
    assert recipes.dotted(nested) == {
        "loss.mfm.negative": "hill",
        "correction.tau": 0.9,
        "tune.space": {"a.b": {"x": 1}},
    }


def test_a_misspelt_key_in_a_recipe_is_an_error_naming_the_file_and_the_key(tmp_path):
    (tmp_path / "typo.yaml").write_text("loss:\n  mfm:\n    negativ: hill\n")
    with pytest.raises(ValueError, match=r"typo\.yaml.*loss\.mfm\.negativ"):
        recipes.apply(Params(), "typo", folder=tmp_path)
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        recipes.load("nope", folder=tmp_path)


def test_later_recipes_win_when_composed():
    params = recipes.apply(PARAMS, "pretrained", "comic_paper")
    assert params.model.backbone == "efficientnet_lite0" and params.balance.branch_logits == "learning_effect"


def test_photos_is_the_pretrained_recipe_at_224_px_with_validation_carved_and_the_photo_case_s_choices():
    photos, pretrained = recipes.load("photos"), recipes.load("pretrained")
    assert photos == {**pretrained, "model.input_size": 224, "data.image_size": 224, "data.val_split": "carve",
                      "train.lr": 0.0003, "loss.mfm.reject_fraction": 0.03}  # fmt: skip


@pytest.mark.parametrize("source", ["coco", "voc", "comic_json"])
def test_photos_validates_for_every_real_data_source(source):
    check_search_space(override(recipes.apply(PARAMS, "photos"), {"data.source": source}))


def test_the_full_label_rows_are_their_partial_rows_with_every_label_observed():
    for name in (n for n in recipes.names() if n.endswith("_full")):
        assert recipes.load(name) == {**recipes.load(name.removesuffix("_full")), "data.missing_rate": 0.0}


def test_the_dvc_flags_read_back_as_the_recipe_values():
    for name in recipes.names():
        words = recipes.dvc_flags(recipes.load(name))
        assert words[::2] == ["-S"] * (len(words) // 2)
        back = {key: yaml.safe_load(value) for key, value in (word.split("=", 1) for word in words[1::2])}
        assert back == recipes.load(name)


def test_a_value_that_is_not_one_word_is_refused():
    with pytest.raises(ValueError, match="tune.space"):
        recipes.dvc_flags({"tune.space": {}})
    with pytest.raises(ValueError, match="a b"):
        recipes.dvc_flags({"tracking.experiment": "a b"})


def test_the_command_line_prints_the_flags_and_stops_on_a_recipe_the_pipeline_refuses():
    run = [sys.executable, "-m", "comic.recipes", "--params", str(REPO / "params.yaml")]
    done = subprocess.run([*run, "pretrained"], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.split() == recipes.dvc_flags(recipes.load("pretrained"))
    refused = subprocess.run([*run, "bce"], capture_output=True, text=True, cwd=REPO)
    assert refused.returncode != 0 and "tune.space" in refused.stderr and "benchmarks/accuracy.py" in refused.stderr
