"""params.yaml loading: defaults, strictness, and error messages that name the key path."""

import dataclasses
import typing

import pytest
import yaml

from comic.config import Params, flatten, from_dict, load_params, override, to_dict


def write(tmp_path, data):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_repository_params_file_loads_and_equals_the_documented_defaults():
    assert load_params("params.yaml") == Params()


def test_every_field_is_documented():
    def walk(cls):
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            assert field.metadata.get("help"), f"{cls.__name__}.{field.name} has no help text"
            if dataclasses.is_dataclass(hints[field.name]):
                walk(hints[field.name])

    walk(Params)


@pytest.mark.parametrize(
    "data,key",
    [
        ({"loss": {"mfm": {"gamma_neg": 3}}}, "loss.mfm.gamma_neg"),
        ({"correction": {"tau": 1.5}}, "correction.tau"),
        ({"train": {"epochs": "ten"}}, "train.epochs"),
        ({"train": {"epochs": 2.5}}, "train.epochs"),
        ({"model": {"name": "vit"}}, "model.name"),
        ({"balance": {"shared_backbone": "yes"}}, "balance.shared_backbone"),
        ({"loss": {"mfm": 3}}, "loss.mfm"),
    ],
)
def test_a_bad_params_file_fails_with_the_full_key_path(tmp_path, data, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")) as info:
        load_params(write(tmp_path, data))
    assert "params.yaml" in str(info.value)


def test_cross_field_rules_are_checked():
    with pytest.raises(ValueError, match="few_threshold"):
        from_dict(Params, {"metrics": {"few_threshold": 100, "many_threshold": 50}})
    with pytest.raises(ValueError, match="gamma_neg_pn"):
        from_dict(Params, {"loss": {"mfm": {"gamma_pos_pn": 4.0, "gamma_neg_pn": 3.0}}})


def test_a_missing_params_file_says_where_to_run_from(tmp_path):
    with pytest.raises(FileNotFoundError, match="repository root"):
        load_params(tmp_path / "params.yaml")


def test_override_replaces_dotted_keys_and_validates_them():
    params = override(Params(), {"correction.tau": 0.8, "loss.name": "asl"})
    assert params.correction.tau == 0.8 and params.loss.name == "asl"
    with pytest.raises(ValueError, match="correction.tua"):
        override(Params(), {"correction.tua": 0.8})
    with pytest.raises(ValueError, match="correction.tau"):
        override(Params(), {"correction.tau": 2.0})


def test_round_trip_through_a_dict_and_flat_keys():
    params = Params()
    assert from_dict(Params, to_dict(params)) == params
    assert flatten(params)["loss.mfm.clip"] == 0.05
