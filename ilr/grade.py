"""`python -m ilr grade IN.jsonl OUT.jsonl`: grade model outputs.

Each input line is a JSON object with `completion`, `answer`, and either `kind` (math | choice | code)
or `benchmark` (a registry name, which implies the kind and the extraction rules), plus `tests`
(and optionally `test_setup`) for code and `options` for choice. Every field is kept; the output
line adds `correct` (bool), `extracted` (str or null) and `reason` (str or null). A summary line
(n, correct, accuracy) is printed at the end.
"""

from __future__ import annotations

from ilr.io import DataError, read_jsonl, write_jsonl


def add_arguments(parser) -> None:
    parser.add_argument("input", help="JSONL: one object per answer to grade")
    parser.add_argument("output", help="JSONL: the input objects plus correct, extracted, reason")
    parser.add_argument("--workers", type=int, default=2, help="parallel sandbox / math-verify workers")


def main(args) -> int:
    from ilr.benchmarks import REGISTRY
    from ilr.grading import grade_many

    rows = read_jsonl(args.input)
    records = []
    for lineno, row in enumerate(rows, 1):
        rec = dict(row)
        if "completion" not in rec:
            raise DataError(f"{args.input}, record {lineno}: missing key 'completion'")
        if "answer" not in rec:
            raise DataError(f"{args.input}, record {lineno}: missing key 'answer'")
        if not rec.get("kind"):
            b = rec.get("benchmark")
            if b not in REGISTRY:
                raise DataError(f"{args.input}, record {lineno}: needs 'kind' or a known 'benchmark' "
                                f"(got {b!r}; known: {', '.join(REGISTRY)})")
            rec["kind"] = REGISTRY[b].kind
        if rec["kind"] == "code" and not rec.get("tests"):
            raise DataError(f"{args.input}, record {lineno}: missing key 'tests' (code)")
        if rec["kind"] == "choice" and "options" not in rec:
            rec["options"] = None
        records.append(rec)
    grades = grade_many(records, [r["completion"] for r in records], workers=args.workers, progress=True)
    out = [dict(row, correct=g.correct, extracted=g.extracted, reason=g.reason) for row, g in zip(rows, grades)]
    write_jsonl(args.output, out)
    n_ok = sum(g.correct for g in grades)
    print(f"graded {len(out)}: {n_ok} correct ({n_ok / max(len(out), 1):.1%}) -> {args.output}")
    return 0
