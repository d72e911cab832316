"""Preemption: SIGTERM (what Slurm sends before preempting or at the time limit) makes a training run
save a checkpoint at the end of its current step and exit non-zero; rerun, it resumes from there and
ends with the same weights as an uninterrupted run (ilr/train/preempt.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, run_ilr, train_args
from ilr.io import read_jsonl

MODELS = ("tiny-llama", "tiny-qwen-s")


def weights(path):
    return load_file(str(path / "model.safetensors"))


def checkpoints(d):
    return sorted(int(p.parent.name.split("-")[1]) for p in d.glob("checkpoint-*/trainer_state.json"))


def interrupt(args, marks, sig=signal.SIGTERM, timeout=300):
    """Start `python -m ilr <args>`, send `sig` once every mark file exists; return (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "ilr", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not all(m.exists() for m in marks) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before the signal: " + proc.stderr.read()[-2000:]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])   # Slurm; Ctrl-C
def test_ilr_group_saves_on_signal_and_resumes(warm_study, sig):
    cfg, config_path, d = warm_study
    straight, stopped = d / "straight", d / "stopped"
    r = run_ilr(*train_args(d, config_path, "ilr", straight))
    assert r.returncode == 0, r.stderr[-3000:]

    # the signal comes while the group works on step 3 (after both members saved checkpoint-2)
    marks = [stopped / n / "checkpoints" / "checkpoint-2" / "trainer_state.json" for n in MODELS]
    code, err = interrupt(train_args(d, config_path, "ilr", stopped), marks, sig)
    assert code == 128 + sig, err[-3000:]
    reached = [checkpoints(stopped / n / "checkpoints") for n in MODELS]
    assert reached[0] == reached[1], f"the members stopped at different steps: {reached}"
    last = reached[0][-1]
    assert last in (3, 4) and 2 in reached[0], reached   # saved at the end of the step in progress
    assert f"after step {last}" in err
    for n in MODELS:
        assert not (stopped / n / "final").exists()
        state = json.loads((stopped / n / "checkpoints" / f"checkpoint-{last}" / "trainer_state.json").read_text())
        assert state["global_step"] == last
    assert max(r["step"] for r in read_jsonl(stopped / "rollouts.jsonl")) == last

    resumed = run_ilr(*train_args(d, config_path, "ilr", stopped))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for n in MODELS:
        a, b = weights(straight / n / "final"), weights(stopped / n / "final")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{n}: resumed weights differ"
    assert read_jsonl(straight / "rollouts.jsonl") == read_jsonl(stopped / "rollouts.jsonl")


@pytest.mark.parametrize("method", ["ppo"])  # grpo uses the same callback as the ILR members
def test_single_agent_saves_on_signal_and_resumes(warm_study, method):
    cfg, config_path, d = warm_study
    model = MODELS[1]

    def args(out):
        return ["train", "--config", str(config_path), "--method", method, "--group", model, "--seed", "0",
                "--train", str(d / "train.jsonl"), "--out-dir", str(out)]

    straight, stopped = d / "straight", d / "stopped"
    r = run_ilr(*args(straight))
    assert r.returncode == 0, r.stderr[-3000:]
    ckpts = stopped / model / "checkpoints"
    code, err = interrupt(args(stopped), [ckpts / "checkpoint-2" / "trainer_state.json"], signal.SIGUSR1)
    assert code == 128 + signal.SIGUSR1, err[-3000:]
    last = checkpoints(ckpts)[-1]
    assert last in (3, 4) and f"after step {last}" in err, (checkpoints(ckpts), err[-2000:])
    assert not (stopped / model / "final").exists()
    resumed = run_ilr(*args(stopped))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = weights(straight / model / "final"), weights(stopped / model / "final")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"


def test_members_restore_rng_state_concurrently(tmp_path):
    """The m members of a group resume in m threads; transformers' RNG-state load allowlists numpy for
    torch.load through a process-wide set that each thread enters and leaves. Unserialised, one thread's
    exit pulls the allowlist from under another's load (seen in CI, about 1 load in 600; forced here by
    switching threads every microsecond, where it fails about 1 load in 8)."""
    import random
    import threading

    import numpy as np
    from trl import GRPOConfig

    from ilr.train.ilr import member_trainer_class

    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    # the state transformers' Trainer._save_rng_state writes on a CPU machine
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()},
               checkpoint / "rng_state.pth")
    cls = member_trainer_class()
    members = []
    for _ in range(3):
        member = cls.__new__(cls)   # only the RNG restore is exercised: no model, no dataset
        member.args = GRPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, report_to=[])
        members.append(member)

    errors = []

    def resume(member):
        for _ in range(200):
            try:
                member._load_rng_state(str(checkpoint))
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(e)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=resume, args=(m,)) for m in members]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, f"{len(errors)} of 600 concurrent RNG restores failed: {errors[0]}"
