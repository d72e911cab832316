"""Slurm glue of the workflow (docs/cluster.md), stdlib only (no torch: it runs in the train rules' shell
after the trainer has exited, and in the Snakefile's `onstart`).

- `adapt_status_command(settings)`: on a cluster without accounting (`AccountingStorageType =
  accounting_storage/none`, no slurmdbd) `sacct` answers "Slurm accounting storage is disabled" and
  snakemake-executor-plugin-slurm 2.x, which defaults to sacct whenever the binary exists, then never sees a
  job finish: Snakemake waits forever. There the status command must be squeue (`--slurm-status-command
  squeue`); the Snakefile's `onstart` sets it when `scontrol show config` says so.
- `python -m ilr.slurm requeue --run-dir D --exit-code N`: a training job that was signalled (preemption,
  `scancel --signal=TERM`, the profile's `--signal=TERM@600` before the time limit) saves a checkpoint and
  exits 128 + the signal (ilr/train/preempt.py; under `accelerate launch` the launcher's code, after the
  trainer's "stopped on SIGTERM after step N; checkpoint saved" line). Inside a Slurm batch job that exit would end the job FAILED
  and spend one of Snakemake's `retries`; a job preempted more often than that would fail the study. So the
  train rules' shell calls this instead: when the checkpoint is newer than the one of the previous requeue
  (the run made progress), it asks Slurm to requeue the job (`scontrol requeue $SLURM_JOB_ID`: same job id,
  back to PENDING; the executor plugin keeps waiting for it, no retry spent) and the job resumes from the
  checkpoint. Without progress (a signal before the first new step), outside Slurm, or where Slurm refuses
  (a job submitted with `--no-requeue`, a user not allowed to requeue), it does nothing: the job fails with
  the trainer's code and Snakemake's `retries` apply, as for any other failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ilr.layout import RunPaths

PREEMPT_CODES = {128 + 15, 128 + 10, 128 + 2}   # SIGTERM, SIGUSR1, SIGINT: ilr/train/preempt.py's clean exits
# what ilr/train/preempt.py's Interrupted prints; under `accelerate launch` the launcher exits 1, not 128 + signal
CLEAN_STOP = re.compile(r"stopped on SIG\w+ after step \d+; checkpoint saved")
REQUEUED = ".requeued"                           # in the run directory: one line per requeue (the step reached)


def cluster_config(timeout: float = 10) -> dict[str, str] | None:
    """`scontrol show config` as a dict, or None where there is no Slurm (or it does not answer)."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    conf = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^(\w+)\s*=\s*(.*?)\s*$", line)
        if m:
            conf[m.group(1)] = m.group(2)
    return conf


def has_accounting(conf: dict[str, str]) -> bool:
    return conf.get("AccountingStorageType", "accounting_storage/none") != "accounting_storage/none"


def min_job_age(conf: dict[str, str]) -> int | None:
    m = re.match(r"(\d+)", conf.get("MinJobAge", ""))
    return int(m.group(1)) if m else None


def adapt_status_command(settings, log=print, conf: dict[str, str] | None = None) -> str | None:
    """On a cluster without accounting, make the slurm executor poll with squeue; returns the command set
    (None: nothing changed). `settings`: the executor's settings (Snakemake's `workflow.executor_settings`);
    anything without a `status_command` (another executor, a job step) is left alone."""
    if getattr(settings, "status_command", None) is None:
        return None
    conf = cluster_config() if conf is None else conf
    if conf is None or has_accounting(conf):
        return None
    if settings.status_command != "squeue":
        log("Slurm without accounting (AccountingStorageType=accounting_storage/none: sacct answers nothing): "
            "job status from squeue (--slurm-status-command squeue)")
        settings.status_command = "squeue"
    # the plugin itself falls back to sacct where MinJobAge < 3 x the first status check's delay; squeue
    # forgets a finished job after MinJobAge, and the plugin polls at most every 180 s
    age, first = min_job_age(conf), getattr(settings, "init_seconds_before_status_checks", 40) or 40
    if age is None or age < max(3 * first, 180):
        log(f"warning: MinJobAge={age} on a cluster without accounting: squeue may forget a finished job before "
            "Snakemake asks (the plugin polls up to every 180 s, and below 3 x "
            "--slurm-init-seconds-before-status-checks it uses sacct); ask for MinJobAge >= 300")
    return "squeue"


# ---- requeue after a clean checkpoint -------------------------------------------------------------------

def checkpoint_step(run_dir: Path) -> int | None:
    """The step every model of the run has a complete checkpoint of (the members of a group stop together);
    None where a model has none."""
    steps = []
    for model in (m for m in RunPaths(run_dir).members() if m.checkpoints.is_dir()):
        done = [int(p.parent.name.split("-")[1]) for p in model.checkpoints.glob("checkpoint-*/trainer_state.json")]
        if not done:
            return None
        steps.append(max(done))
    return min(steps) if steps else None


def previous_requeue_step(run_dir: Path) -> int | None:
    f = run_dir / REQUEUED
    if not f.exists():
        return None
    steps = [int(m.group(1)) for m in re.finditer(r"step (\d+)", f.read_text())]
    return max(steps) if steps else None


def stopped_cleanly(exit_code: int, attempt_log: str = "") -> bool:
    """The trainer saved a checkpoint on a signal and exited: 128 + the signal, or (multi-GPU, where the
    launcher's own code comes back) a non-zero code after the trainer's "stopped on ... checkpoint saved"."""
    return exit_code in PREEMPT_CODES or (exit_code != 0 and bool(CLEAN_STOP.search(attempt_log)))


def requeue(run_dir: Path, exit_code: int, env=os.environ, log=None, attempt_log: str = "",
            keep_log=None) -> bool:
    """Requeue this Slurm job if the trainer stopped cleanly on a signal and its checkpoint advanced since the
    last requeue; returns whether Slurm accepted. `attempt_log`: this attempt's lines of the trainer's log.
    `keep_log()` runs once the decision is logged, before the requeue, which may end this process: the train
    rule's copy of the log (`<run dir>/train.log`, what the next attempt restores) then holds it."""
    log = log or (lambda msg: print(f"[ilr requeue] {msg}", file=sys.stderr, flush=True))
    job = env.get("SLURM_JOB_ID")
    if not job or not stopped_cleanly(exit_code, attempt_log):
        return False
    step, before = checkpoint_step(run_dir), previous_requeue_step(run_dir)
    if step is None or (before is not None and step <= before):
        log(f"no new checkpoint since the last requeue (step {step}, before {before}): not requeueing; "
            f"the job fails with {exit_code} and Snakemake's retries apply")
        return False
    # the requeue ends the job's processes (SIGTERM, SIGKILL after KillWait): this one too, unless it ignores it
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    log(f"checkpoint at step {step}: requeueing Slurm job {job} (scontrol requeue)")
    if keep_log is not None:
        keep_log()
    r = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if r.returncode != 0:
        log(f"scontrol requeue {job} refused ({r.stderr.strip()}): the job fails with {exit_code} "
            "and Snakemake's retries apply")
        return False
    with open(run_dir / REQUEUED, "a") as f:
        f.write(f"job {job} requeued at step {step}, {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    log(f"checkpoint at step {step}: Slurm job {job} requeued; it resumes from there")
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ilr.slurm")
    sub = p.add_subparsers(dest="cmd", required=True)
    rq = sub.add_parser("requeue", help="requeue this Slurm job after a clean checkpoint (train rules)")
    rq.add_argument("--run-dir", required=True, type=Path)
    rq.add_argument("--exit-code", required=True, type=int)
    rq.add_argument("--log", type=Path, help="the trainer's log: its last attempt is read for a clean stop")
    sub.add_parser("status-command", help="the status command the slurm profile should use here")
    args = p.parse_args(argv)
    if args.cmd == "requeue":
        text = args.log.read_text(errors="replace") if args.log and args.log.exists() else ""
        attempt = text[text.rfind("== attempt"):] if "== attempt" in text else text
        # Slurm's requeue may end this job's shell before it copies the log into the run directory, and
        # Snakemake deletes the log before the requeued attempt: copy it here, with the decision in it
        keep = (lambda: shutil.copyfile(args.log, args.run_dir / "train.log")) if args.log else None
        return 0 if requeue(args.run_dir, args.exit_code, attempt_log=attempt, keep_log=keep) else 1
    conf = cluster_config()
    print("none (no Slurm)" if conf is None else "sacct" if has_accounting(conf) else "squeue")
    return 0


if __name__ == "__main__":
    sys.exit(main())
