"""Bit-identical CPU numerics: the same tiny study (weights, records, tables) on any x86-64 machine.

Three things make float results on the CPU differ between machines that run the same code:
- threads: a reduction split over threads adds each thread's partial sum, in an order that depends on the
  thread count;
- the instruction set the kernels dispatch to: AVX-512 and AVX2 kernels add in other orders and evaluate
  exp/log with other approximations. Three libraries choose by the CPU: ATen's own vectorized kernels
  (softmax, norms, attention, elementwise), MKL's matrix multiply (sgemm's code path and blocking), and
  oneDNN's JIT kernels.
Config `numerics` pins them (ilr/numerics.py is applied by `python -m ilr` and tests/conftest.py):
threads, ATEN_CPU_CAPABILITY, MKL_CBWR (MKL's Conditional Numerical Reproducibility; STRICT also makes
it independent of memory alignment) and ONEDNN_MAX_CPU_ISA. The libraries read these when torch loads
them, so `pin` must run before torch is imported. GPU kernels are untouched: `cpu_isa: native` (the
paper config) leaves every CPU its fastest path.
"""

from __future__ import annotations

import os
import sys

# config numerics.cpu_isa -> the environment that makes every x86-64 CPU with that ISA take the same paths
ISA = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE,STRICT", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def environment(numerics: dict) -> dict[str, str]:
    env = dict(ISA[numerics.get("cpu_isa", "native")])
    if numerics.get("threads"):
        n = str(numerics["threads"])
        env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
    return env


def pin(numerics: dict) -> None:
    """Set the environment of `numerics` for this process (and its children): before torch is imported."""
    env = environment(numerics)
    if "torch" in sys.modules and any(os.environ.get(k) != v for k, v in env.items()):
        raise RuntimeError("ilr.numerics.pin() ran after torch was imported: its CPU libraries have already "
                           "chosen their code paths")
    os.environ.update(env)


def pin_from_argv(argv: list[str]) -> None:
    """`python -m ilr <stage> --config FILE ...`: pin the numerics that FILE asks for (no config: nothing)."""
    numerics = requested(argv)
    if numerics is not None:
        pin(numerics)


def requested(argv: list[str], cwd: str | None = None) -> dict | None:
    """The `numerics:` of the config FILE in `--config FILE` (relative to `cwd`), or None (no such file or
    section: the stage's own loading reports a broken file, with the line and key)."""
    if "--config" not in argv or argv.index("--config") + 1 >= len(argv):
        return None
    import yaml

    path = os.path.join(cwd or os.getcwd(), argv[argv.index("--config") + 1])
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    if isinstance(config, dict) and isinstance(config.get("numerics"), dict):
        return config["numerics"]
    return None
