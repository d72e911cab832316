"""Question difficulty (METHOD.md section 2): the rating parser reads the model's rating, not the scale it
quotes; sampled ratings average; `difficulty.scale` refines the raw D_q as documented."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from ilr.difficulty import parse_rating


@pytest.mark.parametrize("reply, rating", [
    ("7", 7), ("I'd say 7.", 7), ("10", 10), ("7\n7", 7),
    ("On a scale of 1 to 10, this is a 4.", 4), ("scale from 1 (very easy) to 10 (extremely hard): 2", 2),
    ("between 1 and 10: 5", 5), ("Rating: 8", 8), ("Difficulty: 9. Step 1: factor the polynomial", 9),
    ("6/10", 6), ("3 out of 10", 3), ("7.5", 7.5),
])
def test_ratings(reply, rating):
    assert parse_rating(reply) == pytest.approx((rating - 1) / 9)


@pytest.mark.parametrize("reply", ["On a scale of 1 to 10 ...", "4 or 5", "The answer is 12", "", "hard",
                                   "0", "11"])
def test_no_rating(reply):
    assert parse_rating(reply) is None


# ----------------------------------------------------------------------------- difficulty.scale (refine)

def empirical_study(n: int = 400, k: int = 4, seed: int = 0):
    """What `empirical` produces for a group of two models with k samples each: per question the raw D_q
    (1 - the pass rate over the 2 k answers: 2 k + 1 values) and the answers' mean length; the pass counts
    and lengths are drawn so that many questions tie on the raw value and a few tie on both."""
    import random

    rng = random.Random(seed)
    raw, length = [], []
    for _ in range(n):
        passed = [sum(rng.random() < 0.5 for _ in range(k)) for _ in range(2)]
        raw.append(((1 - passed[0] / k) + (1 - passed[1] / k)) / 2)
        length.append(float(rng.randrange(10, 60)))
    return raw, length


def test_spread_breaks_ties_within_half_a_step():
    """spread: the raw order is kept, ties of the raw value follow the second signal, D_q stays within half a
    step (1 / 16 for 2 x 4 samples) of the raw value, and only questions equal on both signals still tie."""
    from ilr.difficulty import refine

    raw, length = empirical_study()
    assert len(set(raw)) <= 9 and len(set(zip(raw, length))) > 100   # coarse raw, finer pairs: a real test
    d = refine(raw, length, "spread")
    n = len(raw)
    for i in range(n):
        assert abs(d[i] - raw[i]) <= 1 / 16 + 1e-12 and 0 <= d[i] <= 1
        for j in range(n):
            if raw[i] < raw[j]:
                assert d[i] < d[j]
            elif raw[i] == raw[j]:
                assert (d[i] < d[j]) == (length[i] < length[j]) and (d[i] == d[j]) == (length[i] == length[j])
    assert len(set(d)) == len(set(zip(raw, length)))
    # the fine D_q fills many 0.01 bins of the paper's Fig. 4 where the raw one fills at most 9
    assert len({int(x * 100) for x in d}) > 3 * len({int(x * 100) for x in raw})


def test_spread_keeps_gamma_comparison():
    """With D_q a failure rate, a gamma between two raw values cuts the same questions as before (spread
    only moves D_q within half a step); a gamma on a raw value now cuts its tie group by the second signal
    instead of taking all of it or none."""
    from ilr.difficulty import refine

    raw, length = empirical_study()
    d = refine(raw, length, "spread")
    gamma = 0.5625   # halfway between the raw values 0.5 and 0.625: the edge of both half-step bands
    assert [x > gamma for x in raw] == [x > gamma for x in d]
    tied = [i for i, x in enumerate(raw) if x == 0.5]
    above = [i for i in tied if d[i] > 0.5]
    assert 0 < len(above) < len(tied)   # the cut falls inside the tie group
    assert min(length[i] for i in above) >= max(length[i] for i in tied if d[i] < 0.5)


def test_spread_without_second_signal_keeps_raw():
    from ilr.difficulty import refine

    raw, _ = empirical_study(50)
    assert refine(raw, None, "spread") == raw and refine(raw, [3.0] * len(raw), "spread") == raw
    assert refine([0.4] * 5, [1, 2, 3, 4, 5], "spread") == [0.4] * 5   # one value: no step to spread over


def test_percentile_is_the_mid_rank():
    """percentile: (#below + #equal / 2) / n over (raw, second signal): questions with distinct keys sit at
    (j + 1/2) / n, equal keys share one value, and the mean is 1/2 by construction."""
    from ilr.difficulty import refine

    raw, length = empirical_study(200)
    d = refine(raw, length, "percentile")
    keys = list(zip(raw, length))
    for i in range(len(raw)):
        below = sum(k < keys[i] for k in keys)
        equal = sum(k == keys[i] for k in keys)
        assert d[i] == pytest.approx((below + equal / 2) / len(raw))
    assert statistics.mean(d) == pytest.approx(0.5)
    assert refine([0.1, 0.9, 0.5], None, "percentile") == pytest.approx([1 / 6, 5 / 6, 1 / 2])


def test_equal_means_in_another_order_tie():
    """Two models' ratings (0 + 6) / 2 and (1 + 5) / 2, over 9, differ in the last bit; they are one raw value."""
    from ilr.difficulty import refine

    a, b = (0 / 9 + 6 / 9) / 2, (1 / 9 + 5 / 9) / 2
    assert a != b   # the premise
    assert refine([a, b], None, "percentile") == [0.5, 0.5]


def test_sampled_ratings_average():
    from ilr.difficulty import mean_rating

    assert mean_rating([parse_rating(t) for t in ("3", "Rating: 5", "hard")]) == pytest.approx(3 / 9)
    assert mean_rating([parse_rating("hard")]) is None


def test_scale_in_schema_and_configs():
    """`difficulty.scale` is a schema key with a default (older configs load as raw); both configs name it."""
    from ilr import study

    repo = Path(__file__).resolve().parents[1]
    assert study.load(repo / "config" / "config.yaml")["difficulty"]["scale"] == "spread"
    paper = study.load(repo / "config" / "paper.yaml")["difficulty"]
    assert paper["scale"] == "raw" and paper["samples"] > 1 and paper["temperature"] > 0


def test_spread_needs_sampled_answers(tmp_path):
    """spread's second signal is the sampled answers' length: with self_rank (no answers) it would change
    nothing, so the config is refused, naming the key."""
    import yaml

    from ilr import config as cfg
    from ilr import study

    repo = Path(__file__).resolve().parents[1]
    c = yaml.safe_load((repo / "config" / "paper.yaml").read_text())
    c["difficulty"]["scale"] = "spread"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(c))
    with pytest.raises(cfg.ConfigError, match=r"difficulty\.method: 'empirical' was expected"):
        study.load(path)
    c["difficulty"]["scale"] = "percentile"   # a percentile needs no second signal
    path.write_text(yaml.safe_dump(c))
    assert study.load(path)["difficulty"]["scale"] == "percentile"


def test_difficulty_stage_spreads_real_ties(warm_study):
    """`ilr difficulty` (empirical, scale spread) on two warm tiny models and questions they answer right
    only sometimes: each row carries the raw D_q (1 - pass rate over 2 x 4 answers: a multiple of 1/8), the
    answers' mean length and the refined D_q, which is `refine` of those two, within half a step (1/16) of the
    raw value, in the raw order, with more distinct values than the raw one; the figure is written."""
    import yaml

    from conftest import run_ilr

    from ilr.difficulty import refine
    from ilr.io import read_jsonl

    cfg, config_path, d = warm_study
    cfg["difficulty"].update(method="empirical", samples=4, temperature=1.0, max_new_tokens=24, scale="spread")
    config_path.write_text(yaml.safe_dump(cfg))
    r = run_ilr("difficulty", "--config", str(config_path), "--group", "group1", "--train", str(d / "train.jsonl"),
                "--out", str(d / "difficulty.jsonl"), "--figure", str(d / "difficulty.png"))
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_jsonl(d / "difficulty.jsonl")
    raw = [x["raw"] for x in rows]
    assert all(abs(8 * x - round(8 * x)) < 1e-9 for x in raw)
    assert len(set(raw)) < len(raw)                       # the premise: the raw D_q ties
    assert all(x["tiebreak"] > 0 for x in rows)
    assert [x["difficulty"] for x in rows] == refine(raw, [x["tiebreak"] for x in rows], "spread")
    for a in rows:
        assert abs(a["difficulty"] - a["raw"]) <= 1 / 16 + 1e-12
        assert all(a["difficulty"] < b["difficulty"] for b in rows if a["raw"] < b["raw"])
    assert len({x["difficulty"] for x in rows}) > len(set(raw))
    assert (d / "difficulty.png").read_bytes()[:4] == b"\x89PNG"
