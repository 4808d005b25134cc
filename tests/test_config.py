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
    # ... and shows every key, so that a user reads all options in one place.
    written = flatten(yaml.safe_load(open("params.yaml").read()))
    missing = [key for key in flatten(to_dict(Params())) if key not in written and not key.startswith("tune.space")]
    assert not missing, f"params.yaml lacks {missing}"


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


@pytest.mark.parametrize(
    "text,message",
    [
        ("train: {lr: .inf}", r"train\.lr: inf is not a finite number"),
        ("correction: {weight: .inf}", r"correction\.weight: inf is not a finite number"),
        ("data: {image_size: 100000}", r"data\.image_size: 100000 is out of range, must be in \[8, 1024\]"),
        ("data: {missing_rate: 1.0}", r"data\.missing_rate: 1\.0 is out of range, must be in \[0, 1\)"),
        ("data: {missing_rat: 0.5}", r"unknown key\(s\) data\.missing_rat"),
        ("tracking: {experimnt: x}", r"unknown key\(s\) tracking\.experimnt"),
        ("train: {batch_size: 33}", r"train\.batch_size \(33\) must be divisible by train\.num_workers \(2\)"),
        ("train: {lr: 1e-3x}", r"train\.lr: expected a number, got the text '1e-3x'"),
    ],
)
def test_a_bad_value_anywhere_fails_at_load_naming_the_key_and_what_is_allowed(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_params(path)


def test_a_yaml_exponent_without_a_dot_is_read_as_the_number_it_means(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: {lr: 1e-3}")  # YAML 1.1 reads this as the text "1e-3"
    assert load_params(path).train.lr == 0.001


@pytest.mark.parametrize(
    "space,extra,message",
    [
        ({"correction.tua": {"type": "uniform", "low": 0.6, "high": 0.8}}, {}, r"unknown key correction\.tua"),
        ({"correction.tau": {"type": "uniform", "low": 0.6, "high": 1.5}}, {}, r"would draw 1\.5"),
        ({"balance.alpha": {"type": "uniform", "low": 1, "high": 2}}, {"model": {"name": "single"}}, "no effect"),
        ({"loss.hill.lamb": {"type": "uniform", "low": 1, "high": 2}}, {}, "no effect"),
        ({"tune.epochs": {"type": "choice", "values": [1, 2]}}, {}, "only method and training keys"),
        ({"correction.tau": {"type": "uniform", "low": 0.85, "high": 0.95}}, {}, r"current value 0\.8 lies outside"),
    ],
)
def test_a_search_space_that_cannot_work_fails_before_ray_starts(tmp_path, space, extra, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"tune": {"space": space}, **extra}))
    with pytest.raises(ValueError, match=rf"tune\.space\..*{message}"):
        load_params(path)


def test_a_space_without_the_current_value_loads_when_the_search_does_not_start_from_it(tmp_path):
    path = tmp_path / "params.yaml"
    space = {"correction.tau": {"type": "uniform", "low": 0.85, "high": 0.95}}
    path.write_text(yaml.safe_dump({"tune": {"space": space, "start_from_current": False}}))
    assert load_params(path).tune.space["correction.tau"].low == 0.85


def _numeric_fields(cls, prefix=""):
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            yield from _numeric_fields(f.default_factory, f"{prefix}{f.name}.")
        elif type(f.default) in (int, float):
            yield f"{prefix}{f.name}", f


def test_every_numeric_key_has_a_range():
    """A new number without a check would accept 100000 for 64 (the finiteness check covers .inf)."""
    unchecked = [name for name, f in _numeric_fields(Params) if f.metadata.get("check") is None]
    assert unchecked == []
