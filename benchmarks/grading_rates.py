"""Grading rates on the real benchmark files (shared/data): each benchmark's own worked solutions graded
against their gold (should be correct), and against another record's gold (should be wrong), and the
MBPP reference programs against their tests in the sandbox. Used by tests/test_grading.py (samples)
and docs/grading.md (all records): `python benchmarks/grading_rates.py [--data DIR] [--limit N]`."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ilr.benchmarks import load_records  # noqa: E402
from ilr.grading import grade_many  # noqa: E402
from ilr.grading.mathcheck import normalize  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# benchmark -> (file, how to get the worked solution from a record)
SOLUTIONS = {
    "gsm8k": ("gsm8k/test.jsonl", lambda r: r["metadata"]["solution"]),
    "math500": ("math500/test.jsonl", lambda r: r["metadata"]["solution"]),
    "minerva_math": ("minerva_math/test.jsonl", lambda r: r["metadata"]["solution"]),
    "aime24": ("aime24/test.jsonl", lambda r: r["metadata"]["solution"]),
    "math_train": ("math_train/train.jsonl", lambda r: r["metadata"]["solution"]),
    "mmlu_pro": ("mmlu_pro/validation.jsonl", lambda r: r["metadata"]["cot_content"]),
}


def sample(records: list[dict], limit: int | None, seed: int = 0) -> list[dict]:
    if limit is None or limit >= len(records):
        return records
    keep = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[k] for k in keep]


def shifted_golds(records: list[dict]) -> list[dict]:
    """Each record with the gold of the next record whose gold differs (normalised), cyclically."""
    out = []
    for i, r in enumerate(records):
        j = (i + 1) % len(records)
        while normalize(records[j]["answer"]) == normalize(r["answer"]) and j != i:
            j = (j + 1) % len(records)
        out.append(dict(r, answer=records[j]["answer"]))
    return out


def solution_rates(name: str, data: Path = DATA, limit: int | None = None, workers: int = 2) -> dict:
    rel, sol = SOLUTIONS[name]
    recs = sample(load_records({"source": name, "path": str(data / rel)}), limit)
    comps = [sol(r) for r in recs]
    t = time.perf_counter()
    right = grade_many(recs, comps, workers=workers)
    t_right = time.perf_counter() - t
    wrong = grade_many(shifted_golds(recs), comps, workers=workers)
    return {"benchmark": name, "n": len(recs), "correct_on_own": sum(g.correct for g in right),
            "wrong_on_shifted": sum(not g.correct for g in wrong), "seconds_own": t_right,
            "fail_own": [(r["id"], r["answer"], g.extracted, g.reason) for r, g in zip(recs, right) if not g.correct],
            "pass_shifted": [(r["id"], r["answer"], g.extracted) for r, g in zip(shifted_golds(recs), wrong)
                             if g.correct]}


def mbpp_rates(data: Path = DATA, limit: int | None = None, workers: int = 2) -> dict:
    recs = sample(load_records({"source": "mbpp", "path": str(data / "mbpp/test.jsonl")}), limit)
    t = time.perf_counter()
    grades = grade_many(recs, [r["answer"] for r in recs], workers=workers)
    return {"benchmark": "mbpp", "n": len(recs), "correct_on_own": sum(g.correct for g in grades),
            "seconds_own": time.perf_counter() - t,
            "fail_own": [(r["id"], g.reason) for r, g in zip(recs, grades) if not g.correct]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    names = a.only or [*SOLUTIONS, "mbpp"]
    for name in names:
        res = mbpp_rates(Path(a.data), a.limit) if name == "mbpp" else solution_rates(name, Path(a.data), a.limit)
        print(json.dumps(res, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
