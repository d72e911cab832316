"""The slurm profile on a real (single-node) Slurm cluster: `make test-slurm` provisions one
(scripts/slurm-provision.sh: munge + slurmctld + slurmd, no accounting) and runs these tests; without
`sbatch` they skip.

- a training target and its evaluation through `snakemake --profile slurm` (partition and account set in the
  config's `resources:`, as docs/cluster.md says) end with the same weights and accuracy as a local run;
- a cluster without accounting works: the Snakefile switches the executor to squeue (sacct answers nothing);
- SIGTERM mid-training (`scancel --signal=TERM`, what Slurm sends before preempting or at `--signal=TERM@600`)
  checkpoints; the job requeues itself (same job id, no Snakemake retry) and resumes with bit-identical final
  weights; the trainer's log and Slurm's keep every attempt's lines (append).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
PARTITION = os.environ.get("ILR_SLURM_PARTITION", "ilr")   # scripts/slurm-provision.sh's partition
ACCOUNT = os.environ.get("ILR_SLURM_ACCOUNT", "ilr-test")   # no accounting: any name is accepted
MODEL = "tiny-llama"
STEPS = 100   # ~0.05 s a step: long enough to signal the run in the middle

pytestmark = pytest.mark.slurm


def _cluster_up() -> str | None:
    """Why the tests cannot run here, or None."""
    if not shutil.which("sbatch"):
        return "no Slurm here (sbatch absent): `make test-slurm` provisions a single-node cluster (root, Debian)"
    r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if r.returncode != 0 or not any(s.startswith(("idle", "mix", "alloc")) for s in r.stdout.split()):
        return f"sbatch is here but no node is up (sinfo: {r.stdout.strip() or r.stderr.strip()}): " \
               "scripts/slurm-provision.sh up"
    return None


@pytest.fixture(scope="module")
def cluster():
    why = _cluster_up()
    if why:
        pytest.skip(why)


def small_config(results: Path) -> dict:
    """The tiny default cut down to one model, one benchmark, a short training with a checkpoint every step."""
    c = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    c["results"] = str(results)
    c["data"]["train"].update(n=48, n_val=16)
    c["benchmarks"] = {"arith": dict(c["benchmarks"]["arith"], n=16)}
    keep = ["tiny-llama", "tiny-qwen-s"]
    c["models"] = {k: v for k, v in c["models"].items() if k in keep}
    for m in c["models"].values():
        m["path"] = str(results / "models" / Path(m["path"]).name)
        m["build"]["warmup_steps"] = 20
    c["groups"] = {"group1": keep}
    c["ability"]["max_new_tokens"] = 16
    c["difficulty"].update(samples=2, max_new_tokens=16)
    c["training"].update(steps=STEPS, questions_per_step=2, num_generations=2, max_new_tokens=16, save_steps=10)
    c["methods"] = {"grpo": {"trainer": "grpo"}}
    c["multi_agent"].update(pairs=[keep], benchmark="arith")
    c["evaluation"].update(max_new_tokens=16, bootstrap=50, granularity="model")
    c["tables"] = {"main": {"benchmarks": ["arith"], "methods": ["grpo"], "vs_base": "arith"}}
    c["resources"]["default"].update(slurm_partition=PARTITION, slurm_account=ACCOUNT, mem_mb=2000, runtime=15)
    return c


def final(results: Path) -> Path:
    return results / "runs" / "grpo" / MODEL / "seed0" / MODEL / "final"


def eval_json(results: Path) -> Path:
    return results / "eval" / "grpo" / MODEL / MODEL / "seed0" / "arith.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snakemake(workdir: Path, *args: str, slurm: bool, wait: bool = True, **kw):
    """`snakemake` from the repository root (where the `slurm` profile lives) on workdir's config.yaml."""
    mode = ["--profile", "slurm", "--slurm-init-seconds-before-status-checks", "2",
            "--slurm-keep-successful-logs"] if slurm else ["--cores", "1"]
    cmd = [SNAKEMAKE, "-d", str(workdir), *mode, *args, "--configfile", str(workdir / "config.yaml")]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if wait:
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env, **kw)
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kw)


def study(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(small_config(root / "results"), sort_keys=False))
    return root / "results"


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The target run locally: the reference."""
    res = study(tmp_path_factory.mktemp("local"))
    r = snakemake(res.parent, str(eval_json(res)), slurm=False)
    assert r.returncode == 0, r.stderr[-4000:]
    return res


def failure(r, res: Path) -> str:
    logs = "\n".join(f"== {p}\n{p.read_text()[-1500:]}" for p in sorted(res.parent.rglob("*.log")))
    return (r.stdout if isinstance(r.stdout, str) else "")[-3000:] + (r.stderr or "")[-4000:] + logs[-6000:]


@pytest.fixture(scope="module")
def on_slurm(cluster, tmp_path_factory):
    """The same target through `snakemake --profile slurm`; (results, Snakemake's output)."""
    root = tmp_path_factory.mktemp("slurm")
    res = study(root)
    r = snakemake(root, str(eval_json(res)), slurm=True)
    assert r.returncode == 0, failure(r, res)
    return res, r.stdout + r.stderr


def evaluation(res: Path) -> tuple:
    d = json.loads(eval_json(res).read_text())
    return d["summary"]["accuracy"], d["summary"]["n"], d["records"]


def test_train_and_evaluate_on_slurm_match_local(on_slurm, local):
    res, out = on_slurm
    assert sha256(final(res) / "model.safetensors") == sha256(final(local) / "model.safetensors")
    assert evaluation(res) == evaluation(local)
    # the jobs went through Slurm (one log per job id, kept by --slurm-keep-successful-logs)
    assert len(list(res.parent.joinpath(".snakemake", "slurm_logs").rglob("*.log"))) >= 4


def test_cluster_without_accounting_polls_with_squeue(on_slurm):
    """sacct answers "accounting storage is disabled" here (scripts/slurm-provision.sh configures none): with
    the plugin's default (sacct) Snakemake would never see a job finish; the Snakefile switched it."""
    _, out = on_slurm
    r = subprocess.run(["sacct", "-X", "-n"], capture_output=True, text=True)
    if "accounting storage is disabled" not in (r.stdout + r.stderr):
        pytest.skip("this cluster has accounting")
    assert "job status from squeue" in out, out[-3000:]


def running_train_job() -> str | None:
    r = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        job, _, comment = line.partition("|")
        if "train" in comment:
            return job
    return None


def test_sigterm_checkpoints_requeues_and_resumes(on_slurm, local):
    """The training of `on_slurm` again (its run directory removed: the data and base model stay), signalled
    once it has saved checkpoint-10."""
    res, _ = on_slurm
    shutil.rmtree(final(res).parent.parent)
    ckpts = final(res).parent / "checkpoints"
    tmp_path = res.parent
    proc = snakemake(tmp_path, str(final(res)), slurm=True, wait=False)
    try:
        job, deadline = None, time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            job = running_train_job()
            if job and (ckpts / "checkpoint-10" / "trainer_state.json").exists():
                break
            time.sleep(0.2)
        assert job and proc.poll() is None, "the training job never reached checkpoint-10 under Slurm"
        subprocess.run(["scancel", "--signal=TERM", job], check=True)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:] + failure(proc, res)
    log = (res / "logs" / "train" / "grpo" / MODEL / "seed0.log").read_text()
    # the trainer's log keeps both attempts: the stop on SIGTERM, the requeue, the resumed run
    assert log.count("== attempt") == 2, log[-3000:]
    assert "stopped on SIGTERM after step" in log and f"requeueing Slurm job {job}" in log, log[-3000:]
    requeued = (final(res).parent.parent / ".requeued").read_text()
    assert f"job {job} requeued" in requeued
    assert "Trying to restart" not in out, "the preemption spent a Snakemake retry"
    # Slurm's own log of that job id: both attempts (--open-mode=append)
    slurm_logs = [p for p in tmp_path.joinpath(".snakemake", "slurm_logs").rglob(f"{job}.log")]
    assert slurm_logs and "DUE TO JOB REQUEUE" in slurm_logs[0].read_text(), slurm_logs
    assert slurm_logs[0].read_text().count("Building DAG of jobs") >= 4   # the job's two Snakemakes, twice
    # resumed from the checkpoint, not from scratch; the same weights as the uninterrupted local run
    assert (final(res).parent.parent / "train.log").read_text() == log   # the run directory's copy
    assert sha256(final(res) / "model.safetensors") == sha256(final(local) / "model.safetensors")
