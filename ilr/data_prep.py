"""`python -m ilr prepare-data --config CFG --out-dir R/data`: the training, validation and benchmark records.

Writes (each atomically, records in the contract's schema, see ilr/benchmarks.py):
  R/data/train.jsonl, R/data/val.jsonl   from `data.train` (a registry spec plus `n_val`, `split_seed`)
  R/data/bench/<name>.jsonl              one per entry of `benchmarks:` (name = the config key)
  R/data/manifest.json                   counts and sha256 of each file written, and the specs used

The train/validation split (choice): take the records of `data.train` in load order, shuffle their
positions with `random.Random(split_seed).shuffle`, and send the LAST `n_val` of the shuffled list
to validation and the rest to training; both files keep that shuffled order. With the paper's
math_train (12,000 records), n_val = 1000 gives 11,000 / 1,000.

Long questions (the context budget, ilr/config/budget.py): every prompt is budgeted with questions of at most
`context_budget.max_question_tokens`, counted by the budget's rule (`question_tokens`: UTF-8 bytes /
`chars_per_token`, with a choice record's options). A longer training question is dropped before the split
(counted and logged; `dropped_long_questions` in the manifest); a benchmark holding one is refused (a test set is
not shortened): raise the bound, and `check-config` asks for a `generation.max_model_len` that holds it.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from ilr.config.budget import question_tokens, settings
from ilr.io import DataError, sha256_file, write_json, write_jsonl

SPLIT_KEYS = ("n_val", "split_seed")


def split(records: list[dict], n_val: int, split_seed: int) -> tuple[list[dict], list[dict]]:
    """(train, val) by the rule in the module docstring."""
    if not 0 <= n_val < len(records):
        raise DataError(f"data.train: n_val={n_val} must be >= 0 and smaller than the {len(records)} records")
    order = list(records)
    random.Random(split_seed).shuffle(order)
    cut = len(order) - n_val
    return order[:cut], order[cut:]


def prepare(config: dict, out_dir: str | Path, parts: list[str] | None = None) -> dict:
    """Write the records of `parts` ("train": train.jsonl + val.jsonl; "bench/<name>": one benchmark;
    default: all of them, plus manifest.json). One part per Snakemake job, so that a change to one
    benchmark's config rewrites that file alone and reruns only what reads it."""
    out = Path(out_dir)
    from ilr.benchmarks import load_records

    benchmarks = config.get("benchmarks") or {}
    everything = parts is None
    parts = ["train"] + [f"bench/{b}" for b in benchmarks] if everything else parts
    train_spec = dict(config["data"]["train"])
    files, dropped = {}, {}
    for part in parts:
        if part == "train":
            records = load_records({k: v for k, v in train_spec.items() if k not in SPLIT_KEYS})
            long, what = long_questions(records, config)
            if long:
                print(f"data.train: dropped {what}: {', '.join(long[:10])}{' ...' if len(long) > 10 else ''}",
                      file=sys.stderr)
                drop = set(long)
                records = [r for r in records if r["id"] not in drop]
            dropped["data.train"] = {"n": len(long), "ids": long}
            train, val = split(records, int(train_spec.get("n_val", 0)), int(train_spec.get("split_seed", 0)))
            files.update({"train.jsonl": train, "val.jsonl": val})
        elif part.startswith("bench/") and part[len("bench/"):] in benchmarks:
            name = part[len("bench/"):]
            records = load_records(benchmarks[name])
            long, what = long_questions(records, config)
            if long:
                raise DataError(f"benchmarks.{name}: {what}; a test set is not shortened: raise "
                                "context_budget.max_question_tokens (check-config then asks for a "
                                "generation.max_model_len that holds it)")
            files[f"{part}.jsonl"] = records
        else:
            raise ValueError(f"prepare-data: unknown part {part!r} (expected 'train' or 'bench/<name>' with "
                             f"<name> one of config `benchmarks:` {sorted(benchmarks)})")
    manifest = {"files": {}, "data": {"train": train_spec}, "benchmarks": benchmarks,
                "context_budget": settings(config), "dropped_long_questions": dropped}
    for rel, rows in files.items():
        n = write_jsonl(out / rel, rows)
        manifest["files"][rel] = {"records": n, "sha256": sha256_file(out / rel)}
    if everything:
        write_json(out / "manifest.json", manifest)
    return manifest


def long_questions(records: list[dict], config: dict) -> tuple[list[str], str]:
    """The ids of the records whose question is longer than `context_budget.max_question_tokens`, and a sentence
    saying so (empty when there are none)."""
    budget = settings(config)
    limit, cpt = budget["max_question_tokens"], budget["chars_per_token"]
    long = [(r["id"], n) for r in records if (n := question_tokens(r, cpt)) > limit]
    if not long:
        return [], ""
    longest = max(long, key=lambda x: x[1])
    return [i for i, _ in long], (
        f"{len(long)} of {len(records)} questions longer than context_budget.max_question_tokens = {limit} tokens "
        f"(UTF-8 bytes / context_budget.chars_per_token {cpt}, rounded up; the longest, {longest[0]!r}: {longest[1]})")


def config_slice(config: dict, part: str | None = None) -> dict:
    """The config this stage reads for one data file (`part`: train, or bench/<name>): Snakemake's rerun trigger
    (ilr.study.stage_spec)."""
    question = {k: settings(config)[k] for k in ("max_question_tokens", "chars_per_token")}
    if part == "train":
        return {"data": config["data"], "context_budget": question}
    if part:
        return {"benchmark": config["benchmarks"][part[len("bench/"):]], "context_budget": question}
    return {"data": config["data"], "benchmarks": config["benchmarks"], "context_budget": question}


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="config YAML")
    parser.add_argument("--out-dir", required=True, help="output directory (R/data)")
    parser.add_argument("--parts", nargs="+", help="only these: 'train' (train + val) or 'bench/<name>'")


def main(args) -> int:
    from ilr.config import load

    manifest = prepare(load(args.config), args.out_dir, args.parts)
    for rel, info in manifest["files"].items():
        print(f"{Path(args.out_dir) / rel}: {info['records']} records")
    return 0
