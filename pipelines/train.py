"""DVC stage `train`: Ray Train DDP training, tracked in MLflow; writes the best model, the history and
the run record (which MLflow run and logged pyfunc the model file is; the register stage reads it).

    python pipelines/train.py --data data/plt --features data/features --model models/model.pt \
        --run models/run.json --history reports/train_history.csv --storage ray_results \
        --tuned reports/tune/applied.yaml
"""

from pathlib import Path

import ray
from mlflow.exceptions import MlflowException

from comic import stage
from comic.config import apply_file, flatten, load_params
from comic.data.dataset import MultiLabelDataset
from comic.files import file_sha256
from comic.models.backbones import weights_sha256
from comic.ray_train import fit, init_ray, run_name
from comic.registry import RegistryError, check_reachable, display_uri, http_limits
from comic.serving import log_pyfunc
from comic.tracking import RunRecord, data_version, git_commit, run_status, start_run, tracking_uri
from comic.training import finish_training

UNTOUCHED = "Nothing was trained; `dvc checkout train` brings the last model back."


def main() -> None:
    args = stage.arguments(__doc__, "data", "features", "model", "run", "history", "storage", "tuned")
    params = apply_file(load_params(args.params), args.tuned)
    version = data_version()
    name = run_name(params, version)
    uri = tracking_uri(params.tracking.uri)
    # Every MLflow call of the stage (and of the Ray workers, which inherit the environment) times out after
    # register.http_timeout with 2 retries: a server that answers /health and nothing else fails in seconds.
    with http_limits(params.register.http_timeout):
        check_reachable(uri, params.register.http_timeout, UNTOUCHED)
        model = params.model
        sha = weights_sha256(model.backbone, pretrained=model.pretrained, pretrained_path=model.pretrained_path)
        tags = {"git_commit": git_commit(), "dvc_data_version": version, "ray_run_name": name}
        tags["model.weights_sha256"] = sha or "none (random or downloaded)"
        try:
            run_id = start_run(uri, params.tracking.experiment, name, flatten(params), tags)
        except MlflowException as err:
            raise RegistryError(
                f"the MLflow tracking server at {display_uri(uri)} answers /health, not its API ({err}). {UNTOUCHED}"
            ) from None
        print(f"train: run {name} (MLflow run {run_id} at {uri})", flush=True)

        with run_status(uri, run_id):
            init_ray(num_cpus=max(2, params.train.num_workers))
            try:
                result = fit(
                    params,
                    args.data,
                    storage_path=args.storage,
                    name=name,
                    mlflow=(uri, run_id),
                    features_dir=args.features,
                )
            finally:
                ray.shutdown()
            if result.error is not None:
                raise SystemExit(f"training failed: {result.error}")
            with result.checkpoint.as_directory() as checkpoint_dir:
                summary = finish_training(params, args.data, Path(checkpoint_dir), args.model, args.history)
            val = MultiLabelDataset(args.data, "val", transform=None)
            examples = [val.image_bytes(i) for i in range(min(2, len(val)))]
            model_uri = log_pyfunc(uri, run_id, args.model, examples)
            RunRecord(uri, run_id, model_uri, file_sha256(args.model)).write(args.run)
    print(
        f"train: selected epoch {summary['best_epoch'] + 1} ({summary['best_rule']}, smoothed val mAP "
        f"{summary['best_score']:.2f}); logged to MLflow as {model_uri}",
        flush=True,
    )


if __name__ == "__main__":
    stage.run(main, RegistryError)
