"""Every script in benchmarks/ runs, at a small size, so that a change that breaks one fails the suite (the
figures themselves are the benchmarks' business: they are measured on a quiet machine, never asserted here).
Each prints its figures with the headline last."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from factories import REPO, run_ilr, train_args

SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py"))


def bench(name: str, *args: str, timeout: int = 900, whole: bool = False) -> str:
    """The script's last line printed (its headline), or with `whole` all it printed."""
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *args], cwd=REPO, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, f"{name}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert lines, f"{name} printed nothing"
    return "\n".join(lines) if whole else lines[-1]


def test_every_script_is_covered():
    """A new benchmark script needs its small run below."""
    covered = {"aipo_step.py", "calibration_levers.py", "gpu_smoke.py", "grading_rates.py", "grading_speed.py",
               "ilr_step.py", "warm_start.py"}
    assert set(SCRIPTS) == covered, set(SCRIPTS) ^ covered


def test_step_benchmarks(warm_models):
    models = [str(p) for p in warm_models.values()]
    small = ("--steps", "2", "--questions", "2", "--G", "2")   # the figures: medians over the steps after the first
    out = bench("ilr_step.py", "--models", *models, *small, "--rounds", "2", "--sizes", "32x1", whole=True)
    assert "generate: Idea3 fusion" in out and "32x1" in out and out.splitlines()[-1].startswith("ratio ")
    assert "round 2 " in out and "positions the loss forward runs" in out
    assert bench("aipo_step.py", "--model", models[0], "--helper", models[1], *small)


def test_grading_benchmarks(shared_data):
    assert bench("grading_rates.py", "--data", str(shared_data), "--limit", "20", "--only", "gsm8k", "math500")
    assert bench("grading_speed.py", "--data", str(shared_data), "--repeat", "1", "--skip-mbpp")


def test_warm_start_benchmark():
    assert bench("warm_start.py", "--repeat", "1", "--warmup-steps", "5").startswith("ratio ")


def test_calibration_levers_on_a_real_ilr_run(warm_study):
    """On the rollout log of a real (tiny, two-step) ILR run."""
    cfg, config_path, d = warm_study
    cfg["training"]["steps"] = 2
    config_path.write_text(yaml.safe_dump(cfg))
    out = d / "run"
    proc = run_ilr(*train_args(d, config_path, "ilr", out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    headline = bench("calibration_levers.py", str(out), "--format", str(cfg["training"]["reward_format"]))
    assert headline.startswith("calibration_effect (member, format)"), headline


@pytest.mark.slow
def test_gpu_smoke_on_cpu(tmp_path):
    """The README's first command on a GPU node, checked on the CPU (`--allow-cpu`)."""
    assert "total" in bench("gpu_smoke.py", "--allow-cpu", "--out", str(tmp_path / "smoke"), timeout=1500)
