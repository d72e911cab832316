"""Multi-agent inference (the paper's analysis): Single vs Debate vs Idea3 for a pair of models.

- Single: each model alone (the solo prompt).
- Debate (choice): two rounds; each model answers, then reads the others' answers and revises
  (`debate_revise` template); each model's last answer is scored.
- Idea3: Sharing, Analysis, Fusion at inference (mode `multi_agent.mode`, (choice) cooperation);
  each model's Fusion answer is scored.
Greedy decoding (evaluation settings). Output: one JSON per (pair, benchmark) with each setting's
accuracy and 95% CI per model, and the per-question records.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ilr.io import read_jsonl, write_json
from ilr.report.stats import bootstrap_ci


def debate(members: dict, prompt_set, records: list[dict], max_new_tokens: int) -> dict[str, list[str]]:
    """members: name -> engine. Two rounds: each answers alone, then revises after reading the others."""
    first = {n: e.complete([prompt_set.solve(r) for r in records], max_new_tokens=max_new_tokens)
             for n, e in members.items()}
    return {n: e.complete([prompt_set.debate_revise(r, first[n][q], [first[o][q] for o in members if o != n])
                           for q, r in enumerate(records)], max_new_tokens=max_new_tokens)
            for n, e in members.items()}


def config_slice(config: dict, models: list[str], benchmark: str) -> dict:
    """The config this stage reads for one pair and benchmark (Snakemake's rerun trigger, ilr.study.stage_spec)."""
    return {"mode": config["multi_agent"]["mode"], "evaluation": config["evaluation"],
            "prompts": config["prompts"], "generation": config["generation"], "numerics": config["numerics"],
            "benchmark": config["benchmarks"][benchmark],
            "models": {n: config["models"][n]["path"] for n in models}}


def split_accuracy(correct: list[float], resamples: int) -> dict:
    """Accuracy, n and bootstrap CI of a subset of questions (None accuracy when it is empty)."""
    from ilr.report.stats import bootstrap_ci

    if not correct:
        return {"accuracy": None, "n": 0, "ci_low": None, "ci_high": None}
    lo, hi = bootstrap_ci(correct, resamples=resamples, seed=0)
    return {"accuracy": sum(correct) / len(correct), "n": len(correct), "ci_low": lo, "ci_high": hi}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--models", nargs="+", required=True, help="model names of config `models:`")
    p.add_argument("--model-paths", nargs="+", help="checkpoints (default: the base models' paths)")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True)


def main(args: argparse.Namespace) -> int:
    import torch

    from ilr import config as cfg
    from ilr.generation import open_engine
    from ilr.grading import grade_many
    from ilr.idea3 import run_idea3
    from ilr.prompts import load as load_prompts

    config = cfg.load(args.config)
    ev, mode = config["evaluation"], config["multi_agent"]["mode"]
    paths = args.model_paths or [config["models"][n]["path"] for n in args.models]
    # the models answer together, so they share the job's GPUs: each vLLM engine takes its part of them
    shared = dict(config, generation={**config["generation"], "gpu_memory_utilization":
                                      config["generation"]["gpu_memory_utilization"] / len(args.models)})
    members = {n: open_engine(shared, p, config["models"][n]["size"], source=args.config)
               for n, p in zip(args.models, paths)}
    prompt_set = load_prompts(config["prompts"])
    records = read_jsonl(Path(args.data_dir) / "bench" / f"{args.benchmark}.jsonl")
    torch.manual_seed(0)

    answers = {"single": {n: e.complete([prompt_set.solve(r) for r in records], max_new_tokens=ev["max_new_tokens"])
                          for n, e in members.items()},
               "debate": debate(members, prompt_set, records, ev["max_new_tokens"])}
    idea3 = run_idea3(members, prompt_set, records, [mode] * len(records), 1, 0.0, ev["max_new_tokens"])
    answers["idea3"] = {n: [o.fusion[0].text for o in outs] for n, outs in idea3.items()}
    # was each model's shared idea (its Sharing answer, what its peers read) right?
    shared_right = {n: [g.correct for g in grade_many(records, [o.sharing for o in outs])] for n, outs in idea3.items()}

    from ilr.io import sha256_file, sha256_json
    from ilr.provenance import environment

    data_file = Path(args.data_dir) / "bench" / f"{args.benchmark}.jsonl"
    result = {"benchmark": args.benchmark, "models": args.models, "checkpoints": paths, "idea3_mode": mode,
              "protocol": "multi-agent inference: the scored answer is the model's own last answer",
              "provenance": {
                  **environment(),
                  "config_hash": sha256_json(config_slice(config, models=args.models, benchmark=args.benchmark)),
                  "data_file": str(data_file), "data_sha256": sha256_file(data_file),
                  "decoding": {"samples": 1, "temperature": 0.0, "max_new_tokens": ev["max_new_tokens"]}},
              "settings": {}}
    for setting, per_model in answers.items():
        result["settings"][setting] = {}
        for n, texts in per_model.items():
            grades = grade_many(records, texts)
            correct = [float(g.correct) for g in grades]
            lo, hi = bootstrap_ci(correct, resamples=ev["bootstrap"], seed=0)
            result["settings"][setting][n] = {
                "accuracy": sum(correct) / len(correct), "n": len(correct), "ci_low": lo, "ci_high": hi,
                "records": [{"id": r["id"], "completion": t, "extracted": g.extracted, "correct": g.correct}
                            for r, t, g in zip(records, texts, grades)]}
            if setting == "idea3":   # Fusion accuracy split by whether the peers' shared ideas were right
                peers_right = [all(shared_right[o][q] for o in members if o != n) for q in range(len(records))]
                result["settings"][setting][n]["by_peer"] = {
                    label: split_accuracy([c for c, right in zip(correct, peers_right) if right == want],
                                          ev["bootstrap"])
                    for label, want in (("peer_right", True), ("peer_wrong", False))}
                for q, rec in enumerate(result["settings"][setting][n]["records"]):
                    rec["peers_right"] = peers_right[q]
            print(f"{setting:7s} {n}: {sum(correct) / len(correct):.3f}")
    write_json(args.out, result)
    return 0
