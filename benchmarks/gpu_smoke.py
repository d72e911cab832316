"""GPU smoke check: the tiny study's training (every trainer, 2 steps) and solo evaluation, on a CUDA GPU.

    python benchmarks/gpu_smoke.py [--out /tmp/ilr-gpu-smoke] [--allow-cpu]

Runs the real DAG (Snakemake, the train rules' launcher) on config/config.yaml cut down: the tiny models
built with a short warm-up, 2 training steps, 40-question benchmarks, `generation.engine: vllm` when vLLM
imports, else transformers. Every GPU rule asks for one GPU; with two or more GPUs the training jobs ask
for two, so they run as `accelerate launch --num_processes 2` (DDP) and, for the ILR group, under the
paper's DeepSpeed ZeRO-3 config as well. It prints what ran where (torch.cuda device name, the engine, the
processes), each job's time and the total, and fails if a stage did not run on the GPU (every evaluation
file records its device in its provenance) or took more than the budget (5 minutes).
`--allow-cpu` runs the same on a machine without a GPU (to check the script itself; the device check is
then skipped).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 300


def smoke_config(out: Path, engine: str, gpus: int, accelerate: str) -> dict:
    c = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    c = copy.deepcopy(c)
    c["results"] = str(out / "results")
    c["models"] = {k: v for k, v in c["models"].items() if k in ("tiny-llama", "tiny-qwen-s")}
    for name, m in c["models"].items():
        m["build"]["warmup_steps"] = 200
        m["path"] = str(out / "results" / "models" / name)
    c["groups"] = {"group1": ["tiny-llama", "tiny-qwen-s"]}
    c["data"]["train"].update(n=64, n_val=16)
    c["benchmarks"] = {"arith": {"source": "tiny_arith", "n": 40, "seed": 101}}
    c["training"].update(steps=2, questions_per_step=8, save_steps=1, accelerate_config=accelerate)
    c["methods"] = {"grpo": {"trainer": "grpo"}, "ppo": {"trainer": "ppo"},
                    "ilr": {"trainer": "ilr", "interaction": "irt", "calibration": True, "groups": ["group1"]}}
    c["tables"] = {"main": {"benchmarks": ["arith"]}}
    c.pop("multi_agent", None)
    c["generation"] = {"engine": engine, "gpu_memory_utilization": 0.3, "training_gpu_memory_utilization": 0.2,
                       "max_model_len": 512}
    c["resources"] = {"default": {"cpus": 2, "mem_mb": 8000, "runtime": 30, "gpus": 0},
                      "rules": {r: {"gpus": 1} for r in ("ability", "difficulty", "evaluate")}
                      | {"train_single": {"gpus": gpus}, "train_group": {"gpus": gpus}}}
    return c


def run(config: dict, path: Path, targets: list[str]) -> float:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "snakemake", *targets, "--cores", "4", "--configfile", str(path)],
                       cwd=REPO, text=True)
    if r.returncode:
        sys.exit(f"snakemake failed ({r.returncode}): logs under {config['results']}/logs")
    return time.time() - t0


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/ilr-gpu-smoke")
    p.add_argument("--allow-cpu", action="store_true")
    args = p.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        sys.exit("no CUDA GPU here (torch.cuda.is_available() is False); --allow-cpu checks the script on the CPU")
    n_gpus = torch.cuda.device_count()
    engine = "vllm" if cuda and importlib.util.find_spec("vllm") else "transformers"
    out = Path(args.out)
    print(f"device: {torch.cuda.get_device_name(0) if cuda else 'CPU'} x {n_gpus}; engine {engine}; torch "
          f"{torch.__version__}")
    runs = [("one process per job", 1 if cuda else 0, "multi_gpu")]
    if n_gpus >= 2:
        runs += [("2 processes, DDP", 2, "multi_gpu"), ("2 processes, DeepSpeed ZeRO-3", 2, "deepspeed_zero3")]
    total = 0.0
    for label, gpus, accelerate in runs:
        d = out / accelerate / str(gpus)
        config = smoke_config(d, engine, gpus, accelerate)
        R = config["results"]
        finals = [f"{R}/runs/grpo/tiny-llama/seed0/tiny-llama/final", f"{R}/runs/ppo/tiny-llama/seed0/tiny-llama/final",
                  *(f"{R}/runs/ilr/group1/seed0/{n}/final" for n in ("tiny-llama", "tiny-qwen-s"))]
        evals = [f"{R}/eval/{m}/{g}/{n}/seed0/arith.json"
                 for m, g, n in (("grpo", "tiny-llama", "tiny-llama"), ("ppo", "tiny-llama", "tiny-llama"),
                                 ("ilr", "group1", "tiny-llama"), ("ilr", "group1", "tiny-qwen-s"))]
        seconds = run(config, d / "config.yaml", finals + evals)
        total += seconds
        devices = {json.loads(Path(e).read_text())["summary"]["provenance"]["device"] for e in evals}
        print(f"{label}: {seconds:.0f} s, evaluation on {', '.join(sorted(devices))}")
        if cuda and not all("cpu" not in d.lower() for d in devices):
            sys.exit(f"an evaluation ran on the CPU: {devices}")
    print(f"total {total:.0f} s (budget {BUDGET_S} s)")
    return 0 if total <= BUDGET_S or not cuda else 1


if __name__ == "__main__":
    sys.exit(main())
