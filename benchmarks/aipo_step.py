"""One AIPO step against one TRL GRPO step on the same policy, questions and G.

Same tiny policy, prompts, questions (the schedule of seed 0) and G; AIPO as the tiny default runs it
(config/config.yaml `methods.aipo`: trigger stuck, context strip), its agents on the helper model. The time of
a step is TRL's own `step_time` metric (generation, scoring, loss, backward and optimizer step; for AIPO also
the agents' replies, the guided continuations and the two extra forward passes of the importance weights),
median over the steps after the first.

    python benchmarks/aipo_step.py [--model results/models/tiny-llama --helper results/models/tiny-qwen-l]

The token floor: the tokens AIPO generates per step (the policy's G plain rollouts, the guided continuations
of the stuck questions, the agents' replies) over GRPO's (the G rollouts), both measured: where generation
dominates a step, the time ratio cannot be much below it. Last line: `ratio X.XX` (AIPO step over GRPO step).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def log_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def after_first(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) is not None][1:]   # the first step warms caches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="results/models/tiny-llama", help="the policy")
    ap.add_argument("--helper", default="results/models/tiny-qwen-l", help="the agents' model (config aipo.helper)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--questions", type=int, default=8, help="questions per step")
    ap.add_argument("--G", type=int, default=4)
    a = ap.parse_args()

    import torch

    from ilr import study
    from ilr.io import write_jsonl
    from ilr.tiny.task import generate
    from ilr.train.aipo import train_aipo
    from ilr.train.grpo import train_grpo

    torch.set_num_threads(1)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for path in (a.model, a.helper):
        if not (Path(path) / "config.json").is_file():
            sys.exit(f"{path}: no model there; run `make demo` (or pass --model DIR --helper DIR)")
    name, helper = Path(a.model).name, Path(a.helper).name
    if helper == name:     # the policy helped by its own frozen base copy
        helper = f"{name}-helper"
    config["models"] = {name: {"path": str(a.model), "size": "small"},
                        helper: {"path": str(a.helper), "size": "small"}}
    config["groups"] = {"bench": [name, helper]}
    config["methods"] = {"grpo": {"trainer": "grpo"}, "aipo": {**config["methods"]["aipo"], "helper": helper}}
    config["tables"] = {"main": {"benchmarks": list(config["benchmarks"])[:1], "methods": ["grpo", "aipo"]}}
    config.pop("multi_agent", None)
    config["training"].update(steps=a.steps, questions_per_step=a.questions, num_generations=a.G, save_steps=10 ** 6)
    config = study.validate(config)   # the schema's defaults filled in, as every stage sees them
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_jsonl(tmp / "train.jsonl", generate("tiny_arith", a.steps * a.questions, 11,
                                                  **config["data"]["train"]["params"]))
        train_grpo(copy.deepcopy(config), "grpo", name, 0, str(tmp / "train.jsonl"), str(tmp / "grpo"))
        train_aipo(copy.deepcopy(config), "aipo", name, 0, str(tmp / "train.jsonl"), str(tmp / "aipo"))
        grpo_log = log_rows(tmp / "grpo" / name / "metrics.jsonl")
        aipo_log = log_rows(tmp / "aipo" / name / "metrics.jsonl")

    grpo = statistics.median(after_first(grpo_log, "step_time"))
    aipo = statistics.median(after_first(aipo_log, "step_time"))
    completions = a.questions * a.G
    grpo_tokens = statistics.mean(after_first(grpo_log, "completions/mean_length")) * completions
    policy_tokens = statistics.mean(after_first(aipo_log, "aipo/policy_tokens"))
    helper_tokens = statistics.mean(after_first(aipo_log, "aipo/helper_tokens"))
    consulted = statistics.mean(after_first(aipo_log, "aipo/consult_rate"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    m = config["methods"]["aipo"]
    print(f"date {datetime.date.today()}  commit {commit}  torch threads 1  steps {a.steps} "
          f"(median of the last {a.steps - 1})  questions/step {a.questions}  G {a.G}")
    print(f"policy {a.model}  helper {a.helper}  trigger {m['trigger']}  context {m['context']}  "
          f"rollouts consulting {consulted:.2f}")
    print(f"{'':28s}{'seconds/step':>14s}{'tokens/step':>14s}")
    print(f"GRPO {name:23s}{grpo:14.3f}{grpo_tokens:14.0f}")
    print(f"AIPO {name:23s}{aipo:14.3f}{policy_tokens + helper_tokens:14.0f}   "
          f"(policy {policy_tokens:.0f} + agents {helper_tokens:.0f})")
    print(f"token floor (AIPO tokens / GRPO tokens) = {(policy_tokens + helper_tokens) / grpo_tokens:.2f}")
    print(f"ratio {aipo / grpo:.2f}")


if __name__ == "__main__":
    main()
