"""The tune stage's files: `best_params.yaml` (the best trial, its score, the search's settings),
`trials.csv`, and the overrides the train stage applies from them (the apply_tuned stage). Plain YAML and
CSV: reading them needs neither Ray nor torch."""

from __future__ import annotations

from pathlib import Path

import yaml

from comic.files import write_csv, write_text

SCORE = "best/val_mAP_smoothed"  # a trial's score: its best smoothed validation mAP


def write_outputs(result, params, best_params_path, trials_path) -> None:
    """`best_params.yaml` (the best trial's values, with its trial, score and the search's settings) and
    `trials.csv`, each written atomically; `result` is a `comic.tune.SearchResult`."""
    record = {
        "params": {k: _plain(v) for k, v in result.best_sample.items()},
        "trial": result.best_trial,
        SCORE: round(result.best_score, 4),
        "search": {
            "searcher": params.tune.searcher,
            "seed": params.tune.seed,
            "trials": len(result.trials),
            "epochs_per_trial": params.trial_epochs,
        },
    }
    write_text(best_params_path, yaml.safe_dump(record, sort_keys=False))
    write_csv(trials_path, result.trials)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def applied_values(use_tuned: bool, best_params_path: str | Path) -> dict:
    """The overrides the train stage applies: the search's best values when `train.use_tuned`, else none."""
    if not use_tuned:
        return {}
    path = Path(best_params_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: train.use_tuned is true but there is no search result; run `dvc repro tune`")
    record = yaml.safe_load(path.read_text()) or {}
    if not isinstance(record.get("params"), dict):
        raise ValueError(f"{path}: no `params` mapping; rerun the tune stage (`dvc repro tune`)")
    return record["params"]
