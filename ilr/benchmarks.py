"""The benchmark registry: where each benchmark's data comes from and how a row becomes a record.

`load_records(spec)` takes a config entry:
  {source: gsm8k}                                   the hub default (datasets.load_dataset; needs network)
  {source: gsm8k, path: /data/gsm8k/test.jsonl}     a local JSONL, JSON (a list, or {"data": [...]}) or Parquet file
  {source: tiny_arith, n: 200, seed: 101, params: {...}}   generated (ilr.tiny.task.generate)
  optional `n`: with `seed`, a seeded sample of n rows (kept in file order); without, the first n.
Every dataset of the study (training, validation, benchmarks) is a JSON Lines file of records:
  id          str, unique in its file
  question    str (for code: the task and its tests; for choice: without the options)
  answer      str: the gold answer; for choice the gold LETTER; for code the reference program
  kind        "math" | "code" | "choice"   (picks the grader, ilr.grading)
  benchmark   str: the registry source name (picks the extraction rules, e.g. gsm8k's `#### N`)
  tests       list[str] of assert lines (code)     test_setup  str (code, may be "")
  options     list[str] (choice)
  metadata    dict: the source fields not otherwise used (e.g. level, subject, solution)

Gold answers (the local file layouts are described in shared/data/SOURCES.md):
  gsm8k          the N of the final `#### N` line of `answer` (thousands commas removed)
  math500        `answer`
  minerva_math   the last `\\boxed{}` of `solution` (or `answer` where a copy has one)
  olympiadbench  `final_answer[0]`
  aime24, aime25 `answer`
  math_train     the last `\\boxed{}` of `solution`
  mbpp           reference program `code`; tests `test_list`; setup `test_setup_code`;
                 question = `text` + "\\n" + the test lines (the paper-style prompt shows the tests)
  mmlu_pro       options `options`, gold letter `answer`
  gpqa_diamond   options = the correct and three incorrect answers, shuffled with a seed derived from
                 the record id (so the gold letter is reproducible), gold = the correct one's letter
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import string
from pathlib import Path
from typing import Any, Callable

from ilr.io import DataError, iter_jsonl

LETTERS = string.ascii_uppercase


class MissingKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _get(row: dict, *keys: str) -> Any:
    """The first of `keys` present in `row` (MissingKey naming the first when none is)."""
    for k in keys:
        if k in row and row[k] is not None:
            return row[k]
    raise MissingKey(keys[0] if len(keys) == 1 else " or ".join(keys))


def _meta(row: dict, used: set[str]) -> dict:
    return {k: v for k, v in row.items() if k not in used}


def _last_boxed(text: str, key: str) -> str:
    from ilr.grading.extract import last_boxed

    box = last_boxed(text)
    if box is None:
        raise MissingKey(f"\\boxed{{}} in {key}")
    return box.strip()


def _math_record(q: str, a: str, row: dict, used: set[str], rid: str) -> dict:
    return {"id": rid, "question": q, "answer": str(a), "kind": "math", "metadata": _meta(row, used)}


# ------------------------------------------------------------------------------------- mappers
def map_gsm8k(row: dict, i: int) -> dict:
    sol = str(_get(row, "answer"))
    if "####" not in sol:
        raise MissingKey("answer (#### N line)")
    gold = sol.rsplit("####", 1)[1].strip().replace(",", "")
    rec = _math_record(_get(row, "question"), gold, row, {"question"}, f"gsm8k-{i}")
    rec["metadata"]["solution"] = rec["metadata"].pop("answer")
    return rec


def map_math500(row: dict, i: int) -> dict:
    rid = str(row.get("unique_id") or f"math500-{i}")
    return _math_record(_get(row, "problem"), _get(row, "answer"), row, {"problem", "answer"}, rid)


def map_minerva(row: dict, i: int) -> dict:
    q = _get(row, "problem", "question")
    gold = row.get("answer") if row.get("answer") not in (None, "") else _last_boxed(_get(row, "solution"), "solution")
    return _math_record(q, gold, row, {"problem", "question", "answer"}, f"minerva-{row.get('idx', i)}")


def map_olympiad(row: dict, i: int) -> dict:
    fa = _get(row, "final_answer")
    gold = fa[0] if isinstance(fa, list) and fa else fa
    if not isinstance(gold, str) or not gold:
        raise MissingKey("final_answer[0]")
    return _math_record(_get(row, "question"), gold, row, {"question", "final_answer"}, f"olympiad-{row.get('id', i)}")


def _map_aime(name):
    def m(row: dict, i: int) -> dict:
        return _math_record(_get(row, "problem", "question"), str(_get(row, "answer")).strip(), row,
                            {"problem", "question", "answer"}, f"{name}-{row.get('id', i)}")
    return m


def map_math_train(row: dict, i: int) -> dict:
    gold = _last_boxed(_get(row, "solution"), "solution")
    rid = str(row.get("unique_id") or f"math-{i}")
    return _math_record(_get(row, "problem"), gold, row, {"problem"}, rid)


def map_mbpp(row: dict, i: int) -> dict:
    tests = list(_get(row, "test_list"))
    text = _get(row, "text", "prompt")
    return {"id": f"mbpp-{_get(row, 'task_id')}", "question": text + "\n" + "\n".join(tests),
            "answer": str(row.get("code", "")), "kind": "code", "tests": tests,
            "test_setup": str(row.get("test_setup_code") or ""),
            "metadata": _meta(row, {"text", "prompt", "test_list", "test_setup_code"})}


def map_mmlu_pro(row: dict, i: int) -> dict:
    options = [str(o) for o in _get(row, "options")]
    gold = str(_get(row, "answer")).strip().upper()
    if gold not in LETTERS[:len(options)]:
        raise MissingKey("answer (a letter within the options)")
    return {"id": f"mmlu_pro-{row.get('question_id', i)}", "question": _get(row, "question"), "answer": gold,
            "kind": "choice", "options": options, "metadata": _meta(row, {"question", "options", "answer"})}


def map_gpqa(row: dict, i: int) -> dict:
    correct = str(_get(row, "Correct Answer")).strip()
    wrong = [str(_get(row, f"Incorrect Answer {k}")).strip() for k in (1, 2, 3)]
    rid = str(row.get("Record ID") or i)
    options = [correct] + wrong
    seed = int(hashlib.sha256(rid.encode()).hexdigest()[:8], 16)
    random.Random(seed).shuffle(options)
    return {"id": f"gpqa-{rid}", "question": str(_get(row, "Question")).strip(), "kind": "choice",
            "answer": LETTERS[options.index(correct)], "options": options,
            "metadata": _meta(row, {"Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                                    "Incorrect Answer 3"})}


# ------------------------------------------------------------------------------------- registry
@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str
    kind: str
    hub_id: str | None = None
    hub_config: str | tuple[str, ...] | None = None   # several configs are concatenated
    split: str | None = None
    mapper: Callable[[dict, int], dict] | None = None
    generated: bool = False
    hub_loader: Callable[[], list[dict]] | None = None  # custom hub recipe (math_train)
    note: str = ""


def _math_train_from_hub() -> list[dict]:
    """MATH (EleutherAI/hendrycks_math, 7 subjects, train + test) minus the MATH-500 problems: 12,000."""
    from datasets import load_dataset

    test500 = {r["problem"] for r in load_dataset("HuggingFaceH4/MATH-500", split="test")}
    subjects = ["algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                "prealgebra", "precalculus"]
    rows = []
    for split in ("train", "test"):
        for s in subjects:
            for k, r in enumerate(load_dataset("EleutherAI/hendrycks_math", s, split=split)):
                if split == "test" and r["problem"] in test500:
                    continue
                rows.append(dict(r, unique_id=f"{split}/{s}/{k}"))
    return rows


REGISTRY: dict[str, Benchmark] = {b.name: b for b in [
    Benchmark("gsm8k", "math", "openai/gsm8k", "main", "test", map_gsm8k),
    Benchmark("math500", "math", "HuggingFaceH4/MATH-500", None, "test", map_math500),
    Benchmark("minerva_math", "math", "svc-huggingface/minerva-math", None, "test", map_minerva,
              note="hub copy of Qwen2.5-Math's minerva_math/test.jsonl; prefer a local path"),
    Benchmark("olympiadbench", "math", "Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train", map_olympiad),
    Benchmark("aime24", "math", "HuggingFaceH4/aime_2024", None, "train", _map_aime("aime24")),
    Benchmark("aime25", "math", "opencompass/AIME2025", ("AIME2025-I", "AIME2025-II"), "test", _map_aime("aime25")),
    Benchmark("math_train", "math", "EleutherAI/hendrycks_math", None, "train+test minus MATH-500", map_math_train,
              hub_loader=_math_train_from_hub),
    Benchmark("mbpp", "code", "google-research-datasets/mbpp", "full", "test", map_mbpp),
    Benchmark("mmlu_pro", "choice", "TIGER-Lab/MMLU-Pro", None, "test", map_mmlu_pro),
    Benchmark("gpqa_diamond", "choice", "Idavidrein/gpqa", "gpqa_diamond", "train", map_gpqa,
              note="gated on the hub: accept its terms and log in (huggingface-cli login)"),
    Benchmark("tiny_arith", "math", generated=True),
    Benchmark("tiny_code", "code", generated=True),
    Benchmark("tiny_choice", "choice", generated=True),
]}


def kind_of(name: str | None) -> str:
    if name not in REGISTRY:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name].kind


# ------------------------------------------------------------------------------------- loading
def _read_file(path: Path) -> list[tuple[str, dict]]:
    """Rows of a local file with their location ('line N' / 'item N' / 'row N') for error messages."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return [(f"line {lineno}", row) for lineno, row in iter_jsonl(path)]
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}); is the file truncated?") from e
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of objects (or {{\"data\": [...]}})")
        out = []
        for k, row in enumerate(data):
            if not isinstance(row, dict):
                raise DataError(f"{path}, item {k}: expected a JSON object, got {type(row).__name__}")
            out.append((f"item {k}", row))
        return out
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001  (pyarrow raises ArrowInvalid & co. on a damaged file)
            raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e}); is it truncated?") from e
        return [(f"row {k}", row) for k, row in enumerate(table.to_pylist())]
    raise DataError(f"{path}: unknown file type {suffix!r} (expected .jsonl, .json or .parquet)")


def _read_hub(b: Benchmark) -> list[tuple[str, dict]]:
    if b.hub_loader is not None:
        rows = b.hub_loader()
    else:
        from datasets import load_dataset

        configs = b.hub_config if isinstance(b.hub_config, tuple) else (b.hub_config,)
        rows = []
        for c in configs:
            rows += [dict(r) for r in load_dataset(b.hub_id, c, split=b.split)]
    where = f"{b.hub_id}" + (f" ({b.hub_config})" if b.hub_config else "") + f" split {b.split}"
    return [(f"{where} row {k}", r) for k, r in enumerate(rows)]


def _subset(items: list, n: int | None, seed: int | None) -> list:
    if n is None or n >= len(items):
        return items
    if seed is None:
        return items[:n]
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[k] for k in keep]


def load_records(spec: dict) -> list[dict]:
    """Records for one config entry (see the module docstring)."""
    if not isinstance(spec, dict) or "source" not in spec:
        raise DataError(f"benchmark spec {spec!r}: needs a `source` (one of {', '.join(REGISTRY)})")
    name = spec["source"]
    if name not in REGISTRY:
        raise DataError(f"benchmark spec: unknown source {name!r}; known: {', '.join(REGISTRY)}")
    b = REGISTRY[name]
    n, seed = spec.get("n"), spec.get("seed")
    if b.generated:
        from ilr.tiny import task

        recs = task.generate(name, n if n is not None else 200, seed if seed is not None else 0,
                             **(spec.get("params") or {}))
        for r in recs:
            r.setdefault("benchmark", name)
            r.setdefault("kind", b.kind)
        return recs
    if spec.get("path"):
        path = Path(spec["path"])
        rows, origin = _read_file(path), str(path)
    else:
        rows, origin = _read_hub(b), b.hub_id
    records, seen = [], set()
    for where, row in rows:
        try:
            rec = b.mapper(row, len(records))
        except MissingKey as e:
            raise DataError(f"{origin}, {where}: missing key {e.key!r} (needed for {name})") from None
        except (TypeError, AttributeError, ValueError) as e:
            raise DataError(f"{origin}, {where}: unexpected field layout for {name} ({type(e).__name__}: {e})") from None
        rec["benchmark"] = name
        rec.setdefault("kind", b.kind)
        if rec["kind"] == "code":
            rec.setdefault("tests", [])
            rec.setdefault("test_setup", "")
        if rec["kind"] == "choice":
            rec.setdefault("options", [])
        if rec["id"] in seen:
            rec["id"] = f"{rec['id']}#{len(records)}"
        seen.add(rec["id"])
        records.append(rec)
    if not records:
        raise DataError(f"{origin}: no records for {name}")
    return _subset(records, n, seed)
