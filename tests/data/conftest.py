"""Shared fixtures of the data tests: tiny params, the tile bank, and in-process stage runs."""

import runpy
import sys
from pathlib import Path

import pytest
import yaml

from comic.config import load_params, set_dotted
from comic.data.tiles import TILE_BANK_PATH, load_tile_bank

REPO = Path(__file__).resolve().parents[2]

# A few hundred images of 36 px: every stage runs in about a second.
TINY_DATA = {
    "image_size": 36,
    "pool_size": 800,
    "max_class_count": 80,
    "min_class_count": 2,
    "num_test": 120,
    "min_test_positives": 4,
    "num_val": 60,
    "min_val_positives": 4,
}


@pytest.fixture(scope="session")
def bank():
    return load_tile_bank()


def write_params(directory: Path, **data_overrides) -> Path:
    """The repository's params.yaml with the tiny data sizes and `data_overrides`, written to `directory`."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(TINY_DATA)
    if data_overrides.get("source", "embedded") != "embedded":
        data_overrides.setdefault("val_split", "carve")  # real datasets have no generator to draw from
    set_dotted(raw, {f"data.{key}": value for key, value in data_overrides.items()})
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_params(path)  # fail here, not in a stage, if an override is invalid
    return path


@pytest.fixture
def tiny_params(tmp_path):
    return write_params(tmp_path)


def run_stage(script: str, *args: str, monkeypatch) -> None:
    """Run `pipelines/<script>.py` in this process (no interpreter start-up, no torch re-import)."""
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(REPO / "pipelines" / f"{script}.py"), run_name="__main__")


def run_data_stages(params: Path, out: Path, monkeypatch) -> Path:
    """build_data -> split_data -> drop_labels into out/{images,raw,split,plt}; returns out/plt."""
    raw, split, plt, p = str(out / "raw"), str(out / "split"), str(out / "plt"), str(params)
    bank, images = str(TILE_BANK_PATH), str(out / "images")
    run_stage(
        "build_data", "--tile-bank", bank, "--images", images, "--out", raw, "--params", p, monkeypatch=monkeypatch
    )
    run_stage("split_data", "--in", raw, "--out", split, "--params", p, monkeypatch=monkeypatch)
    run_stage("drop_labels", "--in", split, "--out", plt, "--params", p, monkeypatch=monkeypatch)
    return out / "plt"


@pytest.fixture(scope="session")
def plt_dir(tmp_path_factory):
    """The tiny embedded dataset after all three stages (built once per session)."""
    out = tmp_path_factory.mktemp("plt")
    with pytest.MonkeyPatch.context() as monkeypatch:
        return run_data_stages(write_params(out), out, monkeypatch)
