"""Ray Tune search of COMIC's method parameters, scored on the validation split.

Each trial overrides dotted params keys (`tune.space`) and trains with the same loop as the train stage
(`comic.training.train`), either in the trial's own process (`tune.workers_per_trial: 0`, the cheap
default on a small machine) or as a Ray Train DDP run inside the trial (`N`: a function trainable that
builds a `TorchTrainer` reporting through `TuneReportCallback`, the Ray 2.60 pattern). ASHA stops weak
trials early, comparing them on the same signal that selects the final model (the smoothed validation
mAP, `comic.history`); a searcher that learns from past trials proposes them (Optuna's TPE, or random
search, `tune.searcher`), after a first trial of the current values (`tune.start_from_current`). A failed
trial is recorded and the search goes on. The log gets one line per finished trial; MLflow gets one
parent run for the search and one child run per trial, each ended with its status.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import ray
from ray import tune

from comic import faults
from comic.config import Params, SearchDim, flatten, from_dict, override, to_dict
from comic.data.location import absolute, ray_storage
from comic.ray_train import TRAIN_LOGGING, build_trainer, init_ray, private_directory, quiet_ray_logs
from comic.tracking import MlflowSink
from comic.training import train
from comic.tune_results import SCORE

METRIC = "val/mAP_smoothed"  # what ASHA compares at each rung: the selection signal of comic.history


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


# A trial resumes from its last epoch only; every epoch's checkpoint kept filled 35 GB of disk in a 32-trial
# search of the pretrained regime, and the trials after that failed (docs/studies/tuning-pretrained.md).
TRIAL_CHECKPOINTS = tune.CheckpointConfig(num_to_keep=1)


class TuneReporter:
    """`comic.training.Reporter` for a trial that trains in its own process."""

    def restored(self) -> AbstractContextManager[Path | None]:
        checkpoint = tune.get_checkpoint()
        return private_directory(checkpoint) if checkpoint is not None else nullcontext()

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)


def _child_run(setup: dict, sample: dict) -> MlflowSink | None:
    if not setup.get("mlflow"):
        return None
    from mlflow.tracking import MlflowClient

    uri, parent_id, experiment_id = setup["mlflow"]
    client = MlflowClient(tracking_uri=uri)
    context = tune.get_context()
    tags = {"mlflow.parentRunId": parent_id, "trial_id": context.get_trial_id()}
    run = client.create_run(experiment_id, run_name=context.get_trial_name(), tags=tags)
    for key, value in sample.items():
        client.log_param(run.info.run_id, key, value)
    return MlflowSink(uri, run.info.run_id)


def quiet_stopped_trial() -> None:
    """Drop the traceback of a trial that ASHA stopped. Ray may end a stopped trial's actor with SIGTERM;
    its handler there (`sigterm_handler` in ray._private.worker) raises SystemExit inside a Cython callback
    that cannot pass it on, and Python prints it as a 10-line "Exception ignored" traceback, which reads
    as a crash in the stage's log. Only a SystemExit raised through that handler is dropped; every other
    unraisable exception is printed as before."""
    previous = sys.unraisablehook
    if getattr(previous, "comic_quiet", False):
        return

    def hook(info) -> None:
        frames = traceback.extract_tb(info.exc_traceback) if info.exc_traceback else []
        if issubclass(info.exc_type, SystemExit) and any(f.name == "sigterm_handler" for f in frames):
            return
        previous(info)

    hook.comic_quiet = True
    sys.unraisablehook = hook


def trainable(config: dict, setup: dict) -> None:
    """One trial. `config["sample"]`: the sampled values (all Tune shows and stores per trial); `setup`:
    what every trial shares (base params, data folder, epochs, resources, MLflow ids), passed once
    through `tune.with_parameters`."""
    quiet_ray_logs()
    quiet_stopped_trial()
    sample = dict(config["sample"])
    faults.before_trial(sample)
    params = trial_params(setup["base"], sample, setup["epochs"])
    sink = _child_run(setup, sample)
    if setup["workers_per_trial"] == 0:
        torch_threads = max(1, int(setup.get("cpus_per_trial", 1)))
        os.environ["OMP_NUM_THREADS"] = str(torch_threads)
        train(params, setup["data_dir"], TuneReporter(), sink, verbose=False, features_dir=setup["features_dir"])
    else:
        _train_distributed(params, setup, sink)
    if sink is not None:
        sink.client.set_terminated(sink.run_id, "FINISHED")


def distributed_trial_run_config(name: str, storage_path: str, callbacks: list):
    """The Ray Train run of a distributed trial (`callbacks`: the report to Tune), keeping its last checkpoint
    only; Train V2 refuses Tune's `CheckpointConfig` and wants its own."""
    from ray.train import CheckpointConfig, RunConfig

    return RunConfig(
        name=name,
        **ray_storage(storage_path),
        callbacks=callbacks,
        checkpoint_config=CheckpointConfig(num_to_keep=TRIAL_CHECKPOINTS.num_to_keep),
        logging_config=TRAIN_LOGGING,
    )


def _train_distributed(params: Params, setup: dict, sink) -> None:
    from ray.tune.integration.ray_train import TuneReportCallback

    name = f"{tune.get_context().get_trial_name()}-train"
    run_config = distributed_trial_run_config(name, setup["storage_path"], [TuneReportCallback()])
    params = override(params, {"train.num_workers": setup["workers_per_trial"]})
    mlflow = (sink.uri, sink.run_id) if sink else None
    trainer = build_trainer(
        params,
        setup["data_dir"],
        run_config=run_config,
        mlflow=mlflow,
        features_dir=setup["features_dir"],
        cpus_per_worker=setup["cpus_per_worker"],
    )
    trainer.fit()


@dataclass
class SearchResult:
    best_sample: dict
    best_score: float
    best_trial: str
    trials: list[dict]


class TrialLines(tune.Callback):
    """One line in the log per finished trial, in place of Tune's tables; `completed` holds the ids of the
    trials that ran to their end or to ASHA's stop (not those the search was interrupted in)."""

    def __init__(self, total: int):
        self.total, self.done = total, 0
        self.completed: set[str] = set()

    def _line(self, trial, status: str) -> None:
        self.done += 1
        result = trial.last_result or {}
        sample = ", ".join(f"{k}={_short(v)}" for k, v in (trial.config.get("sample") or {}).items())
        score = result.get(SCORE)
        value = f"val {score:.2f}" if isinstance(score, float) else "no score"
        epochs = result.get("training_iteration", 0)
        print(
            f"trial {self.done}/{self.total} {trial.trial_id} {status}: {value} after {epochs} epochs; {sample}",
            flush=True,
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.completed.add(trial.trial_id)
        self._line(trial, "done")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "failed")


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def first_trial(params: Params) -> dict | None:
    """The current values of the searched keys (`tune.start_from_current`), or None: run first, they make
    the search return the configuration it started from unless a trial beats it on validation."""
    if not params.tune.start_from_current:
        return None
    current = flatten(params)
    return {key: current[key] for key in params.tune.space}


def build_searcher(settings, metric: str, first: dict | None = None):
    """Optuna's TPE (learns from finished trials) or random search, seeded by `tune.seed`; `first`: a
    sample to run before any drawn one."""
    if settings.searcher == "tpe":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=settings.seed)
        points = [{f"sample/{key}": value for key, value in first.items()}] if first else None  # Optuna's flat keys
        return OptunaSearch(metric=metric, mode="max", sampler=sampler, points_to_evaluate=points)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(random_state=settings.seed, points_to_evaluate=[{"sample": first}] if first else None)


def run_search(
    params: Params,
    data_dir: str | Path,
    *,
    storage_path: str | Path,
    name: str,
    mlflow: tuple[str, str, str] | None = None,
    features_dir: str | Path | None = None,
) -> SearchResult:
    """Run the search described by `params.tune`; Ray must be initialised. `features_dir`: a frozen trunk's
    cached features (the cache_features stage)."""
    settings = params.tune
    storage = absolute(storage_path)
    distributed = settings.workers_per_trial > 0
    # A distributed trial holds a sliver of a CPU and its Ray Train workers hold the rest (docs/stack.md).
    resources = {"cpu": 0.1} if distributed else {"cpu": settings.cpus_per_trial}
    setup = {
        "base": to_dict(params),
        "data_dir": absolute(data_dir),
        "features_dir": absolute(features_dir) if features_dir else None,
        "epochs": params.trial_epochs,
        "workers_per_trial": settings.workers_per_trial,
        "cpus_per_trial": settings.cpus_per_trial,
        "cpus_per_worker": (settings.cpus_per_trial - 0.1) / max(settings.workers_per_trial, 1),
        "storage_path": storage,
        "mlflow": list(mlflow) if mlflow else None,
    }
    scheduler = tune.schedulers.ASHAScheduler(
        time_attr="training_iteration",
        max_t=params.trial_epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )
    lines = TrialLines(settings.num_samples)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, setup=setup), resources),
        param_space={"sample": search_space(settings.space)},
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            num_samples=settings.num_samples,
            max_concurrent_trials=settings.max_concurrent_trials,
            scheduler=scheduler,
            search_alg=build_searcher(settings, METRIC, first_trial(params)),
        ),
        run_config=tune.RunConfig(
            name=name,
            **ray_storage(storage),
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            checkpoint_config=TRIAL_CHECKPOINTS,
            callbacks=[lines],
            verbose=0,
        ),
    )
    grid = tuner.fit()
    trials = [trial_row(result, settings.space, lines.completed) for result in grid]
    if mlflow:
        _end_child_runs(mlflow, trials)
    best = best_trial(trials)
    return SearchResult({k: best[k] for k in settings.space}, best[SCORE], best["trial"], trials)


def best_trial(trials: list[dict]) -> dict:
    """The finished trial with the highest score; an error naming the first failure when none finished."""
    finished = [t for t in trials if t["status"] == "ok" and not math.isnan(t[SCORE])]
    if not finished:
        counts = ", ".join(f"{n} {status}" for status, n in Counter(t["status"] for t in trials).items())
        errors = [t["error"] for t in trials if t["error"]]
        raise RuntimeError(
            f"no trial of {len(trials)} finished with a score ({counts})"
            + (f"; the first error: {errors[0]}" if errors else "")
        )
    return max(finished, key=lambda t: t[SCORE])


def trial_row(result, space: dict, completed: set[str]) -> dict:
    """A trial's row in trials.csv; status `ok`, `error`, or `interrupted` (the search was stopped, e.g. by
    Ctrl+C, while it ran: its score is from fewer epochs than the schedule gave it, so it cannot win)."""
    sample = (result.config or {}).get("sample", {})
    metrics = result.metrics or {}
    trial = metrics.get("trial_id") or Path(result.path).name
    return {
        "trial": trial,
        "status": "error" if result.error else "ok" if trial in completed else "interrupted",
        **{k: sample.get(k) for k in space},
        SCORE: float(metrics.get(SCORE, math.nan)),
        "epochs": int(metrics.get("training_iteration", 0)),
        "error": _last_line(result.error),
    }


def _end_child_runs(mlflow: tuple[str, str, str], trials: list[dict]) -> None:
    """Tune stops a trial by ending its process, so its child run would stay RUNNING: end each with its
    trial's status (stopped early by ASHA is finished, an error failed, an interrupted one killed)."""
    from mlflow.tracking import MlflowClient

    uri, parent_id, experiment_id = mlflow
    client = MlflowClient(tracking_uri=uri)
    ended = {"ok": "FINISHED", "error": "FAILED", "interrupted": "KILLED"}
    status = {t["trial"]: ended[t["status"]] for t in trials}
    for run in client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"):
        trial = run.data.tags.get("trial_id")
        if run.info.status == "RUNNING" and trial in status:
            client.set_terminated(run.info.run_id, status[trial])


def _last_line(error) -> str:
    """The exception line of a (remote) traceback, e.g. `RuntimeError: ...`."""
    if not error:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(error).__name__


def init_for_search(params: Params) -> None:
    if not ray.is_initialized():
        init_ray(num_cpus=max(2, math.ceil(params.tune.cpus_per_trial * params.tune.max_concurrent_trials)))
