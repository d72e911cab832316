"""Perception Calibration and Dynamic Interaction against hand-computed values (METHOD.md 3 and 5)."""

import math

import pytest

from ilr.calibration import calibrate
from ilr.interaction import irt_probability, irt_type, ratio_type


def test_two_models_hand_computed():
    # Model a: [1, 0, 1, 0]; peer b: [1, 0, 0, 0] -> mean 0.25, spread 1, bound 1/(m-1) = 1.
    out = calibrate({"a": [1, 0, 1, 0], "b": [1, 0, 0, 0]})
    assert out["a"] == pytest.approx([1 + 0.75, 0 - 0.25, 1 + 0.75, 0 - 0.25])
    # b against a: mean 0.5, spread 1.
    assert out["b"] == pytest.approx([1 + 0.5, 0 - 0.5, 0 - 0.5, 0 - 0.5])


def test_three_models_clip_at_one_over_m_minus_one():
    # m = 3: each peer term is clipped to [-0.5, 0.5].
    out = calibrate({"a": [1, 0], "b": [0, 0.5], "c": [1, 1]})
    # a=1 vs b (mean .25, spread .5): (1-.25)/.5 = 1.5 -> .5 ; vs c (all equal 1): equal -> 0
    # a=0 vs b: (0-.25)/.5 = -.5 ; vs c: (0-1)/eps -> -.5
    assert out["a"] == pytest.approx([1.5, -1.0])
    # c=1 vs a (mean .5, spread 1): .5 ; vs b: (1-.25)/.5 -> .5
    assert out["c"] == pytest.approx([2.0, 2.0])


def test_peer_with_equal_rewards_gives_plus_minus_bound_or_zero():
    out = calibrate({"a": [1, 0, 1, 1], "b": [1, 1, 1, 1]})
    assert out["a"] == pytest.approx([1, -1, 1, 1])
    out = calibrate({"a": [1, 0], "b": [0, 0]})
    assert out["a"] == pytest.approx([2, 0])


def test_all_correct_and_all_wrong_groups_are_unchanged():
    assert calibrate({"a": [1, 1, 1], "b": [1, 1, 1]}) == {"a": [1, 1, 1], "b": [1, 1, 1]}
    assert calibrate({"a": [0, 0], "b": [0, 0], "c": [0, 0]}) == {"a": [0, 0], "b": [0, 0], "c": [0, 0]}


def test_calibration_needs_a_peer():
    with pytest.raises(ValueError, match="m >= 2"):
        calibrate({"a": [1, 0]})


def test_irt_probability_and_type():
    assert irt_probability(0.5, 0.5) == pytest.approx(0.5)
    assert irt_probability(0.8, 0.3) == pytest.approx(1 / (1 + math.exp(-1.7 * 0.5)))
    # gamma below difficulty for both: hard -> cooperation; above: competition.
    hard = {m: irt_probability(g, 0.9) for m, g in {"a": 0.2, "b": 0.6}.items()}
    easy = {m: irt_probability(g, 0.1) for m, g in {"a": 0.2, "b": 0.6}.items()}
    assert irt_type(hard) == "cooperation" and irt_type(easy) == "competition"
    # P exactly 0.5 is competition (P >= 0.5); the rule picks the aggregate.
    assert irt_type({"a": 0.5, "b": 0.5}) == "competition"
    mixed = {"a": 0.45, "b": 0.7}
    assert irt_type(mixed, "mean") == "competition"
    assert irt_type(mixed, "min") == "cooperation"
    assert irt_type(mixed, "max") == "competition"


@pytest.mark.parametrize("p", [0.0, 0.2, 0.6, 1.0])
def test_ratio_cooperation_fraction_near_p(p):
    types = [ratio_type(p, seed=0, question_id=f"q{i}") for i in range(2000)]
    fraction = types.count("cooperation") / len(types)
    assert abs(fraction - p) < 0.03
    assert types == [ratio_type(p, seed=0, question_id=f"q{i}") for i in range(2000)]  # reproducible
