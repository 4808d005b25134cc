"""DVC stage `register`: register the trained model in MLflow and move `champion` only to a better model.

    python pipelines/register.py --data data/plt --model models/model.pt --run models/run.json \
        --report reports/registry.json

The run record (written by the train stage) names the MLflow run and logged pyfunc of the model file.
Challenger and current champion are evaluated on the test split of --data; the gate is params `register`.
"""

from comic import stage
from comic.config import load_params
from comic.registry import RegistryError, register, write_report
from comic.tracking import RunRecord, data_version, git_commit, tracking_uri


def main() -> None:
    args = stage.arguments(__doc__, "data", "model", "run", "report")
    params = load_params(args.params)
    report = register(
        RunRecord.read(args.run),
        model_path=args.model,
        data_dir=args.data,
        uri=tracking_uri(params.tracking.uri),
        config=params.register,
        metrics=params.metrics,
        eval_data_version=data_version(),
        git_commit=git_commit(),
    )
    write_report(args.report, report)
    print(f"register: {report['model_uri']} is {report['alias']}: " + "; ".join(report["reasons"]), flush=True)


if __name__ == "__main__":
    stage.run(main, RegistryError)
