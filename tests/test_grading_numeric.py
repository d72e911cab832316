"""Numeric answers compared without math-verify (ilr.grading.numeric): the values, what is left to
math-verify, and agreement with math-verify wherever a verdict is given here (on the real golds)."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import pytest

from ilr.grading.numeric import not_a_number, same, value

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("s,x", [
    (r"\frac{5}{6}", Fraction(5, 6)), (r"\dfrac56", Fraction(5, 6)), (r"-\tfrac{5}{6}", Fraction(-5, 6)),
    ("7/2", Fraction(7, 2)), ("3^{4}", Fraction(81)), (r"\sqrt[3]{64}", Fraction(4)), (r"\sqrt{49}", Fraction(7)),
    (r"2 \cdot 3 + 1", Fraction(7)), (r"\left( -\frac{1}{4} \right)", Fraction(-1, 4)), ("$12$", Fraction(12)),
])
def test_exact_values(s, x):
    v = value(s)
    assert v is not None and v.x == x and v.exact


@pytest.mark.parametrize("s,x", [(r"3\sqrt{2}", 3 * 2 ** 0.5), (r"\frac{\pi}{4}", 0.7853981633974483),
                                 (r"\sqrt{8}", 8 ** 0.5), (r"2\pi", 6.283185307179586)])
def test_irrational_values(s, x):
    assert abs(float(value(s).x) - x) < 1e-12


@pytest.mark.parametrize("s", [
    "x+1", "(1, 2)", "[0, 1)", "12,5", "45\\%", "30^\\circ", "5\\text{ cm}", r"\infty", "x = 3", "2 3",
    r"4\frac{1}{2}",            # a mixed number: a reader means 4 + 1/2
    r"\frac{1}{0}", r"\sqrt{-4}", "1.", "10^{100000}", "e^{2}", "3!", "",
])
def test_left_to_math_verify(s):
    assert value(s) is None


def test_same():
    v = value
    assert same(v(r"\sqrt{18}"), v(r"3\sqrt{2}")) is True
    assert same(v(r"\frac{3}{4}"), v("0.75")) is True
    assert same(v(r"\frac{3}{4}"), v(r"\frac{4}{3}")) is False
    assert same(v(r"\frac{1}{7}"), v("0.142857")) is None      # math-verify's rounding decides
    assert same(v(r"\frac{1}{7}"), v("0.15")) is False
    assert same(v("45"), v("0.45")) is None                    # maybe a percentage: math-verify decides
    assert same(v(r"2^{-60}"), v("0")) is False                # relative, not absolute
    assert same(v(r"\pi"), v("3.14")) is False


@pytest.mark.parametrize("s,kind", [
    ("4, -3", "collection"), (r"\{2, 9\}", "collection"), ("(1,5]", "collection"), ("(x, 3x)", "collection"),
    (r"\left( \frac{1}{2}, 4 \right)", "collection"), (r"\text{north}", "text"), ("odd", "text"),
    ("7, 7", None), ("[7, 7]", None), (r"\{7\}", None), ("12,000", None), ("y", None), ("x^2-1", None),
    ("(a, a)", None),
])
def test_not_a_number(s, kind):
    assert not_a_number(s) == kind


@pytest.mark.skipif(not DATA.is_dir(), reason=f"real benchmark files not found at {DATA}")
def test_agrees_with_math_verify_on_real_golds():
    """Every verdict given here on pairs of real golds (different values, and one value in different
    forms) is math-verify's verdict too."""
    from ilr.benchmarks import load_records
    from ilr.grading import _mathworker
    from ilr.grading.extract import read_gold

    golds = [read_gold(r["answer"])[1] for r in
             load_records({"source": "math500", "path": str(DATA / "math500/test.jsonl")})]
    nums = [(g, value(g)) for g in golds if value(g) is not None]
    rng = random.Random(7)
    pairs = [(rng.choice(nums), rng.choice(nums)) for _ in range(150)]
    for g, vg in nums[:150]:  # the same value written as a decimal and as a fraction of itself
        pairs.append(((g, vg), (f"{float(vg.x):.9f}", value(f"{float(vg.x):.9f}"))))
        pairs.append(((g, vg), (rf"\frac{{2 \cdot ({g})}}{{2}}", value(rf"\frac{{2 \cdot ({g})}}{{2}}"))))
    checked = 0
    for (a, va), (b, vb) in pairs:
        if vb is None or (verdict := same(va, vb)) is None:
            continue
        mv = _mathworker.check(("answer", a), [("answer", b)], True)["ok"]
        assert mv == verdict, (a, b, verdict)
        checked += 1
    assert checked >= 200
    # a number against a list or a word: never equal, for math-verify either
    from ilr.grading.mathcheck import quick_check

    lists = [g for g in golds if not_a_number(g)]
    for _ in range(60):
        a, b = rng.choice(nums)[0], rng.choice(lists)
        for gold, pred in ((a, b), (b, a)):
            assert quick_check(("answer", gold), [("answer", pred)]).ok is False
            assert not _mathworker.check(("answer", gold), [("answer", pred)], True)["ok"], (gold, pred)
