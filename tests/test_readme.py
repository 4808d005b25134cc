"""The README's pipeline numbers are the committed run's: its default-model row says what
reports/metrics.json (the evaluate stage of the `make repro` that produced dvc.lock) holds."""

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_s_default_model_row_is_the_committed_metrics():
    metrics = json.loads((REPO / "reports" / "metrics.json").read_text())
    row = next(line for line in (REPO / "README.md").read_text().splitlines() if "the default COMIC model" in line)
    expected = " / ".join(f"{metrics[key]:.2f}" for key in ("mAP", "mAP_many", "mAP_medium", "mAP_few"))
    assert expected in row, f"README says {row[:200]}; reports/metrics.json: {expected}"
