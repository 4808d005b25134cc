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
    optimizer = build_optimizer(model, lr=params.train.lr, weight_decay=0.0, classifier_lr_scale=1.0)
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
    audit = {k.removeprefix("correction/"): v for k, v in objective.end_epoch().items()}
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


def recalled_entry_gradient(mask_recalled: bool) -> float:
    """dL/dz (batch-size scale) of a y_obs = 0 entry that the corrector recalls at p = 0.85, the issue's
    probe: the main MFM term against the RLC term (weight 0.2, one image, its positives counted)."""
    from comic.engine import correction_loss

    counts = torch.tensor([100.0, 100.0])
    params = override(Params(), {"model.name": "single", "correction.start_epoch": 0})
    objective = objective_for(params, class_counts=counts, num_samples=1)
    logits = torch.logit(torch.tensor([[0.95, 0.85]])).requires_grad_()
    observed = torch.tensor([[1.0, 0.0]])
    corrected = torch.tensor([[1.0, 1.0]])
    weight = 1 - (corrected - observed) if mask_recalled else None
    main = objective.loss_fn(logits, observed, weight)
    rlc = 0.2 * correction_loss(objective.loss_fn, logits, corrected, corrected.sum())
    (grad,) = torch.autograd.grad(main + rlc, logits)
    return float(grad[0, 1])


def test_masking_recalled_entries_lets_the_corrector_hold_them_up():
    assert recalled_entry_gradient(mask_recalled=False) > 0  # the main term pushes the recalled label back down
    assert recalled_entry_gradient(mask_recalled=True) < 0  # only the corrector's push up is left


def test_a_masked_step_leaves_recalled_entries_out_of_the_main_loss():
    model, objective, optimizer, batch = setup(
        {"model.name": "single", "correction.tau": 0.5, "correction.mask_recalled": True}
    )
    corrected = objective.correctors["single"]
    logits = model(batch["image"]).float()
    recalled = corrected(logits, batch["labels_observed"]) - batch["labels_observed"]
    weight = objective._main_weight(recalled + batch["labels_observed"], batch["labels_observed"])
    assert recalled.sum() > 0 and torch.equal(weight, 1 - recalled)


def test_plain_branch_logits_train_the_head_and_tail_on_z_not_the_learning_effect():
    for branch_logits in ("learning_effect", "plain"):
        # Momentum 0: the moving vector is the batch mean, so a second forward on the batch is the same.
        # No mask: the main loss then sees the observed labels only, as the reference below does.
        updates = {"model.name": "comic", "balance.branch_logits": branch_logits, "balance.momentum": 0.0}
        updates["correction.mask_recalled"] = False
        model, objective, _, batch = setup(updates, seed=2)
        _, parts = objective(model, {"instance": batch, "rebalanced": batch}, epoch=0)
        out = model(batch["image"], batch["image"])
        head, other = (out.head_plain, out.head) if branch_logits == "plain" else (out.head, out.head_plain)
        observed = batch["labels_observed"]
        torch.testing.assert_close(parts["loss_head"], objective.loss_fn(head, observed).detach())
        assert not torch.allclose(parts["loss_head"], objective.loss_fn(other, observed).detach())


def test_every_epoch_reports_gradient_shares_and_the_net_gradient_on_recalled_entries():
    model, objective, optimizer, batch = setup({"model.name": "comic", "correction.tau": 0.55}, seed=1)
    run(model, objective, optimizer, batch, 12, steps_per_epoch=100)
    diagnostics = {k: v for k, v in objective.end_epoch().items() if k.startswith("diagnostics/")}
    shares = [v for k, v in diagnostics.items() if k.startswith("diagnostics/grad_share/logits/")]
    assert {"main", "rlc", "htb"} == {k.rsplit("/", 1)[1] for k in diagnostics if "/logits/" in k}
    assert abs(sum(shares) - 1) < 1e-6 and all(0 <= s <= 1 for s in shares)
    assert "diagnostics/grad_share/features/main" in diagnostics and "diagnostics/recalled/net_grad" in diagnostics


def test_the_authors_schedule_steps_each_group_at_its_fraction_and_classifiers_learn_slower():
    from comic.engine import build_scheduler

    model = build_model(Params().model, Params().balance, num_classes=NUM_CLASSES)
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.0, classifier_lr_scale=0.1)
    scheduler = build_scheduler(optimizer, schedule="authors_step", epochs=40)
    rates = []
    for _ in range(40):
        rates.append({g["name"]: g["lr"] for g in optimizer.param_groups})
        optimizer.step()
        scheduler.step()
    assert rates[0]["heads"] == pytest.approx(1e-4) and rates[0]["head"] == pytest.approx(1e-3)
    assert rates[11]["balanced"] == pytest.approx(1e-3) and rates[12]["balanced"] == pytest.approx(1e-4)
    assert rates[23]["head"] == pytest.approx(1e-3) and rates[24]["head"] == pytest.approx(1e-4)
    assert rates[18]["heads"] == pytest.approx(1e-5) and rates[12]["tail"] == pytest.approx(1e-4)


def test_the_optimizer_is_the_fused_adam_and_its_two_steps_match_a_float64_reference():
    model = build_model(Params().model, Params().balance, num_classes=NUM_CLASSES)
    optimizer = build_optimizer(model, lr=1e-2, weight_decay=1e-4, classifier_lr_scale=0.1)
    assert optimizer.defaults["fused"]
    group = next(g for g in optimizer.param_groups if g["name"] == "heads")
    weight = group["params"][0]
    start = weight.detach().double().clone()
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(weight.shape, generator=g, dtype=torch.float64) for _ in range(2)]
    m, v, expected = torch.zeros_like(start), torch.zeros_like(start), start.clone()
    for step, grad in enumerate(grads, start=1):  # Adam (Kingma & Ba) with L2 weight decay, float64
        grad = grad + 1e-4 * expected
        m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad**2
        m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
        expected = expected - 1e-3 * m_hat / (v_hat.sqrt() + 1e-8)  # heads at 0.1 x lr
        for p in model.parameters():
            p.grad = None
        weight.grad = grads[step - 1].float()
        optimizer.step()
    torch.testing.assert_close(weight.detach().double(), expected, rtol=0, atol=1e-6)
    assert not torch.equal(weight.detach().double(), start)
