"""DVC stage `tune`: Ray Tune search of the method parameters on the validation split.

    python pipelines/tune.py --data data/plt --features data/features --best reports/tune/best_params.yaml \
        --trials reports/tune/trials.csv --storage ray_results
"""

import ray
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from comic import stage
from comic.config import flatten, load_params
from comic.ray_train import run_name
from comic.registry import RegistryError, check_reachable, display_uri, http_limits
from comic.tracking import data_version, git_commit, run_status, start_run, tracking_uri
from comic.tune import init_for_search, run_search
from comic.tune_results import write_outputs


def main() -> None:
    args = stage.arguments(__doc__, "data", "features", "best", "trials", "storage")
    params = load_params(args.params)
    version = data_version()
    name = run_name(params, version, prefix="tune", extra=("tune",))
    uri = tracking_uri(params.tracking.uri)
    # Every MLflow call of the stage (and of the trials, which inherit the environment) times out after
    # register.http_timeout with 2 retries: a server that answers /health and nothing else fails in seconds.
    with http_limits(params.register.http_timeout):
        check_reachable(uri, params.register.http_timeout, "Nothing was searched.")
        tags = {"git_commit": git_commit(), "dvc_data_version": version, "ray_run_name": name}
        try:
            parent = start_run(uri, params.tracking.experiment, name, flatten(params.tune), tags)
        except MlflowException as err:
            raise RegistryError(
                f"the MLflow tracking server at {display_uri(uri)} answers /health, not its API ({err}). "
                "Nothing was searched."
            ) from None
        client = MlflowClient(uri)
        experiment_id = client.get_run(parent).info.experiment_id
        with run_status(uri, parent):
            init_for_search(params)
            try:
                result = run_search(
                    params,
                    args.data,
                    storage_path=args.storage,
                    name=name,
                    mlflow=(uri, parent, experiment_id),
                    features_dir=args.features,
                )
            finally:
                ray.shutdown()
            write_outputs(result, params, args.best, args.trials)
            failed = sum(t["status"] == "error" for t in result.trials)
            client.log_metric(parent, "best/val_mAP_smoothed", result.best_score)
            client.log_metric(parent, "trials_failed", failed)
    print(
        f"{len(result.trials)} trials ({failed} failed); best smoothed val mAP {result.best_score:.2f} "
        f"({result.best_trial}): {result.best_sample}",
        flush=True,
    )


if __name__ == "__main__":
    stage.run(main, RegistryError)
