"""Grading speed: seconds to grade all MATH-500 reference solutions and all MBPP test-split reference
programs (sandboxed), with rates per second. `python benchmarks/grading_speed.py [--data DIR] [--workers N]`.
The last line is the headline."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ilr.benchmarks import load_records  # noqa: E402
from ilr.grading import grade_many  # noqa: E402
from ilr.grading import mathcheck  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def timed(records, completions, workers):
    t = time.perf_counter()
    grades = grade_many(records, completions, workers=workers)
    for r, g in zip(records, grades):
        if not g.correct and r["kind"] == "code":
            print(f"  {r['id']}: {g.reason}")
    return time.perf_counter() - t, sum(g.correct for g in grades)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    data = Path(a.data)
    math = load_records({"source": "math500", "path": str(data / "math500/test.jsonl")})
    mbpp = load_records({"source": "mbpp", "path": str(data / "mbpp/test.jsonl")})
    mathcheck.equivalent("1", "2")  # start a math-verify worker outside the timing
    sols = [r["metadata"]["solution"] for r in math]
    t1, ok1 = timed(math, sols, a.workers)
    print(f"MATH-500 reference solutions: {len(math)} in {t1:.2f} s ({len(math) / t1:.0f}/s), {ok1} correct")
    # the same solutions against the next record's gold: no exact match, so each pair goes through
    # math-verify, except pairs of two plain numbers (decided by mathcheck's number fast path)
    shifted = [dict(r, answer=math[(i + 1) % len(math)]["answer"]) for i, r in enumerate(math)]

    def plain(answer: str) -> bool:
        return bool(mathcheck._PLAIN_NUMBER.fullmatch(mathcheck.normalize(mathcheck._unwrap_dollars(answer))))

    numeric = sum(plain(r["answer"]) and plain(s["answer"]) for r, s in zip(math, shifted))
    t2, ok2 = timed(shifted, sols, a.workers)
    print(f"MATH-500 solutions vs another gold (math-verify path; {numeric} plain-number pairs take the "
          f"number fast path): {len(math)} in {t2:.2f} s ({len(math) / t2:.1f}/s), {ok2} graded correct")
    t3, ok3 = timed(mbpp, [r["answer"] for r in mbpp], a.workers)
    print(f"MBPP test reference programs (sandbox): {len(mbpp)} in {t3:.2f} s ({len(mbpp) / t3:.1f}/s), {ok3} pass")
    print(f"HEADLINE: MATH-500 {len(math) / t1:.0f}/s (string path), {len(math) / t2:.1f}/s (math-verify path); "
          f"MBPP {len(mbpp) / t3:.1f} programs/s; workers={a.workers}")


if __name__ == "__main__":
    main()
