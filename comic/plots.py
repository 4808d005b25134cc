"""The plots people look at, rendered offline to PNG (Vega-Lite specs through vl-convert, no browser and no
CDN): `dvc plots show` and `dvc plots diff` embed the images, so they show on a machine without network.

Each function takes plain rows (the CSV data beside it) and writes one image atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from comic.files import atomic_file

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"  # a name only: vl-convert bundles the schema
GROUP_ORDER = ["many", "medium", "few"]


def render(spec: dict, path: str | Path) -> Path:
    """Write the Vega-Lite `spec` as a PNG at `path`."""
    import vl_convert

    png = vl_convert.vegalite_to_png({"$schema": SCHEMA, "width": 420, "height": 260, **spec}, scale=1.5)
    with atomic_file(path) as tmp:
        tmp.write_bytes(png)
    return Path(path)


def _long(rows: Sequence[dict], x: str, columns: dict[str, str]) -> list[dict]:
    """Wide rows -> long rows {x, series, value} for the columns present (label = legend name)."""
    out = []
    for row in rows:
        for column, label in columns.items():
            value = row.get(column)
            if value not in (None, "") and value == value:  # NaN != NaN
                out.append({x: row[x], "series": label, "value": float(value)})
    return out


def _lines(values: list[dict], x: str, title: str, y_title: str, order: list[str] | None = None) -> dict:
    color = {"field": "series", "type": "nominal", "title": None, **({"sort": order} if order else {})}
    return {
        "title": title,
        "data": {"values": values},
        "mark": {"type": "line", "point": len({v[x] for v in values}) < 40},
        "encoding": {
            "x": {"field": x, "type": "quantitative"},
            "y": {"field": "value", "type": "quantitative", "title": y_title},
            "color": color,
        },
    }


def precision_recall(rows: Sequence[dict], path) -> Path:
    """One precision-recall line per shot group (rows: group, threshold, precision, recall)."""
    values = [{**r, "series": r["group"]} for r in rows]
    spec = {
        "title": "Test precision-recall by shot group (micro)",
        "data": {"values": values},
        "mark": {"type": "line"},
        "encoding": {
            "x": {"field": "recall", "type": "quantitative", "scale": {"domain": [0, 1]}},
            "y": {"field": "precision", "type": "quantitative", "scale": {"domain": [0, 1]}},
            "color": {"field": "series", "type": "nominal", "title": "shot group", "sort": GROUP_ORDER},
            "order": {"field": "threshold", "type": "quantitative"},
        },
    }
    return render(spec, path)


def ap_vs_train_count(rows: Sequence[dict], path) -> Path:
    """Test AP of each class against its observed training count (log scale), coloured by shot group."""
    spec = {
        "title": "Test AP by class against its training count",
        "data": {"values": list(rows)},
        "mark": {"type": "point", "filled": True, "size": 60},
        "encoding": {
            "x": {"field": "train_count", "type": "quantitative", "scale": {"type": "log"}, "title": "training count"},
            "y": {"field": "ap", "type": "quantitative", "title": "AP (%)", "scale": {"domain": [0, 100]}},
            "color": {"field": "group", "type": "nominal", "title": "shot group", "sort": GROUP_ORDER},
            "tooltip": [{"field": "class"}, {"field": "ap"}],
        },
    }
    return render(spec, path)


def validation_by_group(history: Sequence[dict], path) -> Path:
    columns = {"val/mAP": "all", "val/mAP_many": "many", "val/mAP_medium": "medium", "val/mAP_few": "few"}
    spec = _lines(_long(history, "epoch", columns), "epoch", "Validation mAP by epoch (observed labels)", "mAP (%)")
    return render(spec, path)


def validation_by_rule(history: Sequence[dict], path) -> Path:
    columns = {k: k.split("/")[2] for k in (history[0] if history else {}) if k.startswith("val/rule/")}
    title = "Validation mAP of each prediction rule"
    return render(_lines(_long(history, "epoch", columns), "epoch", title, "mAP (%)"), path)


def training_losses(history: Sequence[dict], path) -> Path:
    columns = {k: k.removeprefix("train/") for k in (history[0] if history else {}) if k.startswith("train/loss")}
    return render(_lines(_long(history, "epoch", columns), "epoch", "Training loss by epoch", "loss"), path)
