"""Compact the result files under docs/results so they fit a repository; rerunning it changes nothing.

    .venv/bin/python tools/compact_results.py [docs/results/*.json]

A benchmark run (`comic.experiments`, called by benchmarks/accuracy.py, tuning.py and options_loo.py) logs
about 25 numbers per epoch in `epochs_log`; that log was 80 % of docs/results (7.4 MB before). What reads
it afterwards:

- `comic.experiments`' diagnostics table: the last epoch's gradient shares on the logits, the net gradient on
  recalled entries and the validation mAP per prediction rule; over all epochs, the corrector's audit
  (`correction/recalled`, `correct`, `wrong`, `precision` of the epochs that recalled labels);
- `tuning.py correlation`: the smoothed validation mAP of every epoch (the trial score at each length);
- `comic.experiments.reselect` (benchmarks/rule_choice.py): the validation mAP of every prediction rule at
  every epoch (`val/rule/<rule>/mAP`), which replays epoch selection under another rule set.

So an epoch's row keeps its audit where it recalled labels, its validation mAP by rule, and in `tuning.py
correlation` files its `val/mAP_smoothed`; the last epoch's row keeps everything but UNREAD; a row's epoch
is its index. Every number kept is kept exactly (rounding moved some of the tables' 2-decimal cells), and
the runs' headline numbers, `val_curve` (validation mAP per epoch), summaries, searches and commands are
untouched. Lists of records are written one record a line, so a rerun's diff shows which runs changed.
"""

import argparse
import json
from pathlib import Path

AUDIT = ("correction/recalled", "correction/correct", "correction/wrong", "correction/precision")
SCORE = "val/mAP_smoothed"
RULE_SCORES = "val/rule/"  # validation mAP by prediction rule
TIGHT = (",", ":")  # within a line
UNREAD = ("diagnostics/grad_share/features/", "val/recall@", "val/precision@")  # no table reads these


def compact_epochs(log: list[dict], keep_scores: bool) -> list[dict]:
    """The audit of every epoch that recalled labels, its validation mAP by rule, its score if
    `keep_scores`; the last epoch's row all but UNREAD."""
    rows = []
    for index, row in enumerate(log):
        if index == len(log) - 1:
            rows.append({k: v for k, v in row.items() if not k.startswith(UNREAD)})
            continue
        kept = {SCORE: row[SCORE]} if keep_scores and SCORE in row else {}
        kept.update({k: v for k, v in row.items() if k.startswith(RULE_SCORES)})
        if row.get("correction/recalled"):
            kept.update({k: row[k] for k in AUDIT if k in row})
        rows.append(kept)
    return rows


def compact(result):
    """The same result with each run's `epochs_log` compacted."""
    if not (isinstance(result, dict) and isinstance(result.get("runs"), list)):
        return result
    keep_scores = "tuning.py correlation" in result.get("command", "")
    runs = [
        {**run, "epochs_log": compact_epochs(run["epochs_log"], keep_scores)} if "epochs_log" in run else run
        for run in result["runs"]
    ]
    return {**result, "runs": runs}


def dumps(value, indent: int = 0) -> str:
    """JSON spread over lines down to records: a list of objects is one object a line; any other list, and
    an object of scalars, is one line."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict) and any(isinstance(v, (dict, list)) for v in value.values()):
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 2)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "[\n" + ",\n".join(inner + json.dumps(v, separators=TIGHT) for v in value) + "\n" + pad + "]"
    return json.dumps(value, separators=TIGHT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="default: docs/results/*.json")
    args = parser.parse_args()
    for path in args.files or sorted(Path("docs/results").glob("*.json")):
        before = path.read_text()
        result = compact(json.loads(before))
        after = dumps(result) + "\n"
        if json.dumps(json.loads(after)) != json.dumps(result):  # compared as text: NaN != NaN
            raise RuntimeError(f"{path}: the compact form does not read back as the same JSON")
        if after != before:
            path.write_text(after)
            print(f"{path}: {len(before.encode())} -> {len(after.encode())} bytes")


if __name__ == "__main__":
    main()
