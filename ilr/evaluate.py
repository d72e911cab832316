"""Solo evaluation (METHOD.md: each trained model answers alone, no peer, no interaction).

One output file per (model, benchmark) cell: `<out-dir>/<benchmark>.json` with
  summary: accuracy, n, bootstrap 95% CI, and provenance (git commit, hash of the config slice,
           data file hash, checkpoint hash, seed, decoding settings);
  records: one per (question, sample): id, prompt, completion, extracted, correct, reason.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from ilr.io import read_json, read_jsonl, sha256_file, sha256_json, sha256_tree, write_json
from ilr.report.stats import bootstrap_ci, per_question



def dvc_md5(path: str | Path) -> str:
    """The hash DVC 3 records for `path` (its `md5` in a .dvc file, `make push`): the md5 of a file, or
    for a directory the md5 of DVC's sorted JSON list of {md5, relpath} entries, suffixed `.dir`."""
    import hashlib
    import json

    def md5_file(f: Path) -> str:
        h = hashlib.md5()
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    path = Path(path)
    if path.is_file():
        return md5_file(path)
    entries = sorted(({"md5": md5_file(f), "relpath": f.relative_to(path).as_posix()}
                      for f in path.rglob("*") if f.is_file()), key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def answer_and_grade(engine, prompt_set, records: list[dict], samples: int, temperature: float,
                     max_new_tokens: int, progress: bool = False) -> list[dict]:
    """Each record's question answered alone `samples` times by `engine` (ilr.generation) and graded."""
    from ilr.grading import grade_many

    prompts = [prompt_set.solve(r) for r in records]
    outs = engine.sample_texts(prompts, n=samples, max_new_tokens=max_new_tokens, temperature=temperature,
                               progress=progress)
    flat_records = [r for r in records for _ in range(samples)]
    flat_texts = [s.text for group in outs for s in group]
    grades = grade_many(flat_records, flat_texts)
    return [
        {"id": r["id"], "sample": k % samples, "prompt": prompts[k // samples], "completion": text,
         "extracted": g.extracted, "correct": bool(g.correct), "reason": g.reason}
        for k, (r, text, g) in enumerate(zip(flat_records, flat_texts, grades))
    ]


def config_slice(config: dict, benchmark: str | None = None, benchmarks: list[str] | None = None,
                 method: str | None = None, model: str | None = None, seed=None) -> dict:
    """The config this stage reads for one evaluation job (Snakemake's rerun trigger, ilr.study.stage_spec):
    a base model's path too (trained checkpoints are inputs)."""
    from ilr.config import BASE

    spec = {"evaluation": config["evaluation"], "prompts": config["prompts"], "generation": config["generation"],
            "numerics": config["numerics"],
            "benchmarks": {b: config["benchmarks"][b] for b in (benchmarks or [benchmark])}}
    if method == BASE and model is not None:
        spec["path"] = config["models"][model]["path"]
    if seed is not None:
        spec["seed"] = int(seed)
    return spec


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--model-path", required=True, help="checkpoint directory or hub id")
    p.add_argument("--benchmarks", nargs="+", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--method", default="base")
    p.add_argument("--group", default="none")
    p.add_argument("--model", required=True, help="the model's name in config `models:`")
    p.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    import torch

    from ilr import config as cfg
    from ilr.generation import open_engine
    from ilr.prompts import load as load_prompts
    from ilr.provenance import environment
    from ilr.train.common import SUMMARY

    config = cfg.load(args.config)
    ev = config["evaluation"]
    torch.manual_seed(args.seed)
    engine = open_engine(config, args.model_path, config["models"][args.model]["size"], args.seed,
                         source=args.config)
    prompt_set = load_prompts(config["prompts"])
    checkpoint_hash = sha256_tree(args.model_path) if Path(args.model_path).exists() else args.model_path
    checkpoint_dvc = dvc_md5(args.model_path) if Path(args.model_path).exists() else None  # hub id: none
    trained = Path(args.model_path) / SUMMARY   # what the training run says of itself (ilr/train/common.py)
    training = read_json(trained) if trained.is_file() else None
    for bench in args.benchmarks:
        data_file = Path(args.data_dir) / "bench" / f"{bench}.jsonl"
        records = read_jsonl(data_file)
        t0 = time.time()
        graded = answer_and_grade(engine, prompt_set, records, ev["samples"], ev["temperature"],
                                  ev["max_new_tokens"], progress=True)
        per_q = per_question(graded)
        lo, hi = bootstrap_ci(list(per_q.values()), resamples=ev["bootstrap"], seed=args.seed)
        summary = {
            "benchmark": bench, "model": args.model, "method": args.method, "group": args.group,
            "seed": args.seed, "accuracy": float(np.mean(list(per_q.values()))), "n": len(per_q),
            "ci_low": lo, "ci_high": hi, "ci_level": 0.95, "seconds": round(time.time() - t0, 2),
            "training": training,
            "provenance": {
                **environment(),
                "config_hash": sha256_json(config_slice(config, benchmark=bench)),
                "data_file": str(data_file), "data_sha256": sha256_file(data_file),
                "checkpoint": str(args.model_path), "checkpoint_sha256": checkpoint_hash,
                "checkpoint_dvc_md5": checkpoint_dvc,
                "seed": args.seed, "decoding": {k: ev[k] for k in ("samples", "temperature", "max_new_tokens")},
                "protocol": "solo: the model answers alone, no peer and no interaction",
                "host": os.uname().nodename,
            },
        }
        write_json(Path(args.out_dir) / f"{bench}.json", {"summary": summary, "records": graded})
        print(f"{args.method}/{args.group}/{args.model} {bench}: {summary['accuracy']:.3f} "
              f"[{lo:.3f}, {hi:.3f}] n={summary['n']}")
    return 0
