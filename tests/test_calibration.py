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


# ---- which choices let Perception Calibration change an update (METHOD.md section 5) ----

def _effect(groups, pooled: bool, scale: str) -> float:
    from ilr.train.rl import advantages
    from ilr.train.ilr import calibration_effect

    rows = []
    for g in groups:
        every = {n: 0.5 for n in g}   # a batch std, for scale "batch"
        estimator = "pooled" if pooled else "member"
        a, u = advantages(calibrate(g), estimator, scale, every), advantages(g, estimator, scale, every)
        rows.append({"models": {n: {"advantages": a[n], "advantages_uncalibrated": u[n]} for n in g}})
    return calibration_effect(rows)


def _groups(m: int, levels: list[float], n: int = 500, G: int = 4):
    import random

    rng = random.Random(m)
    return [{f"model{i}": [rng.choice(levels) for _ in range(G)] for i in range(m)} for _ in range(n)]


@pytest.mark.parametrize("m", [2, 3])
def test_binary_rewards_with_each_model_normalised_leave_calibration_inert(m):
    """GRPO's (R - mean) / std within a model's G completions is invariant to calibration's affine map of
    0/1 rewards: the advantages move only by TRL's 1e-4 in the denominator."""
    assert _effect(_groups(m, [0.0, 1.0]), pooled=False, scale="group") < 1e-3


def test_without_std_scaling_two_models_only_rescale():
    """scale_rewards none, m = 2: the calibrated advantages are exactly twice the raw ones, a uniform rescale
    (no Adam update changes); with m = 3 the slope varies from question to question and calibration acts."""
    assert _effect(_groups(2, [0.0, 1.0]), pooled=False, scale="none") < 1e-9
    assert _effect(_groups(3, [0.0, 1.0]), pooled=False, scale="none") > 0.1


@pytest.mark.parametrize("pooled, levels", [(True, [0.0, 1.0]), (False, [0.0, 0.2, 1.2])])
def test_pooled_advantages_or_a_format_reward_make_calibration_act(pooled, levels):
    for m in (2, 3):
        assert _effect(_groups(m, levels), pooled=pooled, scale="group") > 0.1


def test_pooled_advantages_compare_a_model_with_its_peers():
    from ilr.train.rl import advantages

    raw = {"weak": [0.0, 0.0, 0.0, 1.0], "strong": [1.0, 1.0, 1.0, 0.0]}
    member = advantages(raw, "member", scale="group")
    pooled = advantages(raw, "pooled", scale="group")
    # alone each model's one odd answer stands out the same way; pooled, the strong model's right answers
    # are ordinary and the weak model's right answer is not
    assert pooled["weak"][3] == pytest.approx(pooled["strong"][0])
    assert sum(pooled["weak"]) < 0 < sum(pooled["strong"])
    assert sum(member["weak"]) == pytest.approx(0, abs=1e-9) and sum(member["strong"]) == pytest.approx(0, abs=1e-9)
