"""Rule-based grading: `grade(record, completion) -> Grade(correct, extracted, reason)`.

The record's `kind` picks the grader (math | choice | code) and its `benchmark` the extraction
rules (RULES below; unknown benchmarks get their kind's defaults):
- math: find the final answer by the steps of `RULES[benchmark]["steps"]` in order (default
  extract.MATH_STEPS: the benchmark's own markers first, `\\boxed{}` and `#### N`, then "The answer
  is X", a completion that is only a formula, then math-verify's own extraction over the whole
  completion, then a text answer), and compare it with the gold: a normalised string match, numbers
  (also fractions, roots, pi) by value where the verdict is certain (ilr.grading.numeric), else
  math-verify in a worker process under a time limit (ilr.grading.mathcheck).
  gsm8k: thousands commas dropped, last number as the final fallback. aime24/aime25: the last integer
  of a rule-based answer is compared as an integer (golds such as `025`). tiny_arith: the rule-based
  markers only, no math-verify reading (the answer format is part of what the tiny model learns).
- choice: the chosen letter (or the text of an option) against the gold letter.
- code: the program (last fenced block) with the record's `test_setup` and `tests` in the sandbox
  (ilr.grading.sandbox); correct when every assert passes. `grade_many` gives the programs Python refuses
  to compile their run's result from one compile-only sandboxed run for the batch. Where the sandbox
  cannot hide the machine (no namespaces), the grade's reason says so.
"""

from __future__ import annotations

import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from ilr.grading.extract import (  # noqa: F401
    MATH_STEPS, extract_choice, extract_code, extract_math, find_math_answer, last_boxed, read_gold)
from ilr.grading import mathcheck


@dataclasses.dataclass
class Grade:
    correct: bool
    extracted: str | None
    reason: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# benchmark -> rules (kind is the record's; these say how to read answers). "steps": the extraction
# steps in priority order (ilr.grading.extract.MATH_STEPS is the default).
RULES = {
    "gsm8k": {"steps": MATH_STEPS + ("last_number",), "strip_commas": True},
    "aime24": {"integer": True},
    "aime25": {"integer": True},
    # the tiny model is rewarded for its answer format too: only its rule-based markers count
    "tiny_arith": {"steps": ("boxed", "hashes", "answer_phrase")},
}
MATH_TIMEOUT = 10.0
_NOTHING = "no final answer found (no \\boxed{}, '####', 'The answer is' or formula math-verify can read)"


@dataclasses.dataclass
class _MathJob:
    """A math comparison that needs math-verify (a worker process)."""
    gold: tuple
    preds: list
    first_found: bool


@dataclasses.dataclass
class _CodeJob:
    """A program to run in the sandbox: `code` is the text with its tests (ilr.grading.sandbox.compose)."""
    program: str
    code: str
    marker: str


def _math_plan(record: dict, completion: str) -> "Grade | _MathJob":
    """Extraction and the cheap checks, in this process: a Grade when they decide, else the job for a
    math-verify worker."""
    rules = RULES.get(record.get("benchmark", ""), {})
    gold = str(record.get("answer", ""))
    found = find_math_answer(completion, rules.get("steps", MATH_STEPS), gold)
    if found is None:
        return Grade(False, None, _NOTHING)
    cands = list(found.candidates)
    if rules.get("strip_commas"):
        cands = [re.sub(r"(?<=\d),(?=\d{3})", "", c) for c in cands]
        gold = re.sub(r"(?<=\d),(?=\d{3})", "", gold)
    if rules.get("integer") and found.whole is None:
        ints = re.findall(r"-?\d+", cands[0].replace(",", ""))
        try:
            ok = bool(ints) and int(ints[-1]) == int(gold)
        except ValueError:
            ok = False
        return Grade(ok, cands[0], None if ok else f"wrong answer: {ints[-1] if ints else cands[0]!r} != {gold}")
    # a completion math-verify reads whole comes first; its text fallbacks count only if it reads nothing
    preds = ([("text", found.whole)] if found.whole is not None else []) + [("answer", c) for c in cands]
    gold_form = read_gold(gold)
    quick = mathcheck.quick_check(gold_form, preds)
    if quick is not None:
        return Grade(quick.ok, quick.extracted, None if quick.ok else "wrong answer")
    return _MathJob(gold_form, preds, found.whole is not None)


def _math_finish(job: _MathJob, worker=None) -> Grade:
    verdict = mathcheck.worker_check(job.gold, job.preds, job.first_found, MATH_TIMEOUT, worker)
    if verdict.ok:
        return Grade(True, verdict.extracted, None)
    if job.first_found and verdict.note and verdict.note.startswith("no answer found"):
        return Grade(False, None, _NOTHING)
    return Grade(False, verdict.extracted, verdict.note or "wrong answer")


def _math(record: dict, completion: str) -> Grade:
    plan = _math_plan(record, completion)
    return plan if isinstance(plan, Grade) else _math_finish(plan)


def _choice(record: dict, completion: str) -> Grade:
    gold = str(record.get("answer", "")).strip().upper()
    letter = extract_choice(completion, record.get("options"))
    if letter is None:
        return Grade(False, None, "no choice found")
    if letter == gold:
        return Grade(True, letter, None)
    return Grade(False, letter, f"chose {letter}, gold {gold}")


def _code_plan(record: dict, completion: str) -> "Grade | _CodeJob":
    """The program and its tests, or a Grade where there is nothing to run."""
    from ilr.grading.sandbox import compose

    program = extract_code(completion)
    if not program:
        return Grade(False, None, "no code found")
    tests = record.get("tests") or []
    if not isinstance(tests, list):  # a string would be run character by character
        raise ValueError(f"record {record.get('id')!r}: 'tests' must be a list of assert lines, "
                         f"got {type(tests).__name__}")
    if not tests:
        return Grade(False, program, "record has no tests")
    return _CodeJob(program, *compose(program, tests, record.get("test_setup") or ""))


def _code_grade(program: str, res) -> Grade:
    # a sandbox that could not hide the machine is said in every grade, right or wrong
    notes = [res.reason] + ([f"warning: {res.warning}"] if res.warning else [])
    return Grade(res.ok, program, "; ".join(n for n in notes if n) or None)


def _code(record: dict, completion: str, limits=None) -> Grade:
    from ilr.grading.sandbox import run_composed

    plan = _code_plan(record, completion)
    if isinstance(plan, Grade):
        return plan
    return _code_grade(plan.program, run_composed(plan.code, plan.marker, limits))


def grade(record: dict, completion: str, limits=None) -> Grade:
    """Grade one completion against its record (see the module docstring)."""
    kind = _kind(record)
    if not isinstance(completion, str):
        return Grade(False, None, "no completion")
    if kind == "math":
        return _math(record, completion)
    if kind == "choice":
        return _choice(record, completion)
    if kind == "code":
        return _code(record, completion, limits)
    raise ValueError(f"unknown record kind {kind!r} (record {record.get('id')!r})")


def _kind(record: dict) -> str | None:
    kind = record.get("kind")
    if kind is None:
        from ilr.benchmarks import kind_of

        kind = kind_of(record.get("benchmark"))
    return kind


def grade_many(records: Sequence[dict], completions: Sequence[str], workers: int = 2, limits=None,
               progress: bool = False) -> list[Grade]:
    """Grade pairs in order. Extraction and the cheap checks run here first, then one compile-only sandboxed
    run decides the programs Python refuses to compile (ilr.grading.sandbox.syntax_errors); what is left
    (math-verify comparisons, sandboxed programs) goes `workers` at a time (threads driving separate processes),
    with the math-verify workers started beforehand. The rest is handed out in runs of neighbouring
    pairs, each run to one math-verify worker: neighbours often share a gold (several samples of one
    question), which that worker has then parsed already."""
    from ilr.grading.sandbox import run_composed, syntax_errors

    if len(records) != len(completions):
        raise ValueError(f"{len(records)} records but {len(completions)} completions")
    out: list[Grade | None] = [None] * len(records)
    jobs: list[tuple[int, object]] = []  # (index, a _MathJob or _CodeJob, or the pair for grade())
    for i, (rec, comp) in enumerate(zip(records, completions)):
        kind = _kind(rec) if isinstance(comp, str) else None
        plan = _math_plan(rec, comp) if kind == "math" else _code_plan(rec, comp) if kind == "code" else (rec, comp)
        if isinstance(plan, Grade):
            out[i] = plan
        else:
            jobs.append((i, plan))
    code = [(i, job) for i, job in jobs if isinstance(job, _CodeJob)]
    if len(code) > 1:   # programs Python refuses to compile: one compile-only run for them all (sandbox.py)
        for (i, job), res in zip(code, syntax_errors([job.code for _, job in code], limits)):
            if res is not None:
                out[i] = _code_grade(job.program, res)
        jobs = [(i, job) for i, job in jobs if out[i] is None]
    n_math = sum(isinstance(j, _MathJob) for _, j in jobs)
    workers = max(int(workers), 1)
    if n_math:
        mathcheck.warm(min(workers, n_math))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(records), initial=len(records) - len(jobs), desc="grading", unit="answer")

    def run(chunk: list) -> list[Grade]:
        worker, done = None, []
        try:
            for _, job in chunk:
                if isinstance(job, _MathJob):
                    worker = worker or mathcheck._acquire()
                    done.append(_math_finish(job, worker))
                elif isinstance(job, _CodeJob):
                    done.append(_code_grade(job.program, run_composed(job.code, job.marker, limits)))
                else:
                    done.append(grade(job[0], job[1], limits))
                if bar is not None:
                    bar.update(1)
        finally:
            if worker is not None:
                mathcheck._release(worker)
        return done

    size = min(32, max(1, -(-len(jobs) // (workers * 8))))  # small enough to keep every worker busy
    chunks = [jobs[k:k + size] for k in range(0, len(jobs), size)]
    try:
        if workers == 1 or len(chunks) <= 1:
            results = [run(c) for c in chunks]
        else:
            with ThreadPoolExecutor(max_workers=workers) as ex:
                results = list(ex.map(run, chunks))
    finally:
        if bar is not None:
            bar.close()
    for chunk, done in zip(chunks, results):
        for (i, _), g in zip(chunk, done):
            out[i] = g
    return out  # type: ignore[return-value]
