"""Dynamic Interaction (ilr/interaction.py, METHOD.md section 3), tested directly: the IRT probability,
the group's interaction type under each `irt_rule`, and the fixed cooperation ratio."""

from __future__ import annotations

import math

import pytest

from ilr.interaction import (AGGREGATES, COMPETITION, COOPERATION, MIXED, common_type, irt_probability, irt_type,
                             irt_types, ratio_type)

# --- irt_probability: P(q, i) = 1 / (1 + exp(-slope (gamma_i - D_q))) -------------------------------------


def test_irt_probability_is_the_formula():
    assert irt_probability(0.7, 0.7) == 0.5                           # ability equal to difficulty
    assert irt_probability(1.0, 0.0) == pytest.approx(1 / (1 + math.exp(-1.7)))   # slope 1.7 (paper)
    assert irt_probability(1.0, 0.0) == pytest.approx(0.845534734916)
    assert irt_probability(0.2, 0.9, slope=3.0) == pytest.approx(1 / (1 + math.exp(3.0 * 0.7)))


def test_irt_probability_is_monotone_and_symmetric():
    grid = [i / 10 for i in range(11)]
    for d in grid:
        ps = [irt_probability(g, d) for g in grid]
        assert ps == sorted(ps) and len(set(ps)) == len(ps)           # rises with ability
        assert all(0 < p < 1 for p in ps)
    for g in grid:
        ps = [irt_probability(g, d) for d in grid]
        assert ps == sorted(ps, reverse=True)                         # falls with difficulty
        for d in grid:
            assert irt_probability(g, d) + irt_probability(d, g) == pytest.approx(1.0)


def test_irt_probability_hard_question_is_below_one_half():
    """P < 0.5 exactly when the question is harder than the model is able (METHOD.md: 'hard for model i')."""
    assert irt_probability(0.3, 0.8) < 0.5 < irt_probability(0.8, 0.3)
    assert irt_probability(0.5, 0.6, slope=0.0) == 0.5                # no slope: no information


# --- irt_type: one type per question for the group; cooperation when aggregate(P) < 0.5 -------------------


def test_the_rules_are_mean_min_max():
    assert set(AGGREGATES) == {"mean", "min", "max"}


@pytest.mark.parametrize("rule, expected", [
    ("mean", COMPETITION),   # mean 0.533 >= 0.5
    ("min", COOPERATION),    # min 0.2 < 0.5: one member finds it hard
    ("max", COMPETITION),    # max 0.9
])
def test_irt_type_per_rule(rule, expected):
    assert irt_type({"a": 0.2, "b": 0.9, "c": 0.5}, rule) == expected


@pytest.mark.parametrize("rule, expected", [
    ("mean", COOPERATION),   # mean 0.4 < 0.5
    ("min", COOPERATION),    # min 0.1
    ("max", COMPETITION),    # max 0.7: one member finds it easy
])
def test_irt_type_rules_disagree_the_other_way(rule, expected):
    assert irt_type({"a": 0.1, "b": 0.4, "c": 0.7}, rule) == expected


def test_irt_type_default_rule_is_mean():
    probs = {"a": 0.45, "b": 0.5}
    assert irt_type(probs) == irt_type(probs, "mean") == COOPERATION


@pytest.mark.parametrize("rule", ["mean", "min", "max"])
def test_irt_type_boundary_is_strict(rule):
    """Exactly 0.5 is competition: cooperation needs the aggregate strictly below one half."""
    assert irt_type({"a": 0.5, "b": 0.5}, rule) == COMPETITION
    assert irt_type({"a": 0.5 - 1e-12, "b": 0.5 - 1e-12}, rule) == COOPERATION


@pytest.mark.parametrize("rule", ["mean", "min", "max"])
def test_irt_type_single_model_and_order(rule):
    assert irt_type({"a": 0.3}, rule) == COOPERATION and irt_type({"a": 0.7}, rule) == COMPETITION
    probs = {"a": 0.2, "b": 0.55, "c": 0.6}
    assert irt_type(probs, rule) == irt_type(dict(reversed(list(probs.items()))), rule)   # order-free


def test_irt_type_from_irt_probabilities():
    """The way the coordinator uses it: P per member from gamma and D_q, then the group's type."""
    gammas = {"weak": 0.3, "strong": 0.8}
    hard = {m: irt_probability(g, 0.9) for m, g in gammas.items()}    # both below 0.5
    easy = {m: irt_probability(g, 0.1) for m, g in gammas.items()}    # both above 0.5
    middle = {m: irt_probability(g, 0.55) for m, g in gammas.items()}  # weak below, strong above
    for rule in AGGREGATES:
        assert irt_type(hard, rule) == COOPERATION and irt_type(easy, rule) == COMPETITION
    assert irt_type(middle, "min") == COOPERATION and irt_type(middle, "max") == COMPETITION


def test_irt_type_unknown_rule():
    with pytest.raises(KeyError):
        irt_type({"a": 0.3}, "median")


# --- ratio_type: cooperation with probability p, drawn per (seed, question) --------------------------------

IDS = [f"q{i:05d}" for i in range(20000)]


def test_ratio_type_is_reproducible():
    first = [ratio_type(0.3, 7, q) for q in IDS[:2000]]
    assert first == [ratio_type(0.3, 7, q) for q in IDS[:2000]]
    assert list(reversed(first)) == [ratio_type(0.3, 7, q) for q in reversed(IDS[:2000])]   # order-free
    # pinned values: the draw comes from a sha256 of ("ratio", seed, id), the same in every process and machine
    C, K = COOPERATION, COMPETITION
    assert [ratio_type(0.5, 0, f"q{i}") for i in range(8)] == [C, C, K, C, K, K, K, C]


def test_ratio_type_depends_on_seed_and_question():
    a = [ratio_type(0.5, 0, q) for q in IDS[:2000]]
    b = [ratio_type(0.5, 1, q) for q in IDS[:2000]]
    assert a != b
    assert len(set(a)) == 2


@pytest.mark.parametrize("p", [0.0, 0.1, 0.2, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("seed", [0, 3])
def test_ratio_type_share_is_close_to_p(p, seed):
    """Over many questions the cooperative share is p (binomial sd at 20,000 ids: at most 0.0035)."""
    share = sum(ratio_type(p, seed, q) == COOPERATION for q in IDS) / len(IDS)
    if p in (0.0, 1.0):
        assert share == p                                             # p = 0: all competition; 1: all cooperation
    else:
        assert abs(share - p) < 0.015, share


def test_ratio_type_is_monotone_in_p():
    """One uniform draw per question, compared with p: a question cooperative at p stays so at any p' > p."""
    for q in IDS[:2000]:
        types = [ratio_type(p, 0, q) for p in (0.0, 0.2, 0.5, 0.8, 1.0)]
        first = types.index(COOPERATION) if COOPERATION in types else len(types)
        assert types == [COMPETITION] * first + [COOPERATION] * (len(types) - first)


def test_per_model_rule_gives_each_model_its_own_type():
    """irt_rule per_model (the paper's reading): each model against its own P; a weak and a strong model split on
    a question of middling difficulty, where every group rule gives both one type."""
    gammas = {"weak": 0.3, "strong": 0.8}
    P = {n: irt_probability(g, 0.55) for n, g in gammas.items()}            # 0.396 and 0.605
    assert irt_types(P, "per_model") == {"weak": COOPERATION, "strong": COMPETITION}
    assert common_type(irt_types(P, "per_model")) == MIXED
    for rule in AGGREGATES:
        types = irt_types(P, rule)
        assert set(types) == set(P) and len(set(types.values())) == 1
        assert common_type(types) == irt_type(P, rule)
    # where every model finds the question hard (or easy), per_model agrees with every group rule
    for d, want in ((1.0, COOPERATION), (0.0, COMPETITION)):
        P = {n: irt_probability(g, d) for n, g in gammas.items()}
        assert all(irt_types(P, rule) == {n: want for n in P} for rule in ("per_model", *AGGREGATES))


def test_unknown_irt_rule_is_named():
    with pytest.raises(ValueError, match="irt_rule.*'median'"):
        irt_types({"a": 0.4}, "median")
