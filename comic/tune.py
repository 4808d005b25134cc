"""Ray Tune search of COMIC's method parameters, scored on the validation split.

Each trial overrides dotted params keys (`tune.space`) and trains with the same loop as the train stage
(`comic.training.train`), either in the trial's own process (`tune.workers_per_trial: 0`, the cheap
default on a small machine) or as a Ray Train DDP run inside the trial (`N`: a function trainable that
builds a `TorchTrainer` reporting through `TuneReportCallback`, the Ray 2.60 pattern). ASHA stops weak
trials early; a failed trial is recorded and the search goes on. MLflow gets one parent run for the
search and one child run per trial.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
import yaml
from ray import tune

from comic import faults
from comic.config import Params, SearchDim, from_dict, override, to_dict
from comic.files import write_csv, write_text
from comic.ray_train import build_trainer, init_ray, storage_uri
from comic.tracking import MlflowSink
from comic.training import train

METRIC = "val/mAP"


def search_space(space: dict[str, SearchDim]) -> dict:
    """`tune.space` from params as Ray Tune sampling objects, one per dotted key."""
    built = {}
    for key, dim in space.items():
        if dim.type == "uniform":
            built[key] = tune.uniform(dim.low, dim.high)
        elif dim.type == "loguniform":
            built[key] = tune.loguniform(dim.low, dim.high)
        else:
            built[key] = tune.choice(list(dim.values))
    return built


def trial_params(base: dict, sample: dict, epochs: int) -> Params:
    """The base params with a trial's sample and the trial length; invalid samples raise ValueError."""
    return override(from_dict(Params, base), {**sample, "train.epochs": epochs})


class TuneReporter:
    """`comic.training.Reporter` for a trial that trains in its own process."""

    def restore(self) -> Path | None:
        checkpoint = tune.get_checkpoint()
        return Path(checkpoint.to_directory()) if checkpoint is not None else None

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)


def _child_run(setup: dict, sample: dict) -> MlflowSink | None:
    if not setup.get("mlflow"):
        return None
    from mlflow.tracking import MlflowClient

    uri, parent_id, experiment_id = setup["mlflow"]
    client = MlflowClient(tracking_uri=uri)
    trial = tune.get_context().get_trial_name()
    run = client.create_run(experiment_id, run_name=trial, tags={"mlflow.parentRunId": parent_id})
    for key, value in sample.items():
        client.log_param(run.info.run_id, key, value)
    return MlflowSink(uri, run.info.run_id)


def trainable(config: dict, setup: dict) -> None:
    """One trial. `config["sample"]`: the sampled values (all Tune shows and stores per trial); `setup`:
    what every trial shares (base params, data folder, epochs, resources, MLflow ids), passed once
    through `tune.with_parameters`."""
    sample = dict(config["sample"])
    faults.before_trial(int(tune.get_context().get_trial_id().rsplit("_", 1)[-1]), sample)
    params = trial_params(setup["base"], sample, setup["epochs"])
    sink = _child_run(setup, sample)
    if setup["workers_per_trial"] == 0:
        torch_threads = max(1, int(setup.get("cpus_per_trial", 1)))
        os.environ["OMP_NUM_THREADS"] = str(torch_threads)
        train(params, setup["data_dir"], TuneReporter(), sink)
        return
    _train_distributed(params, setup, sink)


def _train_distributed(params: Params, setup: dict, sink) -> None:
    from ray.train import RunConfig
    from ray.tune.integration.ray_train import TuneReportCallback

    run_config = RunConfig(
        name=f"{tune.get_context().get_trial_name()}-train",
        storage_path=setup["storage_path"],
        callbacks=[TuneReportCallback()],
    )
    params = override(params, {"train.num_workers": setup["workers_per_trial"]})
    mlflow = (sink.uri, sink.run_id) if sink else None
    trainer = build_trainer(
        params, setup["data_dir"], run_config=run_config, mlflow=mlflow, cpus_per_worker=setup["cpus_per_worker"]
    )
    trainer.fit()


@dataclass
class SearchResult:
    best_sample: dict
    best_val_map: float
    trials: list[dict]


def run_search(
    params: Params,
    data_dir: str | Path,
    *,
    storage_path: str | Path,
    name: str,
    mlflow: tuple[str, str, str] | None = None,
) -> SearchResult:
    """Run the search described by `params.tune`; Ray must be initialised."""
    settings = params.tune
    storage = storage_uri(storage_path)
    distributed = settings.workers_per_trial > 0
    # A distributed trial holds a sliver of a CPU and its Ray Train workers hold the rest (docs/stack.md).
    resources = {"cpu": 0.1} if distributed else {"cpu": settings.cpus_per_trial}
    setup = {
        "base": to_dict(params),
        "data_dir": str(Path(data_dir).resolve()),
        "epochs": settings.epochs,
        "workers_per_trial": settings.workers_per_trial,
        "cpus_per_trial": settings.cpus_per_trial,
        "cpus_per_worker": (settings.cpus_per_trial - 0.1) / max(settings.workers_per_trial, 1),
        "storage_path": storage,
        "mlflow": list(mlflow) if mlflow else None,
    }
    scheduler = tune.schedulers.ASHAScheduler(
        time_attr="training_iteration",
        max_t=settings.epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, setup=setup), resources),
        param_space={"sample": search_space(settings.space)},
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            num_samples=settings.num_samples,
            max_concurrent_trials=settings.max_concurrent_trials,
            scheduler=scheduler,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=storage, failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)
        ),
    )
    np.random.seed(params.seed)  # Tune's random search draws from numpy's global generator
    grid = tuner.fit()
    trials = [_trial_row(result) for result in grid]
    finished = [t for t in trials if t["status"] == "ok" and not math.isnan(t[METRIC])]
    if not finished:
        raise RuntimeError(f"every one of the {len(trials)} trials failed; see the errors in trials.csv")
    best = max(finished, key=lambda t: t[METRIC])
    return SearchResult({k: best[k] for k in settings.space}, best[METRIC], trials)


def _trial_row(result) -> dict:
    sample = (result.config or {}).get("sample", {})
    metrics = result.metrics or {}
    return {
        "trial": metrics.get("trial_id") or Path(result.path).name,
        "status": "error" if result.error else "ok",
        **sample,
        METRIC: float(metrics.get("best/val_mAP_smoothed", metrics.get(METRIC, math.nan))),
        "epochs": int(metrics.get("training_iteration", 0)),
        "error": _last_line(result.error),
    }


def _last_line(error) -> str:
    """The exception line of a (remote) traceback, e.g. `RuntimeError: ...`."""
    if not error:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(error).__name__


def write_outputs(result: SearchResult, best_params_path: str | Path, trials_path: str | Path) -> None:
    """`best_params.yaml` (dotted key -> value) and `trials.csv`, each written atomically."""
    write_text(best_params_path, yaml.safe_dump({k: _plain(v) for k, v in result.best_sample.items()}, sort_keys=True))
    write_csv(trials_path, result.trials)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def load_tuned(params: Params, best_params_path: str | Path) -> Params:
    """`params` with the searched values applied when `train.use_tuned` is on and the file exists."""
    path = Path(best_params_path)
    if not params.train.use_tuned or not path.is_file():
        return params
    tuned = yaml.safe_load(path.read_text()) or {}
    try:
        return override(params, tuned)
    except ValueError as err:
        raise ValueError(f"{path}: {err}; rerun the tune stage (`dvc repro tune`)") from err


def init_for_search(params: Params) -> None:
    if not ray.is_initialized():
        init_ray(num_cpus=max(2, math.ceil(params.tune.cpus_per_trial * params.tune.max_concurrent_trials)))
