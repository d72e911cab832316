"""`python -m ilr grade IN.jsonl OUT.jsonl`: grade model outputs.

Each input line is a JSON object with `completion` and either `kind` (math | choice | code) or
`benchmark` (a registry name, which implies the kind and the extraction rules); math and choice lines
carry `answer` (the gold), choice lines `options` (a list), code lines `tests` (a list of assert lines,
and optionally `test_setup`) and no `answer` (a code line's `answer`, if any, is kept, not used).
Every field is kept; the output line adds `correct` (bool), `extracted` (str or null) and `reason`
(str or null). A summary line (n, correct, accuracy) is printed at the end.

Every mistake in the input (a missing or unreadable file, a line that is not UTF-8 or not a JSON
object, a missing or ill-typed key, an unknown kind, an empty file) is reported before anything is
graded, as one line naming the file, the line and the key, with exit status 2 and no traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ilr.io import DataError, iter_jsonl, write_jsonl

KINDS = ("math", "code", "choice")


def add_arguments(parser) -> None:
    parser.add_argument("input", help="JSONL: one object per answer to grade")
    parser.add_argument("output", help="JSONL: the input objects plus correct, extracted, reason")
    parser.add_argument("--workers", type=int, default=2, help="parallel sandbox / math-verify workers")


def read_input(path: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line (ilr.io.iter_jsonl); an empty file is an error too."""
    rows = list(iter_jsonl(path))
    if not rows:
        raise DataError(f"{path}: no records to grade (the file is empty)")
    return rows


def _is_str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _a(v) -> str:
    """'a string', 'an object', ... for messages (JSON's names, not Python's)."""
    names = {str: "a string", dict: "an object", list: "a list", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(v), type(v).__name__)


def check_record(path: str, lineno: int, row: dict) -> dict:
    """The record to grade (kind filled in from the benchmark); DataError naming the key otherwise."""
    from ilr.benchmarks import REGISTRY

    where = f"{path}, line {lineno}"
    rec = dict(row)
    if "completion" not in rec:
        raise DataError(f"{where}: missing key 'completion'")
    if not isinstance(rec["completion"], str) and rec["completion"] is not None:
        raise DataError(f"{where}, key 'completion': must be a string (or null), got {_a(rec['completion'])}")
    kind = rec.get("kind")
    if kind is None:
        b = rec.get("benchmark")
        if b is None:
            raise DataError(f"{where}: needs key 'kind' ({', '.join(KINDS)}) or 'benchmark' "
                            f"(known: {', '.join(REGISTRY)})")
        if b not in REGISTRY:
            raise DataError(f"{where}, key 'benchmark': unknown benchmark {b!r} (known: {', '.join(REGISTRY)}); "
                            f"or give 'kind' ({', '.join(KINDS)})")
        kind = rec["kind"] = REGISTRY[b].kind
    if kind not in KINDS:
        raise DataError(f"{where}, key 'kind': unknown kind {kind!r} (known: {', '.join(KINDS)})")
    # a program is judged by its tests alone: only math and choice lines need a gold answer
    if kind != "code":
        if "answer" not in rec:
            raise DataError(f"{where}: missing key 'answer' (the gold answer, needed for kind '{kind}')")
        if not isinstance(rec["answer"], (str, int, float)) or isinstance(rec["answer"], bool):
            raise DataError(f"{where}, key 'answer': must be a string or a number, got {_a(rec['answer'])}")
    if kind == "code":
        if "tests" not in rec:
            raise DataError(f"{where}: missing key 'tests' (a list of assert lines, needed for kind 'code')")
        if not _is_str_list(rec["tests"]) or not rec["tests"]:
            got = "an empty list" if rec["tests"] == [] else _a(rec["tests"])
            raise DataError(f"{where}, key 'tests': must be a non-empty list of assert lines (strings), got {got}")
        if not isinstance(rec.get("test_setup") or "", str):
            raise DataError(f"{where}, key 'test_setup': must be a string, got {_a(rec['test_setup'])}")
    if kind == "choice":
        if rec.get("options") is not None and not _is_str_list(rec["options"]):
            raise DataError(f"{where}, key 'options': must be a list of strings, got {_a(rec['options'])}")
        rec.setdefault("options", None)
    return rec


def main(args) -> int:
    try:
        return _main(args)
    except DataError as e:  # a user error: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args) -> int:
    if args.workers < 1:
        raise DataError(f"--workers must be at least 1, got {args.workers}")
    rows = read_input(args.input)
    records = [check_record(args.input, lineno, row) for lineno, row in rows]
    out_dir = Path(args.output).resolve().parent
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{args.output}: {out_dir} is not a directory")

    from ilr.grading import grade_many

    grades = grade_many(records, [r["completion"] for r in records], workers=args.workers, progress=True)
    out = [dict(row, correct=g.correct, extracted=g.extracted, reason=g.reason) for (_, row), g in zip(rows, grades)]
    try:
        write_jsonl(args.output, out)
    except OSError as e:
        raise DataError(f"{args.output}: cannot write ({e.strerror})") from None
    n_ok = sum(g.correct for g in grades)
    print(f"graded {len(out)}: {n_ok} correct ({n_ok / len(out):.1%}) -> {args.output}")
    return 0
