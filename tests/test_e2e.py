"""One real end-to-end Snakemake run of a reduced tiny study in a temporary directory (minutes).

Then: `snakemake -n all` has nothing to do; deleting one evaluation output reruns exactly the job that
made it and the tables; changing one method's hyper-parameter reruns that method's training, its
evaluations and the tables, nothing else (Snakemake's params trigger on ilr.study.stage_spec hashes).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"

pytestmark = pytest.mark.slow


def reduced_config() -> dict:
    with open(REPO / "config" / "config.yaml") as f:
        c = yaml.safe_load(f)
    c["results"] = "results"
    c["data"]["train"].update(n=64, n_val=16)
    c["benchmarks"] = {k: dict(v, n=16) for k, v in c["benchmarks"].items() if k in ("arith", "arith_code")}
    keep = list(c["models"])[:2]
    c["models"] = {k: v for k, v in c["models"].items() if k in keep}
    for m in c["models"].values():
        m["path"] = "results/models/" + m["path"].rstrip("/").split("/")[-1]
        if "warmup_steps" in m.get("build", {}):
            m["build"]["warmup_steps"] = min(m["build"]["warmup_steps"], 20)
    c["groups"] = {"group1": keep}
    c["ability"]["max_new_tokens"] = 16
    c["difficulty"].update(samples=2, max_new_tokens=16)
    c["training"].update(steps=2, questions_per_step=2, num_generations=2, max_new_tokens=16, save_steps=1)
    for m in c["methods"].values():
        if "groups" in m:
            m["groups"] = ["group1"]
        if m.get("helper") not in (None, *keep):   # AIPO's helper: a model of the study
            m["helper"] = keep[-1]
    c["methods"]["ilr_ratio"]["p"] = [0.0, 1.0]
    c["multi_agent"].update(pairs=[keep], benchmark="arith")
    c["evaluation"].update(max_new_tokens=16, bootstrap=100, granularity="model")
    c["tables"] = {
        "main": {"benchmarks": ["arith", "arith_code"]},
        "ablation": {"rows": [[keep[0], "group1"]], "benchmarks": ["arith"]},
        "coop_ratio": {"group": "group1", "benchmarks": ["arith"]},
    }
    return c


def run(workdir: Path, *args: str, configfile: str = "config.yaml") -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
           str(workdir / configfile), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=3600)


def job_stats(output: str) -> dict[str, int]:
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal\s+(\d+)", output, re.S)
    if not m:
        return {}
    return {name: int(n) for name, n in re.findall(r"^(\S+)\s+(\d+)$", m.group(1), re.M)}


def nothing_to_do(r: subprocess.CompletedProcess) -> bool:
    return r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr


def test_end_to_end(tmp_path):
    c = reduced_config()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(c, sort_keys=False))
    r = run(tmp_path, "all")
    logs = "\n".join(f"== {p}\n{p.read_text()[-1500:]}" for p in sorted((tmp_path / "results" / "logs").rglob("*.log"))
                     if "Error" in p.read_text() or "Traceback" in p.read_text()) if r.returncode else ""
    assert r.returncode == 0, r.stderr[-4000:] + logs

    res = tmp_path / "results"
    for name in ("main", "ablation", "coop_ratio"):
        assert (res / "tables" / f"{name}.md").stat().st_size > 0
        assert (res / "tables" / f"{name}.csv").stat().st_size > 0
    assert (res / "figures" / "coop_ratio.png").exists()
    assert "solo" in (res / "tables" / "main.md").read_text()
    # one rollout-row shape (METHOD.md, "Rollout log"): step, question_id, completions and rewards,
    # top-level (grpo, ppo, aipo) or per model (the ILR family), in every run of every trainer
    logs = sorted(res.glob("runs/**/rollouts.jsonl"))
    from ilr.config import method_config

    trainers = {method_config(c, p.relative_to(res / "runs").parts[0])["trainer"] for p in logs}
    assert trainers == {m["trainer"] for m in c["methods"].values()}, trainers
    for p in logs:
        for row in map(json.loads, p.read_text().splitlines()):
            assert isinstance(row["step"], int) and row["question_id"], p
            for part in row["models"].values() if "models" in row else [row]:
                trained = part["completions"]["fusion"] if "models" in row else part["completions"]
                assert len(trained) == len(part["rewards"]) > 0, p

    # up to date
    r = run(tmp_path, "-n", "all")
    assert nothing_to_do(r), r.stdout[-3000:]

    # One evaluation output deleted. Snakemake 9 treats a missing intermediate file as fine while
    # everything downstream of it is up to date (`-n all` has nothing to do); asking for the file
    # reruns exactly the job that makes it, and then `all` reruns exactly the tables that read it.
    model = list(c["models"])[0]
    victim = res / "eval" / "grpo" / model / model / "seed0" / "arith.json"
    rel = str(victim.relative_to(tmp_path))
    victim.unlink()
    r = run(tmp_path, "-n", rel)
    stats = job_stats(r.stdout + r.stderr)
    assert sum(v for k, v in stats.items() if k.startswith("evaluate")) == 1 and sum(stats.values()) == 1, stats
    r = run(tmp_path, rel)
    assert r.returncode == 0 and victim.exists(), r.stderr[-3000:]
    r = run(tmp_path, "-n", "all")
    stats = job_stats(r.stdout + r.stderr)
    assert stats == {"tables": 1, "all": 1}, stats
    r = run(tmp_path, "all")
    assert r.returncode == 0, r.stderr[-3000:]
    assert nothing_to_do(run(tmp_path, "-n", "all"))

    # one method's hyper-parameter changed: that method's trainings, their evaluations, the tables
    c["methods"]["grpo"]["learning_rate"] = 1.0e-3
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(c, sort_keys=False))
    r = run(tmp_path, "-n", "all", configfile="changed.yaml")
    stats = job_stats(r.stdout + r.stderr)
    n_models = len(c["models"])
    assert stats.get("train_single") == n_models, stats
    assert sum(v for k, v in stats.items() if k.startswith("evaluate")) == n_models, stats
    assert stats.get("tables") == 1 and sum(stats.values()) == 2 * n_models + 2, stats
    for line in (r.stdout + r.stderr).splitlines():
        if line.strip().startswith("wildcards:") and "method=" in line:
            assert "method=grpo" in line, line
