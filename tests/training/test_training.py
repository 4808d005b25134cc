"""The per-worker training loop: runs, selects on validation, checkpoints and resumes exactly."""

from pathlib import Path

import pytest

from comic.config import Params, override
from comic.training import LocalReporter, train

TINY = {
    "data.image_size": 36,
    "train.epochs": 3,
    "train.batch_size": 16,
    "metrics.many_threshold": 40,
    "metrics.few_threshold": 10,
    "correction.start_epoch": 0,  # correct in every epoch, so that a resume carries the corrector's state
}


def without_nan(history):
    """NaN (a shot group without classes) never equals itself: compare it as None. Wall-clock throughput
    differs between any two runs and is left out."""
    return [{k: None if v != v else v for k, v in row.items() if k != "train/images_per_s"} for row in history]


class CrashAfter(LocalReporter):
    """A reporter whose process 'dies' right after checkpointing the given epoch."""

    def __init__(self, root, epoch):
        super().__init__(Path(root))
        self.epoch = epoch

    def report(self, metrics, checkpoint_dir):
        super().report(metrics, checkpoint_dir)
        if metrics["epoch"] == self.epoch:
            raise KeyboardInterrupt("simulated crash")


@pytest.mark.parametrize(("model", "ema_decay"), [("comic", 0.0), ("single", 0.0), ("comic", 0.9)])
def test_an_interrupted_run_resumes_and_reproduces_the_uninterrupted_curve(tiny_data, tmp_path, model, ema_decay):
    params = override(Params(), {**TINY, "model.name": model, "train.ema_decay": ema_decay})
    uninterrupted = LocalReporter(tmp_path / "a")
    train(params, tiny_data, uninterrupted)

    with pytest.raises(KeyboardInterrupt):
        train(params, tiny_data, CrashAfter(tmp_path / "b", epoch=0))
    resumed = LocalReporter(tmp_path / "b")
    train(params, tiny_data, resumed)

    assert [m["epoch"] for m in resumed.history] == [1, 2]
    assert without_nan(resumed.history) == without_nan(uninterrupted.history[1:])


def test_training_reports_validation_selection_and_correction_audit(tiny_data, tmp_path):
    reporter = LocalReporter(tmp_path)
    last = train(override(Params(), TINY), tiny_data, reporter)
    assert len(reporter.history) == 3
    best = max(reporter.history, key=lambda m: m["val/mAP_smoothed"])
    assert last["best/val_mAP_smoothed"] == best["val/mAP_smoothed"] and last["best/epoch"] == best["epoch"]
    assert {"train/loss_rlc", "train/loss_htb", "correction/precision", "correction/recall"} <= set(last)
    assert (tmp_path / "checkpoint" / "state.pt").is_file()
    assert (tmp_path / "checkpoint" / "best_model.pt").is_file()


def test_a_batch_size_that_does_not_split_across_workers_is_a_clear_error():
    from comic.training import per_worker_batch

    assert per_worker_batch(32) == 32
    with pytest.raises(ValueError, match="train.batch_size"):
        import unittest.mock

        with unittest.mock.patch("comic.distributed.world_size", return_value=3):
            per_worker_batch(32)


def test_the_model_file_carries_the_prediction_rule_chosen_on_validation(tiny_data, tmp_path):
    from comic.export import load_model_file
    from comic.training import finish_training

    params = override(Params(), {**TINY, "train.epochs": 2, "balance.prediction": "auto"})
    reporter = LocalReporter(tmp_path / "run")
    train(params, tiny_data, reporter)
    progress = finish_training(
        params, tiny_data, tmp_path / "run" / "checkpoint", tmp_path / "model.pt", tmp_path / "history.csv"
    )
    model, bundle = load_model_file(tmp_path / "model.pt")
    assert progress["best_rule"] in ("balanced", "unfused", "mean")
    assert bundle["prediction"] == model.prediction == progress["best_rule"]
    rules = {k for k in reporter.history[-1] if k.startswith("val/rule/")}
    assert {f"val/rule/{r}/mAP" for r in ("balanced", "unfused", "head", "tail", "mean")} == rules


def test_resuming_from_a_planted_checkpoint_stops_the_run_before_it_runs(tiny_data, tmp_path):
    from comic import checkpoint
    from tests.test_checkpoint import plant

    folder = tmp_path / "checkpoint"
    folder.mkdir()
    checkpoint.save(folder, {key: {} for key in checkpoint.STATE_KEYS}, {})
    plant(folder / checkpoint.STATE_FILE, tmp_path / "ran")
    params = override(Params(), {"data.image_size": 36, "train.epochs": 1, "train.batch_size": 16})
    with pytest.raises(checkpoint.CheckpointError, match="refused"):
        train(params, tiny_data, LocalReporter(tmp_path))
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("model", ["single", "comic"])
def test_a_frozen_pretrained_trunk_trains_on_cached_features_and_its_model_file_takes_images(
    tiny_data, tmp_path, model
):
    from comic.evaluation import score_model_file
    from comic.features import cache_features
    from comic.models import input_spec
    from comic.training import finish_training

    pytest.importorskip("timm")
    frozen = {"model.backbone": "efficientnet_lite0", "model.pretrained": True, "model.freeze_backbone": True}
    frozen |= {"model.input_size": 32, "balance.shared_backbone": True, "model.name": model}
    params = override(Params(), {**TINY, "train.epochs": 2, **frozen})
    cache_features(params.model, input_spec(params.model, params.data.image_size), tiny_data, tmp_path / "features")
    reporter = LocalReporter(tmp_path / "run")
    train(params, tiny_data, reporter, features_dir=tmp_path / "features")
    with pytest.raises(ValueError, match="cached trunk features"):
        train(params, tiny_data, LocalReporter(tmp_path / "other"))
    finish_training(params, tiny_data, tmp_path / "run" / "checkpoint", tmp_path / "m.pt", tmp_path / "h.csv")
    report, _ = score_model_file(tmp_path / "m.pt", tiny_data, params.metrics)  # images through the trunk
    assert 0 <= report["mAP"] <= 100 and len(reporter.history) == 2


class KeepsAverages(LocalReporter):
    """Keeps each epoch's validated weights (`checkpoint.evaluated_weights`)."""

    def __init__(self, root):
        super().__init__(Path(root))
        self.averages = []

    def report(self, metrics, checkpoint_dir):
        from comic import checkpoint

        super().report(metrics, checkpoint_dir)
        self.averages.append(checkpoint.evaluated_weights(checkpoint.load(self.root / "checkpoint")[0]))


def test_with_a_weight_average_validation_and_selection_use_the_average(tiny_data, tmp_path):
    import torch

    from comic import checkpoint

    plain, averaged = LocalReporter(tmp_path / "plain"), KeepsAverages(tmp_path / "ema")
    train(override(Params(), TINY), tiny_data, plain)
    train(override(Params(), {**TINY, "train.ema_decay": 0.9}), tiny_data, averaged)
    # the same training steps (the average only reads the weights), other validation scores
    assert [m["train/loss"] for m in averaged.history] == [m["train/loss"] for m in plain.history]
    assert [m["val/mAP"] for m in averaged.history] != [m["val/mAP"] for m in plain.history]
    state, best = checkpoint.load(tmp_path / "ema" / "checkpoint")
    average = checkpoint.evaluated_weights(state)
    assert set(average) == set(state[checkpoint.MODEL])
    assert any(not torch.equal(average[k], state[checkpoint.MODEL][k]) for k in average)
    selected = averaged.averages[averaged.history[-1]["best/epoch"]]  # the average's weights, not the model's
    assert all(torch.equal(best[k], selected[k]) for k in best)


def test_resuming_a_run_without_a_weight_average_under_ema_decay_is_a_clear_error(tiny_data, tmp_path):
    from comic import checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(override(Params(), TINY), tiny_data, CrashAfter(tmp_path, epoch=0))
    with pytest.raises(checkpoint.CheckpointError, match="train.ema_decay is 0.9"):
        train(override(Params(), {**TINY, "train.ema_decay": 0.9}), tiny_data, LocalReporter(tmp_path))
