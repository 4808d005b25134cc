"""The promotion gate as pure logic, on synthetic test reports (no MLflow, no model)."""

import pytest

from comic.config import Params, from_dict
from comic.registry import decide


def report(total, many=50.0, medium=30.0, few=10.0):
    return {"mAP": total, "mAP_many": many, "mAP_medium": medium, "mAP_few": few}


def test_the_first_model_becomes_champion():
    decision = decide(report(5.0), None, min_gain=2.0, max_group_drop=0.0)
    assert decision.promote and "first" in decision.reasons[0]


def test_a_better_model_is_promoted_and_every_check_is_a_reason():
    decision = decide(report(31.0, few=11.0), report(30.0), min_gain=0.5, max_group_drop=1.0)
    assert decision.promote
    assert len(decision.reasons) == 4 and "gain +1.00 >= min_gain 0.50" in decision.reasons[0]


def test_a_tie_is_promoted_with_min_gain_zero_and_not_with_min_gain_one():
    assert decide(report(30.0), report(30.0), min_gain=0.0, max_group_drop=1.0).promote
    decision = decide(report(30.0), report(30.0), min_gain=1.0, max_group_drop=1.0)
    assert not decision.promote and "< min_gain 1.00" in decision.reasons[0]


def test_a_worse_model_stays_challenger():
    assert not decide(report(29.0), report(30.0), min_gain=0.0, max_group_drop=100.0).promote


def test_a_better_model_that_drops_a_shot_group_too_far_stays_challenger():
    decision = decide(report(35.0, few=8.5), report(30.0, few=10.0), min_gain=0.0, max_group_drop=1.0)
    assert not decision.promote
    assert any(r.startswith("mAP_few") and "drop 1.50 > max_group_drop 1.00" in r for r in decision.reasons)
    # exactly at the limit passes
    assert decide(report(35.0, few=9.0), report(30.0, few=10.0), min_gain=0.0, max_group_drop=1.0).promote


def test_a_group_without_classes_is_not_compared():
    challenger, champion = report(31.0, many=None), report(30.0, many=80.0)
    decision = decide(challenger, champion, min_gain=0.0, max_group_drop=0.0)
    assert decision.promote and any("mAP_many: not compared" in r for r in decision.reasons)


def test_an_undefined_map_is_never_promoted_over_a_champion():
    assert not decide(report(None), report(30.0), min_gain=0.0, max_group_drop=1.0).promote


@pytest.mark.parametrize(
    "section,key",
    [
        ({"min_gain": -0.1}, "register.min_gain"),
        ({"max_group_drop": 101}, "register.max_group_drop"),
        ({"model_name": "my model"}, "register.model_name"),
        ({"http_timeout": 0}, "register.http_timeout"),
    ],
)
def test_an_out_of_range_gate_setting_fails_with_its_key(section, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        from_dict(Params, {"register": section})
