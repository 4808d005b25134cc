"""The plots' Vega-Lite specs: one line per shot group in the PR plot, drawn in threshold order (not one
zigzag through every row), and one validation line per group; and a real offline render to PNG."""

import pytest

from comic import plots


@pytest.fixture
def specs(monkeypatch) -> list[dict]:
    drawn: list[dict] = []
    monkeypatch.setattr(plots, "render", lambda spec, path: drawn.append(spec) or path)
    return drawn


def test_the_precision_recall_plot_draws_one_line_per_group_in_threshold_order(specs):
    rows = [
        {"group": g, "threshold": t, "precision": p, "recall": 1 - t}
        for g in ("few", "many", "medium")
        for t, p in ((0.9, 0.8), (0.1, 0.3), (0.5, 0.6))
    ]
    plots.precision_recall(rows, "pr.png")
    (spec,) = specs
    encoding = spec["encoding"]
    assert encoding["color"]["field"] == "series" and encoding["color"]["sort"] == ["many", "medium", "few"]
    assert encoding["order"] == {"field": "threshold", "type": "quantitative"}
    assert {v["series"] for v in spec["data"]["values"]} == {"many", "medium", "few"}


def test_the_validation_plot_has_the_whole_split_and_each_group_by_epoch(specs):
    history = [
        {"epoch": e, "val/mAP": 10.0 + e, "val/mAP_many": 20.0, "val/mAP_medium": 9.0, "val/mAP_few": float("nan")}
        for e in range(3)
    ]
    plots.validation_by_group(history, "val.png")
    (spec,) = specs
    values = spec["data"]["values"]
    assert spec["encoding"]["x"]["field"] == "epoch"
    assert {v["series"] for v in values} == {"all", "many", "medium"}  # a NaN is left out, not drawn as 0
    assert [v["value"] for v in values if v["series"] == "all"] == [10.0, 11.0, 12.0]


def test_a_plot_renders_offline_to_a_png(tmp_path):
    path = plots.precision_recall(
        [{"group": "many", "threshold": 0.5, "precision": 0.5, "recall": 0.5}], tmp_path / "p.png"
    )
    assert path.read_bytes().startswith(b"\x89PNG")
