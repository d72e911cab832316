"""One ILR step of a group of m models against m TRL GRPO steps (one per model), side by side.

Same tiny models, prompts, questions and G. The time of a step is TRL's own `step_time` metric
(generation + loss + backward of one optimizer step), median over the steps after the first.
For ILR, a member's step_time covers the whole group rollout (Sharing, Analysis, G Fusion
completions for every model), which the member waits for at the coordinator's barrier.

    python benchmarks/ilr_step.py [--models results/models/tiny-llama results/models/tiny-qwen-s]

Idea3 generates about (G + 2) / G times the tokens of GRPO: that ratio is the floor (with
`--stages sharing,fusion`, G solo answers per model too: (2G + 1) / G, and twice the completions to
train on). Last line: `ratio X.XX` (ILR step over the m GRPO steps).
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


def step_times(log_file: Path) -> list[float]:
    rows = [json.loads(line) for line in log_file.read_text().splitlines()]
    return [float(r["step_time"]) for r in rows if "step_time" in r][1:]  # the first step warms caches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["results/models/tiny-llama", "results/models/tiny-qwen-s"])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--questions", type=int, default=8, help="questions per step")
    ap.add_argument("--G", type=int, default=4)
    ap.add_argument("--stages", default="fusion", choices=["fusion", "sharing,fusion"],
                    help="training.train_stages of the ILR run (default: the paper's, fusion)")
    a = ap.parse_args()

    import torch

    from ilr import study
    from ilr.io import write_json, write_jsonl
    from ilr.tiny.task import generate
    from ilr.train.grpo import train_grpo
    from ilr.train.ilr import train_ilr

    torch.set_num_threads(1)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    names = [Path(m).name for m in a.models]
    for n, path in zip(names, a.models):
        if not (Path(path) / "config.json").is_file():
            sys.exit(f"{path}: no model there; run `make demo` (or pass --models DIR DIR)")
    config["models"] = {n: {"path": str(path), "size": "small"} for n, path in zip(names, a.models)}
    config["groups"] = {"bench": names}
    config["methods"] = {"grpo": {"trainer": "grpo"},
                         "ilr": dict(config["methods"]["ilr"], groups=["bench"])}
    config["tables"] = {"main": {"benchmarks": ["arith"]}}
    config.pop("multi_agent")
    config["training"].update(steps=a.steps, questions_per_step=a.questions, num_generations=a.G,
                              save_steps=10 ** 6, train_stages=a.stages.split(","))
    config = study.validate(config)   # the schema's defaults filled in, as every stage sees them
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        records = generate("tiny_arith", a.steps * a.questions, 11, **config["data"]["train"]["params"])
        write_jsonl(tmp / "train.jsonl", records)
        abilities = []
        for n in names:
            write_json(tmp / f"{n}.json", {"model": n, "gamma": 0.5})
            abilities.append(str(tmp / f"{n}.json"))
        write_jsonl(tmp / "d.jsonl", [{"id": r["id"], "difficulty": 0.5} for r in records])

        grpo = {}
        for n in names:
            train_grpo(copy.deepcopy(config), "grpo", n, 0, str(tmp / "train.jsonl"), str(tmp / "grpo"))
            grpo[n] = statistics.median(step_times(tmp / "grpo" / n / "metrics.jsonl"))
        train_ilr(config, "ilr", "bench", 0, str(tmp / "train.jsonl"), abilities, str(tmp / "d.jsonl"),
                  str(tmp / "ilr"))
        ilr = statistics.median(step_times(tmp / "ilr" / names[0] / "trainer_log.jsonl"))

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    m, G = len(names), a.G
    print(f"date {datetime.date.today()}  commit {commit}  torch threads 1  steps {a.steps} "
          f"(median of the last {a.steps - 1})  questions/step {a.questions}  G {G}  train_stages {a.stages}")
    print(f"{'':28s}{'seconds/step':>14s}")
    for n in names:
        print(f"GRPO {n:23s}{grpo[n]:14.3f}")
    print(f"GRPO, all {m} models{'':9s}{sum(grpo.values()):14.3f}")
    print(f"ILR, group of {m}{'':11s}{ilr:14.3f}")
    if a.stages == "fusion":
        print(f"token floor (G + 2) / G = {(G + 2) / G:.2f}")
    else:
        print(f"token floor (2G + 1) / G = {(2 * G + 1) / G:.2f}")
    print(f"ratio {ilr / sum(grpo.values()):.2f}")


if __name__ == "__main__":
    main()
