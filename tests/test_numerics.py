"""Bit-identical CPU numerics (ilr/numerics.py): with the tiny config's `numerics`, a built model's weights
do not depend on the machine's native instruction set or thread count."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from ilr import numerics


def test_environment_of_each_setting():
    assert numerics.environment({"cpu_isa": "native", "threads": None}) == {}
    env = numerics.environment({"cpu_isa": "avx2", "threads": 1})
    assert env == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2",
                   "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    tiny = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["numerics"]
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["numerics"]
    assert numerics.environment(tiny) == env and numerics.environment(paper) == {}


BUILD = """
import hashlib, sys, yaml, torch
sys.path.insert(0, {repo!r})
from ilr import study
from ilr.tiny.build import build_model
c = study.load({config!r})
c["models"]["tiny-llama"]["build"]["warmup_steps"] = 30
build_model(c, "tiny-llama", {out!r}, log=lambda *a: None)
print(torch.backends.cpu.get_cpu_capability(), hashlib.sha256(open({out!r} + "/model.safetensors", "rb").read()).hexdigest())
"""


def build(tmp_path, name: str, env: dict, pinned: bool) -> tuple[str, str]:
    """Build a tiny model in a fresh process whose environment plays a machine: `env` (its native ISA, its
    threads), then the config's numerics pinned on top (as `python -m ilr` does) when `pinned`."""
    code = BUILD.format(repo=str(REPO), config=str(REPO / "config" / "config.yaml"), out=str(tmp_path / name))
    if pinned:
        code = ("from ilr import numerics; import yaml; numerics.pin(yaml.safe_load(open("
                f"{str(REPO / 'config' / 'config.yaml')!r}))['numerics'])\n") + code
    clean = {k: v for k, v in os.environ.items() if k not in numerics.environment({"cpu_isa": "avx2", "threads": 1})}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**clean, **env}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    capability, digest = r.stdout.split()[-2:]
    return capability, digest


def test_weights_do_not_depend_on_the_machine(tmp_path):
    import torch

    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this CPU has no AVX2")
    # two "machines": this CPU's widest ISA with 2 threads, and AVX2 with 1 thread
    wide = {"ATEN_CPU_CAPABILITY": "avx512", "OMP_NUM_THREADS": "2"}
    narrow = {"ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "1"}
    pinned_wide = build(tmp_path, "a", wide, pinned=True)
    pinned_narrow = build(tmp_path, "b", narrow, pinned=True)
    assert pinned_wide == pinned_narrow and pinned_wide[0] == "AVX2"
    if torch.backends.cpu.get_cpu_capability() == "AVX512":   # the premise: unpinned, the machines differ
        assert build(tmp_path, "c", wide, pinned=False)[1] != pinned_wide[1]
