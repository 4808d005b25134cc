"""DVC stage `evaluate`: the model's test metrics (reports/metrics.json) and plot data.

    python pipelines/evaluate.py --data data/plt --model models/model.pt --metrics reports/metrics.json \
        --plots reports/plots
"""

from __future__ import annotations

import argparse

from comic.config import load_params
from comic.data import load_classes
from comic.evaluation import score_model_file, write_reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plots", required=True)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args()

    metrics = load_params(args.params).metrics
    report, test = score_model_file(
        args.model,
        args.data,
        many=metrics.many_threshold,
        few=metrics.few_threshold,
        decision=metrics.decision_threshold,
    )
    classes = load_classes(args.data)
    write_reports(
        report,
        test["labels_full"],
        test["scores"],
        classes,
        metrics_path=args.metrics,
        plots_dir=args.plots,
        many=metrics.many_threshold,
        few=metrics.few_threshold,
    )
    print({k: report[k] for k in ("mAP", "mAP_many", "mAP_medium", "mAP_few")}, flush=True)


if __name__ == "__main__":
    main()
