"""The reflective label corrector (RLC): what it recalls, what it never drops, and its state."""

import pytest
import torch

from tests.builders import corrector as LabelCorrector


def logits_for(probs):
    return torch.logit(torch.as_tensor(probs, dtype=torch.float32))


def test_recalls_exactly_the_unknown_entries_whose_margin_probability_beats_tau_and_the_class_mean():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 6, generator=g) * 3
    observed = (torch.rand(64, 6, generator=g) < 0.3).float()
    corrector = LabelCorrector(6, tau=0.7, margin=1.0, class_threshold="batch")
    corrected = corrector(logits, observed)
    probs = torch.sigmoid(logits - 1.0 * observed)
    cutoff = torch.maximum(torch.tensor(0.7), probs.mean(0))
    expected = ((probs > cutoff) & (observed == 0)) | (observed == 1)
    assert torch.equal(corrected.bool(), expected)
    assert (corrected.bool() & (observed == 0)).any()


def test_never_drops_an_observed_positive_even_when_the_model_is_confident_it_is_absent():
    logits = torch.full((4, 3), -20.0)
    observed = torch.eye(4, 3)
    corrected = LabelCorrector(3, class_threshold="ema")(logits, observed)
    assert torch.equal(corrected, observed)


def test_class_threshold_can_be_stricter_than_tau():
    # class 0 runs high everywhere: its batch mean (0.923) beats tau, so only the 0.95 entry is recalled.
    logits = logits_for([[0.95, 0.8], [0.9, 0.1], [0.92, 0.1]])
    observed = torch.zeros(3, 2)
    corrected = LabelCorrector(2, tau=0.7, margin=1.0, class_threshold="batch")(logits, observed)
    assert torch.equal(corrected, torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))
    plain = LabelCorrector(2, tau=0.7, margin=1.0, class_threshold="none")(logits, observed)
    assert plain[:, 0].sum() == 3


def test_ema_threshold_starts_at_the_first_batch_mean_and_moves_with_momentum():
    corrector = LabelCorrector(2, momentum=0.9, class_threshold="ema")
    first, second = logits_for([[0.2, 0.6], [0.4, 0.8]]), logits_for([[0.9, 0.1], [0.9, 0.1]])
    corrector(first, torch.zeros(2, 2))
    torch.testing.assert_close(corrector.threshold_c, torch.tensor([0.3, 0.7]))
    corrector(second, torch.zeros(2, 2))
    torch.testing.assert_close(corrector.threshold_c, torch.tensor([0.9 * 0.3 + 0.1 * 0.9, 0.9 * 0.7 + 0.1 * 0.1]))


def test_recalled_counts_feed_the_epoch_distribution_and_reset():
    corrector = LabelCorrector(2, tau=0.7, class_threshold="none")
    corrector(logits_for([[0.95, 0.1], [0.95, 0.99]]), torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    assert corrector.take_epoch_counts().tolist() == [2, 0]
    assert corrector.take_epoch_counts().tolist() == [0, 0]


def test_persisted_recalls_survive_a_later_unconfident_step():
    corrector = LabelCorrector(2, tau=0.7, class_threshold="none", persist=True, num_samples=5)
    index = torch.tensor([3])
    corrector(logits_for([[0.95, 0.1]]), torch.zeros(1, 2), index)
    later = corrector(logits_for([[0.1, 0.1]]), torch.zeros(1, 2), index)
    assert later.tolist() == [[1.0, 0.0]]
    fresh = LabelCorrector(2, tau=0.7, class_threshold="none")
    fresh(logits_for([[0.95, 0.1]]), torch.zeros(1, 2))
    assert fresh(logits_for([[0.1, 0.1]]), torch.zeros(1, 2)).sum() == 0


def test_state_round_trips_and_continues_identically():
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(8, 4, generator=g) * 2, (torch.rand(8, 4, generator=g) < 0.3).float()) for _ in range(4)]
    reference = LabelCorrector(4, persist=True, num_samples=8)
    for logits, observed in batches[:2]:
        reference(logits, observed, torch.arange(8))
    restored = LabelCorrector(4, persist=True, num_samples=8)
    restored.load_state_dict(reference.state_dict())
    for logits, observed in batches[2:]:
        assert torch.equal(reference(logits, observed, torch.arange(8)), restored(logits, observed, torch.arange(8)))
    assert torch.equal(reference.threshold_c, restored.threshold_c)
    assert torch.equal(reference.take_epoch_counts(), restored.take_epoch_counts())


def test_bad_settings_are_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="class_threshold"):
        LabelCorrector(3, class_threshold="mean")
    with pytest.raises(ValueError, match="num_samples"):
        LabelCorrector(3, persist=True)
