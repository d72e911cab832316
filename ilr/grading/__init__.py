"""Rule-based grading: `grade(record, completion) -> Grade(correct, extracted, reason)`.

The record's `kind` picks the grader (math | choice | code) and its `benchmark` the extraction
rules (RULES below; unknown benchmarks get their kind's defaults):
- math: extract the final answer (ilr.grading.extract.extract_math), compare with the gold by a
  normalised string match, then math-verify in a worker process under a time limit
  (ilr.grading.mathcheck). gsm8k: thousands commas dropped, last number as fallback. aime24/aime25:
  the last integer of the extracted answer is compared as an integer (golds such as `025`).
- choice: the chosen letter (or the text of an option) against the gold letter.
- code: the program (last fenced block) with the record's `test_setup` and `tests` in the sandbox
  (ilr.grading.sandbox); correct when every assert passes.
"""

from __future__ import annotations

import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from ilr.grading.extract import extract_choice, extract_code, extract_math, last_boxed  # noqa: F401
from ilr.grading import mathcheck


@dataclasses.dataclass
class Grade:
    correct: bool
    extracted: str | None
    reason: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# benchmark -> rules (kind is the record's; these say how to read answers)
RULES = {
    "gsm8k": {"number_fallback": True, "strip_commas": True},
    "aime24": {"integer": True},
    "aime25": {"integer": True},
    "tiny_arith": {"number_fallback": False},
}
MATH_TIMEOUT = 10.0


def _math(record: dict, completion: str) -> Grade:
    rules = RULES.get(record.get("benchmark", ""), {})
    gold = str(record.get("answer", ""))
    extracted = extract_math(completion, number_fallback=rules.get("number_fallback", False))
    if extracted is None:
        return Grade(False, None, "no final answer found (no \\boxed{}, '####' or 'The answer is')")
    pred = extracted
    if rules.get("strip_commas"):
        pred = re.sub(r"(?<=\d),(?=\d{3})", "", pred)
        gold = re.sub(r"(?<=\d),(?=\d{3})", "", gold)
    if rules.get("integer"):
        ints = re.findall(r"-?\d+", pred.replace(",", ""))
        try:
            ok = bool(ints) and int(ints[-1]) == int(gold)
        except ValueError:
            ok = False
        return Grade(ok, extracted, None if ok else f"wrong answer: {ints[-1] if ints else extracted!r} != {gold}")
    ok, note = mathcheck.equivalent(gold, pred, MATH_TIMEOUT)
    if ok:
        return Grade(True, extracted, None)
    return Grade(False, extracted, note if note else "wrong answer")


def _choice(record: dict, completion: str) -> Grade:
    gold = str(record.get("answer", "")).strip().upper()
    letter = extract_choice(completion, record.get("options"))
    if letter is None:
        return Grade(False, None, "no choice found")
    if letter == gold:
        return Grade(True, letter, None)
    return Grade(False, letter, f"chose {letter}, gold {gold}")


def _code(record: dict, completion: str, limits=None) -> Grade:
    from ilr.grading.sandbox import check_program

    program = extract_code(completion)
    if not program:
        return Grade(False, None, "no code found")
    tests = record.get("tests") or []
    if not tests:
        return Grade(False, program, "record has no tests")
    res = check_program(program, tests, record.get("test_setup") or "", limits)
    return Grade(res.ok, program, res.reason)


def grade(record: dict, completion: str, limits=None) -> Grade:
    """Grade one completion against its record (see the module docstring)."""
    kind = record.get("kind")
    if kind is None:
        from ilr.benchmarks import kind_of

        kind = kind_of(record.get("benchmark"))
    if not isinstance(completion, str):
        return Grade(False, None, "no completion")
    if kind == "math":
        return _math(record, completion)
    if kind == "choice":
        return _choice(record, completion)
    if kind == "code":
        return _code(record, completion, limits)
    raise ValueError(f"unknown record kind {kind!r} (record {record.get('id')!r})")


def grade_many(records: Sequence[dict], completions: Sequence[str], workers: int = 2, limits=None,
               progress: bool = False) -> list[Grade]:
    """Grade pairs in order; sandbox runs and math-verify checks go `workers` at a time (threads
    driving separate processes)."""
    if len(records) != len(completions):
        raise ValueError(f"{len(records)} records but {len(completions)} completions")
    pairs = list(zip(records, completions))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pairs), desc="grading", unit="answer")

    def one(pair):
        g = grade(pair[0], pair[1], limits)
        if bar is not None:
            bar.update(1)
        return g

    try:
        if workers <= 1 or len(pairs) <= 1:
            return [one(p) for p in pairs]
        with ThreadPoolExecutor(max_workers=workers) as ex:
            return list(ex.map(one, pairs))
    finally:
        if bar is not None:
            bar.close()
