"""DVC stage `register`: register the trained model in MLflow and move `champion` only to a better model.

    python pipelines/register.py --data data/plt --model models/model.pt --run models/run.json \
        --report reports/registry.json

The run record (written by the train stage) names the MLflow run and logged pyfunc of the model file.
Challenger and current champion are evaluated on the test split of --data; the gate is params `register`.
"""

from __future__ import annotations

import argparse

from comic.config import load_params
from comic.registry import RegistryError, register, write_report
from comic.tracking import RunRecord, data_version, git_commit, tracking_uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="dataset folder whose test split both models are scored on")
    parser.add_argument("--model", required=True, help="the trained model file (models/model.pt)")
    parser.add_argument("--run", required=True, help="the train stage's run record (models/run.json)")
    parser.add_argument("--report", required=True, help="output: the decision and its reasons (JSON)")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args()

    params = load_params(args.params)
    uri = tracking_uri(params.tracking.uri)
    try:
        report = register(
            RunRecord.read(args.run),
            model_path=args.model,
            data_dir=args.data,
            uri=uri,
            config=params.register,
            metrics=params.metrics,
            eval_data_version=data_version(),
            git_commit=git_commit(),
        )
    except (RegistryError, FileNotFoundError, ValueError) as err:  # each names the cause and what to do
        raise SystemExit(f"register: {err}") from None
    write_report(args.report, report)
    print(f"{report['model_uri']} is {report['alias']}: " + "; ".join(report["reasons"]), flush=True)


if __name__ == "__main__":
    main()
