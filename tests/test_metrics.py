import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score

from comic.metrics import (
    CorrectionAudit,
    average_precision,
    choose_thresholds,
    hidden_positive_map,
    multilabel_report,
    per_class_average_precision,
    shot_groups,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _random_binary(rng, n, p=0.3):
    y = (rng.random(n) < p).astype(np.int64)
    y[0] = 1  # at least one positive
    return y


def test_ap_equals_sklearn_on_random_scores(rng):
    for _ in range(20):
        y = _random_binary(rng, 200)
        s = rng.random(200)
        assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_ap_equals_sklearn_on_random_scores_with_ties(rng):
    for decimals in (0, 1, 2):
        for _ in range(10):
            y = _random_binary(rng, 150)
            s = np.round(rng.random(150), decimals)
            assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_ap_with_all_scores_tied_equals_positive_rate():
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0])
    s = np.full(8, 0.3)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))
    assert average_precision(y, s) == pytest.approx(2 / 8)


def test_ap_of_perfect_ranking_is_one():
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([0.1, 0.9, 0.2, 0.8, 0.7, 0.3])
    assert average_precision(y, s) == pytest.approx(1.0)


def test_ap_with_single_positive_is_reciprocal_rank(rng):
    y = np.zeros(50, dtype=int)
    y[17] = 1
    s = rng.random(50)
    rank = int(np.sum(s >= s[17]))
    assert average_precision(y, s) == pytest.approx(1.0 / rank)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))


def test_ap_accepts_torch_tensors_and_bool_labels(rng):
    y = _random_binary(rng, 64).astype(bool)
    s = rng.random(64)
    expected = average_precision_score(y, s)
    got = average_precision(torch.from_numpy(y), torch.from_numpy(s).to(torch.bfloat16))
    # bfloat16 rounding creates ties; compare with sklearn on the same rounded scores
    s_bf16 = torch.from_numpy(s).to(torch.bfloat16).double().numpy()
    assert got == pytest.approx(average_precision_score(y, s_bf16))
    assert average_precision(torch.from_numpy(y), torch.from_numpy(s)) == pytest.approx(expected)


def test_ap_of_class_without_positive_is_nan():
    assert math.isnan(average_precision(np.zeros(5), np.linspace(0, 1, 5)))


def test_per_class_ap_matches_sklearn_per_column_and_nan_for_empty_class(rng):
    y = (rng.random((120, 6)) < 0.2).astype(int)
    y[0, :] = 1
    y[:, 4] = 0
    s = np.round(rng.random((120, 6)), 1)
    ap = per_class_average_precision(y, s)
    assert ap.shape == (6,)
    assert math.isnan(ap[4])
    for c in (0, 1, 2, 3, 5):
        assert ap[c] == pytest.approx(average_precision_score(y[:, c], s[:, c]), abs=1e-12)


def test_mismatched_or_wrong_rank_shapes_raise_with_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 2\)"):
        per_class_average_precision(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        per_class_average_precision(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError):
        average_precision(np.zeros((4, 1)), np.zeros((4, 1)))


def test_shot_groups_follow_thresholds_exactly_at_boundaries():
    groups = shot_groups(np.array([0, 19, 20, 99, 100, 5000]))
    assert groups.tolist() == ["few", "few", "medium", "medium", "many", "many"]
    assert shot_groups([9, 10, 50], many_threshold=50, few_threshold=10).tolist() == [
        "few",
        "medium",
        "many",
    ]


@pytest.mark.parametrize("many,few", [(20, 20), (10, 20), (100, -1)])
def test_shot_groups_reject_bad_thresholds(many, few):
    with pytest.raises(ValueError):
        shot_groups([1, 2, 3], many_threshold=many, few_threshold=few)


def _report_data(rng):
    n, c = 80, 7
    y = (rng.random((n, c)) < 0.25).astype(int)
    y[0, :] = 1
    y[:, 6] = 0  # unevaluable class in the "few" group
    s = rng.random((n, c))
    counts = np.array([500, 150, 60, 20, 19, 3, 1])  # many, many, medium, medium, few, few, few
    return y, s, counts


def test_multilabel_report_keys_and_percent_scale(rng):
    y, s, counts = _report_data(rng)
    rep = multilabel_report(y, s, counts)
    assert set(rep) == {
        "mAP",
        "mAP_many",
        "mAP_medium",
        "mAP_few",
        "recall@0.5",
        "precision@0.5",
        "per_class",
    }
    ap = per_class_average_precision(y, s)
    assert rep["mAP"] == pytest.approx(100 * np.nanmean(ap))
    assert 0 <= rep["mAP"] <= 100
    assert [p["group"] for p in rep["per_class"]] == ["many"] * 2 + ["medium"] * 2 + ["few"] * 3
    assert [p["train_count"] for p in rep["per_class"]] == counts.tolist()
    assert [p["index"] for p in rep["per_class"]] == list(range(7))
    assert rep["per_class"][6]["ap"] is None
    assert rep["per_class"][0]["ap"] == pytest.approx(100 * ap[0])


def test_multilabel_report_group_maps_are_means_of_group_class_aps(rng):
    y, s, counts = _report_data(rng)
    rep = multilabel_report(y, s, counts)
    ap = 100 * per_class_average_precision(y, s)
    assert rep["mAP_many"] == pytest.approx(ap[[0, 1]].mean())
    assert rep["mAP_medium"] == pytest.approx(ap[[2, 3]].mean())
    assert rep["mAP_few"] == pytest.approx(ap[[4, 5]].mean())  # class 6 has no positive


def test_multilabel_report_group_without_evaluable_class_is_nan(rng):
    y, s, counts = _report_data(rng)
    rep = multilabel_report(y, s, np.full(7, 1000))
    assert math.isnan(rep["mAP_medium"]) and math.isnan(rep["mAP_few"])
    assert rep["mAP_many"] == pytest.approx(rep["mAP"])


def test_multilabel_report_recall_and_precision_at_half_by_hand():
    y = np.array([[1, 0, 1], [0, 1, 0]])
    s = np.array([[0.9, 0.6, 0.5], [0.2, 0.4, 0.7]])
    # predicted (>= 0.5): (0,0) tp, (0,1) fp, (0,2) tp, (1,2) fp; positive (1,1) missed
    rep = multilabel_report(y, s, [100, 50, 5])
    assert rep["recall@0.5"] == pytest.approx(100 * 2 / 3)
    assert rep["precision@0.5"] == pytest.approx(100 * 2 / 4)
    rep = multilabel_report(y, s, [100, 50, 5], decision_threshold=0.95)
    assert rep["recall@0.5"] == 0.0 and rep["precision@0.5"] == 0.0


def test_multilabel_report_rejects_wrong_train_counts_length(rng):
    y, s, _ = _report_data(rng)
    with pytest.raises(ValueError):
        multilabel_report(y, s, [1, 2, 3])


def _audit_example():
    observed = np.array([[1, 0, 0, 0], [0, 0, 1, 0]])
    corrected = np.array([[1, 1, 1, 0], [0, 1, 1, 0]])
    full = np.array([[1, 1, 0, 1], [0, 0, 1, 1]])
    # recalled: (0,1) correct, (0,2) wrong, (1,1) wrong -> 3 recalled, 1 correct, 2 wrong
    # hidden: (0,1), (0,3), (1,3) -> 3
    return observed, corrected, full


def test_correction_audit_counts_precision_and_recall_on_hand_made_example():
    audit = CorrectionAudit()
    observed, corrected, full = _audit_example()
    audit.update(torch.tensor(observed, dtype=torch.float32), torch.tensor(corrected).bool(), full)
    res = audit.result()
    assert (res["recalled"], res["correct"], res["wrong"], res["hidden"]) == (3, 1, 2, 3)
    assert res["precision"] == pytest.approx(1 / 3)
    assert res["recall"] == pytest.approx(1 / 3)
    audit.update(observed, corrected, full)
    assert audit.counts().tolist() == [6, 2, 4, 6]
    assert audit.counts().dtype == np.int64


def test_correction_audit_reset_gives_nan_rates_and_zero_counts():
    audit = CorrectionAudit()
    audit.update(*_audit_example())
    audit.reset()
    res = audit.result()
    assert audit.counts().tolist() == [0, 0, 0, 0]
    assert math.isnan(res["precision"]) and math.isnan(res["recall"])


def test_correction_audit_state_round_trip_and_add_counts():
    audit = CorrectionAudit()
    audit.update(*_audit_example())
    restored = CorrectionAudit()
    restored.load_state_dict(audit.state_dict())
    assert restored.result() == audit.result()
    # simulated all-reduce over two ranks
    total = audit.counts() + restored.counts()
    audit.reset()
    audit.add_counts(total)
    assert audit.counts().tolist() == [6, 2, 4, 6]
    with pytest.raises(ValueError):
        audit.add_counts([1, 2])
    with pytest.raises(ValueError):
        audit.update(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 4)))


def test_choose_thresholds_f1_at_least_as_good_as_half_and_default_for_empty_class(rng):
    n, c = 300, 5
    y = (rng.random((n, c)) < 0.15).astype(int)
    y[:, 3] = 0
    s = np.clip(0.35 * y + 0.6 * rng.random((n, c)), 0, 1).round(2)
    thr = choose_thresholds(y, s, default=0.42)
    assert thr.shape == (c,)
    assert thr[3] == 0.42
    for k in (0, 1, 2, 4):
        tuned = f1_score(y[:, k], s[:, k] >= thr[k])
        at_half = f1_score(y[:, k], s[:, k] >= 0.5, zero_division=0.0)
        assert tuned >= at_half - 1e-12
        # it is the best over every candidate threshold
        best = max(f1_score(y[:, k], s[:, k] >= t) for t in np.unique(s[:, k]))
        assert tuned == pytest.approx(best)


def test_hidden_positive_map_against_sklearn_on_the_unobserved_entries():
    rng = np.random.default_rng(3)
    full = (rng.random((200, 6)) < 0.3).astype(np.int64)
    observed = full * (rng.random(full.shape) < 0.6)
    scores = rng.random(full.shape)
    expected = []
    for c in range(6):
        rows = observed[:, c] == 0
        if full[rows, c].any():
            expected.append(average_precision_score(full[rows, c], scores[rows, c]))
    assert hidden_positive_map(observed, full, scores) == pytest.approx(100 * np.mean(expected), abs=1e-10)


def test_hidden_positive_map_ignores_observed_positives_and_classes_without_hidden_ones():
    full = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    observed = np.array([[1, 1], [0, 0], [0, 1], [0, 0]])  # class 1 hides nothing
    scores = np.array([[0.0, 0.9], [0.8, 0.1], [0.5, 0.2], [0.9, 0.3]])
    # class 0 ranks its unobserved rows 3 (negative, 0.9), 1 (hidden positive, 0.8), 2: AP 1/2
    assert hidden_positive_map(observed, full, scores) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="observed positive is negative"):
        hidden_positive_map(full, observed, scores)
