"""Training jobs as the train rules run them (workflow/rules/train.smk), in real Snakemake runs.

N processes, launched exactly as a job with more than one GPU is (`accelerate launch --num_processes 2`,
here on CPU over gloo): DDP (`multi_gpu`) and the paper config's sharded DeepSpeed ZeRO-3
(`deepspeed_zero3`). Every trainer must train the same questions per step and the same number of steps
as one process, write `final/` once and whole (gathered under ZeRO-3), log once, and resume after a
signal. And the run directory: a forced rerun retrains, one trainer at a time holds it."""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from ilr.io import read_jsonl

SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
MODELS = ("tiny-llama", "tiny-qwen-s")
STEPS, QPS, G = 2, 4, 2

pytestmark = pytest.mark.slow


def study(root: Path, tiny_config: dict, warm_models: dict, gpus: int, accelerate: str, steps: int = STEPS) -> Path:
    """A study over the warm tiny models whose training jobs ask for `gpus` GPUs (0: plain python)."""
    c = copy.deepcopy(tiny_config)
    c["results"] = str(root / "results")
    c["models"] = {n: {"path": str(warm_models[n]), "size": "small"} for n in MODELS}
    c["groups"] = {"group1": list(MODELS)}
    c["data"]["train"].update(n=48, n_val=8, params={"min_steps": 1, "max_steps": 1, "max_operand": 3})
    c["benchmarks"] = {"arith": {"source": "tiny_arith", "n": 8, "seed": 101}}
    c["ability"]["max_new_tokens"] = 16
    c["difficulty"].update(samples=2, max_new_tokens=16)
    c["training"].update(steps=steps, questions_per_step=QPS, num_generations=G, max_new_tokens=12, save_steps=1,
                         accelerate_config=accelerate)
    c["methods"] = {"grpo": {"trainer": "grpo"}, "ppo": {"trainer": "ppo", "micro_batch_size": 3},
                    "ilr": {"trainer": "ilr", "interaction": "irt", "calibration": True, "groups": ["group1"]}}
    c["tables"] = {"main": {"benchmarks": ["arith"]}}
    c.pop("multi_agent", None)
    c["resources"] = {"default": {"cpus": 1, "mem_mb": 16000, "runtime": 30, "gpus": 0},
                      "rules": {"train_single": {"gpus": gpus}, "train_group": {"gpus": gpus}}}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(c, sort_keys=False))
    return path


def run_dirs(root: Path) -> dict[str, Path]:
    r = root / "results" / "runs"
    return {"grpo": r / "grpo/tiny-llama/seed0", "ppo": r / "ppo/tiny-llama/seed0", "ilr": r / "ilr/group1/seed0"}


def targets(root: Path) -> list[str]:
    d = run_dirs(root)
    return [str(d["grpo"] / "tiny-llama/final"), str(d["ppo"] / "tiny-llama/final"),
            *(str(d["ilr"] / n / "final") for n in MODELS)]


def snakemake(config: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    # --configfile last: Snakemake reads every word after it as another config file
    return subprocess.run([SNAKEMAKE, *args, "--cores", "2", "--configfile", str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def failed_logs(root: Path) -> str:
    """The tails of the job logs that show an error: what a failed Snakemake run's message needs."""
    logs = sorted((root / "results" / "logs").rglob("*.log")) if (root / "results" / "logs").is_dir() else []
    return "".join(f"\n== {p}\n{p.read_text()[-2500:]}" for p in logs
                   if "Error" in p.read_text() or "Traceback" in p.read_text())


def step_questions(run: Path) -> list[tuple[int, str]]:
    return [(r["step"], r["question_id"]) for r in read_jsonl(run / "rollouts.jsonl")]


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_config, warm_models):
    """The same study trained by one process per job: the reference for the questions of each step."""
    root = tmp_path_factory.mktemp("single")
    r = snakemake(study(root, tiny_config, warm_models, 0, "multi_gpu"), *targets(root))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + failed_logs(root)
    return root


def written_by_rank_1(checkpoint: Path) -> bool:
    return any(re.search(r"rank_1|_1\.p", p.name) for p in checkpoint.rglob("*"))


def shell_of(config: Path, target: str) -> str:
    """The exact shell command Snakemake runs for the job that makes `target`."""
    r = subprocess.run([SNAKEMAKE, target, "-n", "-p", "--force", "--cores", "2", "--configfile", str(config)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return re.search(r"^Shell command: (d=.*)$", r.stdout + r.stderr, re.M).group(1)


@pytest.mark.parametrize("accelerate", ["multi_gpu", "deepspeed_zero3"])
def test_two_processes_train_what_one_does(tmp_path, tiny_config, warm_models, single, accelerate):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    config = study(tmp_path, tiny_config, warm_models, 2, accelerate)
    r = snakemake(config, *targets(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + failed_logs(tmp_path)
    for method, run in run_dirs(tmp_path).items():
        one = run_dirs(single)[method]
        rollouts = run / ("rollouts.jsonl" if method == "ilr" else "tiny-llama/rollouts.jsonl")
        reference = one / ("rollouts.jsonl" if method == "ilr" else "tiny-llama/rollouts.jsonl")
        # every step trains the schedule's questions once, in order: the 1-process run's (step, question)s
        assert step_questions(rollouts.parent) == step_questions(reference.parent), method
        assert len(step_questions(rollouts.parent)) == STEPS * QPS
        assert (run / ".done").is_file()
        for n in (MODELS if method == "ilr" else ("tiny-llama",)):
            # two processes ran: the second one's state is in the checkpoints (RNG state, or ZeRO shards)
            assert written_by_rank_1(run / n / "checkpoints" / f"checkpoint-{STEPS}"), (method, n)
            final = run / n / "final"
            base = AutoModelForCausalLM.from_pretrained(warm_models[n])
            model = AutoModelForCausalLM.from_pretrained(final)   # gathered weights load unsharded
            assert model.state_dict().keys() == base.state_dict().keys()
            for k, v in model.state_dict().items():
                assert v.shape == base.state_dict()[k].shape, (method, n, k)
            weights = load_file(str(final / "model.safetensors"))
            assert all(t.numel() for t in weights.values())
            assert not list(final.parent.glob(".final*")), "a temporary final directory was left behind"
    metrics = read_jsonl(run_dirs(tmp_path)["ilr"] / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1))          # logged once per step
    ppo = read_jsonl(run_dirs(tmp_path)["ppo"] / "tiny-llama/metrics.jsonl")
    assert [m["step"] for m in ppo] == list(range(1, STEPS + 1))
    # the learning-rate schedule moves once per step, as in one process (not once per process)
    ppo_one = read_jsonl(run_dirs(single)["ppo"] / "tiny-llama/metrics.jsonl")
    assert [m["learning_rate"] for m in ppo] == [m["learning_rate"] for m in ppo_one]


def test_two_processes_resume_after_sigterm(tmp_path, tiny_config, warm_models):
    """Slurm signals every process of the job: each finishes its step, the group agrees on where to stop, the
    checkpoint of that step is written, the job exits 143; rerun, it resumes and ends with every step logged
    once."""
    steps = 4
    config = study(tmp_path, tiny_config, warm_models, 2, "multi_gpu", steps=steps)
    ilr_targets = targets(tmp_path)[2:]
    r = snakemake(config, *[str(tmp_path / "results/ability" / f"{n}.json") for n in MODELS],
                  str(tmp_path / "results/difficulty/group1.jsonl"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + failed_logs(tmp_path)
    shell = shell_of(config, ilr_targets[0])
    run = run_dirs(tmp_path)["ilr"]
    (tmp_path / "results/logs/train/ilr/group1").mkdir(parents=True)   # Snakemake makes a job's log directory
    proc = subprocess.Popen(["bash", "-c", shell], cwd=REPO, start_new_session=True)
    marks = [run / n / "checkpoints/checkpoint-1/trainer_state.json" for n in MODELS]
    deadline = time.time() + 300
    while not all(m.exists() for m in marks) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the signal"
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=300) != 0
    saved = [sorted(int(p.parent.name.split("-")[1]) for p in (run / n / "checkpoints").glob("*/trainer_state.json"))
             for n in MODELS]
    assert saved[0] == saved[1] and saved[0][-1] < steps, saved
    assert not any((run / n / "final").exists() for n in MODELS)
    log = (tmp_path / "results/logs/train/ilr/group1/seed0.log").read_text()
    assert f"after step {saved[0][-1]}" in log, log[-2000:]

    kept = run / MODELS[0] / "checkpoints" / f"checkpoint-{saved[0][-1]}" / "trainer_state.json"
    stamp = kept.stat().st_mtime_ns

    r = snakemake(config, *ilr_targets)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + failed_logs(tmp_path)
    assert kept.stat().st_mtime_ns == stamp, "the rerun started afresh instead of resuming"
    assert [s for s, _ in step_questions(run)] == [s for s in range(1, steps + 1) for _ in range(QPS)]
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == list(range(1, steps + 1))


def test_forced_rerun_retrains_and_a_second_trainer_is_refused(tmp_path, tiny_config, warm_models):
    config = study(tmp_path, tiny_config, warm_models, 0, "multi_gpu", steps=3)
    target = targets(tmp_path)[0]
    run = run_dirs(tmp_path)["grpo"]
    r = snakemake(config, target)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + failed_logs(tmp_path)
    first = (run / "tiny-llama/checkpoints/checkpoint-3/trainer_state.json").stat().st_mtime_ns

    # --force: the finished run is not resumed (which would redo nothing from checkpoint-3) but retrained
    r = snakemake(config, target, "--force")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + failed_logs(tmp_path)
    ckpt = run / "tiny-llama/checkpoints/checkpoint-1/trainer_state.json"
    assert ckpt.stat().st_mtime_ns > first, "the forced rerun resumed from the old checkpoints"

    # one trainer per run directory: while a job trains, the same job started again is refused at once
    shell = shell_of(config, target)
    (run / ".done").unlink()
    shutil.rmtree(run / "tiny-llama" / "checkpoints")   # unfinished, nothing to resume: it trains for a while
    holder = subprocess.Popen(["bash", "-c", shell], cwd=REPO, start_new_session=True)
    try:
        deadline = time.time() + 120
        lock = Path(str(run) + ".lock")
        while f"pid {holder.pid}" not in (lock.read_text() if lock.exists() else "") and time.time() < deadline:
            time.sleep(0.02)
        second = subprocess.run(["bash", "-c", shell], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert holder.poll() is None, "the first trainer ended before the second one started"
        assert second.returncode == 75, second.stderr
        assert f"pid {holder.pid} on {os.uname().nodename}" in second.stderr, second.stderr
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
