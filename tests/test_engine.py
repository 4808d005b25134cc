"""The training step and evaluation loop on tiny random data: overfitting, determinism, resume."""

import copy

import pytest
import torch

from comic.config import Params, override
from comic.engine import build_optimizer, loss_table, seed_everything, train_step
from comic.evaluation import predict_scores
from comic.models import build_model
from tests.builders import objective as objective_for

NUM_CLASSES, NUM_IMAGES = 6, 32
CPU = torch.device("cpu")


def tiny_batch(seed=0, hidden=0.3):
    g = torch.Generator().manual_seed(seed)
    full = (torch.rand(NUM_IMAGES, NUM_CLASSES, generator=g) < 0.35).float()
    full[torch.arange(NUM_IMAGES), torch.randint(0, NUM_CLASSES, (NUM_IMAGES,), generator=g)] = 1
    observed = full * (torch.rand(NUM_IMAGES, NUM_CLASSES, generator=g) >= hidden)
    return {
        "image": torch.randn(NUM_IMAGES, 3, 16, 16, generator=g),
        "labels_observed": observed,
        "labels_full": full,
        "index": torch.arange(NUM_IMAGES),
    }


def setup(updates, seed=0, hidden=0.3):
    seed_everything(seed)
    # Correction from the first step (the default waits two epochs), so that short runs exercise it.
    params = override(Params(), {"train.lr": 1e-3, "correction.start_epoch": 0, **updates})
    batch = tiny_batch(hidden=hidden)
    model = build_model(params.model, params.balance, num_classes=NUM_CLASSES)
    objective = objective_for(params, class_counts=batch["labels_observed"].sum(0), num_samples=NUM_IMAGES)
    optimizer = build_optimizer(model, lr=params.train.lr, weight_decay=0.0)
    return model, objective, optimizer, batch


def run(model, objective, optimizer, batch, steps, first_step=0, steps_per_epoch=10):
    history = []
    for step in range(first_step, first_step + steps):
        epoch = step // steps_per_epoch
        batches = {"instance": batch, "rebalanced": batch}
        parts = train_step(model, objective, optimizer, batches, epoch=epoch, device=CPU, amp=False)
        history.append({k: float(v) for k, v in parts.items()})
        if (step + 1) % steps_per_epoch == 0:
            objective.end_epoch()
    return history


@pytest.mark.parametrize("loss", ["bce", "focal", "asl", "db_focal", "hill", "splc", "mfm"])
def test_a_single_head_model_overfits_32_examples_with_every_loss(loss):
    # Every label observed: a negative the model cannot fit would stall Hill, whose gradient vanishes at p = 1.
    updates = {"loss.name": loss, "model.name": "single", "correction.weight": 0.0}
    model, objective, optimizer, batch = setup(updates, hidden=0.0)
    history = run(model, objective, optimizer, batch, 200)
    assert history[-1]["loss"] < history[0]["loss"] / 10


def test_comic_overfits_32_examples():
    model, objective, optimizer, batch = setup({"model.name": "comic"})
    history = run(model, objective, optimizer, batch, 200)
    supervised = lambda h: h["loss_head"] + h["loss_balanced"] + h["loss_tail"]  # noqa: E731
    assert supervised(history[-1]) < supervised(history[0]) / 10
    # The distillation term takes probabilities in place of logits (paper Eq. 11), so it has a floor > 0;
    # it must still fall.
    assert history[-1]["loss_htb"] < history[0]["loss_htb"]
    scores = predict_scores(model, [batch], device=CPU, amp=False)["scores"]
    assert ((scores > 0.5) == (batch["labels_observed"].numpy() > 0.5)).mean() > 0.9


def test_training_is_bitwise_deterministic_on_cpu_for_a_fixed_seed():
    histories, weights = [], []
    for _ in range(2):
        model, objective, optimizer, batch = setup({"model.name": "comic"}, seed=7)
        histories.append(run(model, objective, optimizer, batch, 4))
        weights.append(model.state_dict())
    assert histories[0] == histories[1]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_resuming_from_a_checkpoint_reproduces_the_uninterrupted_loss_curve():
    model, objective, optimizer, batch = setup({"model.name": "comic"}, seed=3)
    first = run(model, objective, optimizer, batch, 10, steps_per_epoch=5)
    checkpoint = copy.deepcopy(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "objective": objective.state_dict()}
    )
    uninterrupted = run(model, objective, optimizer, batch, 6, first_step=10, steps_per_epoch=5)

    model, objective, optimizer, _ = setup({"model.name": "comic"}, seed=99)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    objective.load_state_dict(checkpoint["objective"])
    resumed = run(model, objective, optimizer, batch, 6, first_step=10, steps_per_epoch=5)
    assert len(first) == 10 and resumed == uninterrupted


def test_the_correction_audit_reports_precision_and_recall_against_the_hidden_labels():
    model, objective, optimizer, batch = setup({"model.name": "single", "correction.tau": 0.55}, seed=1)
    run(model, objective, optimizer, batch, 9, steps_per_epoch=10)
    audit = objective.end_epoch()
    hidden = int(((batch["labels_full"] > 0) & (batch["labels_observed"] == 0)).sum())
    assert audit["hidden"] == 9 * hidden
    assert audit["recalled"] == audit["correct"] + audit["wrong"]


def test_a_non_finite_loss_stops_the_epoch_with_a_clear_error_naming_its_step():
    model, objective, optimizer, batch = setup({"model.name": "single", "loss.name": "bce"})
    steps = [train_step(model, objective, optimizer, {"instance": batch}, epoch=0, device=CPU, amp=False)]
    keys, table = loss_table(steps, epoch=0)
    assert "loss" in keys and table.shape == (1, len(keys)) and torch.isfinite(table).all()
    batch["image"][0, 0, 0, 0] = float("nan")
    steps.append(train_step(model, objective, optimizer, {"instance": batch}, epoch=0, device=CPU, amp=False))
    with pytest.raises(FloatingPointError, match=r"epoch 0, step 1: .*train\.lr"):
        loss_table(steps, epoch=0)


def test_a_compiled_model_is_unwrapped_for_prediction_without_compiling():
    model, _, _, batch = setup({"model.name": "comic"})
    plain = predict_scores(model, [batch], device=CPU, amp=False)["scores"]
    wrapped = predict_scores(torch.compile(model), [batch], device=CPU, amp=False)["scores"]  # predict() runs eagerly
    assert (wrapped == plain).all()
