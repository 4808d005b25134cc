"""DVC stage `evaluate`: the model's test metrics (reports/metrics.json), plot data and plot images.

    python pipelines/evaluate.py --data data/plt --model models/model.pt --history reports/train_history.csv \
        --metrics reports/metrics.json --plots reports/plots
"""

from comic import stage
from comic.config import load_params
from comic.data.store import load_classes
from comic.evaluation import score_model_file, write_reports
from comic.history import read_history


def main() -> None:
    args = stage.arguments(__doc__, "data", "model", "history", "metrics", "plots")
    metrics = load_params(args.params).metrics
    report, test = score_model_file(args.model, args.data, metrics)
    classes, history = load_classes(args.data), read_history(args.history)
    write_reports(report, test, classes, metrics, metrics_path=args.metrics, plots_dir=args.plots, history=history)
    groups = ", ".join(f"{g} {_percent(report['mAP_' + g])}" for g in ("many", "medium", "few"))
    print(f"evaluate: test mAP {_percent(report['mAP'])} ({groups})", flush=True)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"  # None: a shot group without test positives


if __name__ == "__main__":
    stage.run(main)
