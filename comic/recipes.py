"""Recipes: params fragments in `recipes/<name>.yaml`, each a difference from params.yaml in its shape.

    dvc exp run $(python -m comic.recipes pretrained)          # one experiment under a recipe
    dvc exp run $(python -m comic.recipes pretrained comic_paper)  # recipes compose: a later one wins

The command line prints one `-S key=value` per setting, so DVC records every key the recipe changes in
the experiment (`dvc exp show --only-changed`) and params.yaml stays the single source of configuration.
benchmarks/accuracy.py builds its rows from the same files (`load`, `apply`); docs/recipes.md lists them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from comic.config import Params, override

FOLDER = Path(__file__).resolve().parents[1] / "recipes"


def names(folder: Path = FOLDER) -> list[str]:
    """Every recipe in `folder`, by file stem, sorted."""
    return sorted(path.stem for path in folder.glob("*.yaml"))


def dotted(raw: Mapping, cls: type = Params, prefix: str = "") -> dict[str, Any]:
    """`{"loss": {"mfm": {"negative": "hill"}}}` as `{"loss.mfm.negative": "hill"}`; dotted keys pass as they
    are. Only params sections are walked into: a mapping-valued key (`tune.space`) stays one value."""
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        section = hints.get(key)
        if isinstance(value, Mapping) and section is not None and dataclasses.is_dataclass(section):
            flat.update(dotted(value, section, f"{name}."))
        else:
            flat[name] = value
    return flat


def load(name: str, folder: Path = FOLDER) -> dict[str, Any]:
    """The dotted overrides of recipe `name` (not yet validated: `apply` does that)."""
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown recipe {name!r}; the recipes in {folder}: {', '.join(names(folder))}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a mapping of params keys, got {type(raw).__name__}")
    return dotted(raw)


def apply(params: Params, *recipes: str, folder: Path = FOLDER) -> Params:
    """`params` with the recipes applied in order (a later one wins), validated; errors name the file."""
    for name in recipes:
        updates = load(name, folder)
        try:
            params = override(params, updates)
        except ValueError as err:
            raise ValueError(f"{folder / name}.yaml: {err}") from err
    return params


def dvc_flags(updates: Mapping[str, Any]) -> list[str]:
    """`-S key=value` words for `dvc exp run` (values written as YAML reads them back: true, null, 0.5)."""
    words = []
    for key, value in updates.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if isinstance(value, Mapping | list) or any(c.isspace() for c in text) or yaml.safe_load(text) != value:
            raise ValueError(f"{key}: {value!r} cannot be passed as one `-S` word; set it in params.yaml")
        words += ["-S", f"{key}={text}"]
    return words


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="+", metavar="RECIPE", help=f"one of: {', '.join(names())}")
    parser.add_argument("--params", default="params.yaml", help="the params the recipes are validated against")
    args = parser.parse_args(argv)
    from comic.config import check_search_space, load_params

    try:
        params = apply(load_params(args.params), *args.recipes)  # a bad recipe fails here, not inside dvc
        updates = {key: value for name in args.recipes for key, value in load(name).items()}
        flags = dvc_flags(updates)
    except ValueError as err:
        raise SystemExit(f"comic.recipes: {err}") from None
    try:
        check_search_space(params)  # what the check_params stage would refuse
    except ValueError as err:
        raise SystemExit(
            f"comic.recipes: the pipeline's check_params stage would refuse {' '.join(args.recipes)}: {err}. "
            "params.yaml's tune.space searches COMIC's keys; run this recipe with benchmarks/accuracy.py "
            f"--configs, or give params.yaml a tune.space for it (benchmarks/space_*.yaml)"
        ) from None
    print(" ".join(flags))


if __name__ == "__main__":
    main()
