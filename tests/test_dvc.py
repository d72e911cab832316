"""DVC and cached reruns on a real reduced tiny study (slow): push the outputs to a local DVC remote, pull
them into a fresh clone (bit-identical checkpoints, every output of `all` restored, nothing reruns), each
eval cell carries its checkpoint's DVC hash; an unrelated config key reruns nothing; a code change in one
stage reruns that stage's jobs only; a method's hyper-parameter reruns that method's training and what
depends on it. Fast: every output of `all` (tiny and paper study) lies where `make push` looks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_e2e import job_stats, reduced_config

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# the directories under the study's `results:` that `make push` / `make pull` version (Makefile DVC_DIRS);
# trained checkpoints (runs/<method>/<group>/seed<S>/<model>/final) are targets of their own
DVC_DIRS = re.search(r"^DVC_DIRS := (.*)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
FINAL = re.compile(r"^runs/[^/]+/[^/]+/seed\d+/[^/]+/final$")
# what the Makefile's .venv stamp depends on: newer than the stamp, `make push` / `make pull` reinstall the venv
STAMP_INPUTS = re.search(r"^\$\(STAMP\): (.*)$", (REPO / "Makefile").read_text(), re.M).group(1).split()


def sh(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=3600, env=env)
    assert not check or r.returncode == 0, f"{cmd}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def working_tree(dst: Path) -> Path:
    """The repository as it is (tracked and untracked files, not ignored ones), committed in a new git
    repository: the code under test, not the last commit."""
    listed = sh(["git", "ls-files", "-co", "--exclude-standard", "-z"], REPO).stdout.split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.exists() or src.is_symlink():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel, follow_symlinks=False)
    sh(["git", "init", "-q"], dst)
    sh(["git", "add", "-A"], dst)
    sh(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "tree"], dst)
    return dst


def clone(src: Path, dst: Path) -> Path:
    sh(["git", "clone", "-q", str(src), str(dst)], cwd=src.parent)
    (dst / ".venv").symlink_to(BIN.parent)
    # the shared .venv is up to date: a fresh checkout's pyproject.toml and constraints must not look newer than
    # its stamp (make push / pull would reinstall it, and its editable install would then import this clone's ilr)
    assert STAMP_INPUTS, "the Makefile's $(STAMP) rule names no inputs"
    for name in STAMP_INPUTS:
        os.utime(dst / name, (0, 0))
    sh(["git", "config", "user.email", "t@t"], dst), sh(["git", "config", "user.name", "t"], dst)
    return dst


def smk(d: Path, *args: str, config: str = "study.yaml") -> subprocess.CompletedProcess:
    return sh([str(BIN / "snakemake"), "--configfile", config, "--cores", "2", *args], d, check=False)


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def all_outputs(d: Path, *args: str) -> list[str]:
    """Every output file or directory of every job of `all` (a dry-run in a tree without results)."""
    r = sh([str(BIN / "snakemake"), "-n", "all", *args], d, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    out = []
    for line in (r.stdout + r.stderr).splitlines():
        if line.startswith("    output: "):
            out += line[len("    output: "):].split(", ")
    assert out
    return out


@pytest.mark.parametrize("study", ["config/config.yaml", "config/paper.yaml"])
def test_every_output_of_all_is_versioned(tmp_path, study):
    """`make push` / `make pull` cover the whole study: each output of `all` is under a DVC_DIRS directory
    or is a trained checkpoint (a new output directory in the workflow must be added to the Makefile)."""
    results = Path(yaml.safe_load((REPO / study).read_text())["results"])
    outside = []
    for f in all_outputs(tmp_path, "-s", str(REPO / "Snakefile"), "--cores", "1", "--configfile", str(REPO / study)):
        rel = Path(f).relative_to(results).as_posix()   # (fails for an output outside the results directory)
        if rel.split("/")[0] not in DVC_DIRS and not FINAL.match(rel):
            outside.append(rel)
    assert not outside, f"outputs of `all` that make push/pull miss (Makefile DVC_DIRS): {outside[:10]}"


def imported_ilr(tmp_path: Path) -> str:
    """Where the shared .venv's python imports ilr from (outside any checkout's working directory)."""
    return sh([str(BIN / "python"), "-c", "import ilr; print(ilr.__file__)"], tmp_path).stdout.strip()


@pytest.mark.slow
def test_push_pull_and_cached_reruns(tmp_path):
    venv_ilr = imported_ilr(tmp_path)
    a = clone(working_tree(tmp_path / "src"), tmp_path / "a")
    c = reduced_config()
    (a / "study.yaml").write_text(yaml.safe_dump(c, sort_keys=False))
    outputs = all_outputs(a, "--configfile", "study.yaml")
    assert any(o.startswith("results/multi_agent/") for o in outputs)
    r = smk(a, "all")
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Nothing to be done" in smk(a, "-n", "all").stdout

    # -- cached partial reruns (after a real run) ------------------------------------------------------
    c2 = yaml.safe_load((a / "study.yaml").read_text())
    c2["resources"]["default"]["mem_mb"] = 9999             # read by no stage
    (a / "unrelated.yaml").write_text(yaml.safe_dump(c2, sort_keys=False))
    r = smk(a, "-n", "all", config="unrelated.yaml")
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout[-2000:]
    c3 = yaml.safe_load((a / "study.yaml").read_text())
    c3["methods"]["ppo"]["learning_rate"] = 1.0e-3          # one method's hyper-parameter
    (a / "hyper.yaml").write_text(yaml.safe_dump(c3, sort_keys=False))
    stats = job_stats((r := smk(a, "-n", "all", config="hyper.yaml")).stdout + r.stderr)
    n = len(c["models"])
    assert stats.get("train_single") == n and not any(k.startswith("train_group") for k in stats), stats
    assert sum(v for k, v in stats.items() if k.startswith("evaluate")) == n and stats.get("tables") == 1, stats
    assert all("method=ppo" in l for l in (r.stdout).splitlines() if "wildcards:" in l and "method=" in l)
    tables_py = a / "ilr" / "report" / "tables.py"
    original = tables_py.read_text()
    tables_py.write_text(original + "\n# a code change in the tables stage\n")
    stats = job_stats((r := smk(a, "-n", "all")).stdout + r.stderr)
    assert set(stats) - {"all"} <= {"tables", "report", "latex_tables"} and stats.get("tables") == 1, stats
    tables_py.write_text(original)
    os.utime(tables_py, (0, 0))  # back to before the run: nothing to do again
    assert "Nothing to be done" in smk(a, "-n", "all").stdout

    # -- DVC: push from a, pull into a fresh clone b ----------------------------------------------------
    remote = tmp_path / "remote"
    sh([str(BIN / "dvc"), "remote", "modify", "--local", "local", "url", str(remote)], a)
    sh(["make", "push"], a)
    pointers = sorted((a / "results").rglob("*.dvc"))
    finals = sorted((a / "results" / "runs").glob("*/*/seed*/*/final"))
    assert finals and all(f.with_name("final.dvc") in pointers for f in finals)
    sh(["git", "add", "-f", "study.yaml"], a)
    sh(["git", "add", "results"], a)
    sh(["git", "commit", "-qm", "results"], a)
    committed = sh(["git", "ls-files", "results"], a).stdout.split()
    assert set(committed) >= {p.relative_to(a).as_posix() for p in pointers}

    # every eval cell of a trained model names the DVC hash of the checkpoint it evaluated
    import json
    for f in finals:
        md5 = yaml.safe_load(f.with_name("final.dvc").read_text())["outs"][0]["md5"]
        method, group, seed, model = f.parts[-5], f.parts[-4], f.parts[-3], f.parts[-2]
        cells = list((a / "results" / "eval" / method / group / model / seed).glob("*.json"))
        for cell in cells:
            assert json.loads(cell.read_text())["summary"]["provenance"]["checkpoint_dvc_md5"] == md5, cell

    b = clone(a, tmp_path / "b")
    sh([str(BIN / "dvc"), "remote", "modify", "--local", "local", "url", str(remote)], b)
    sh(["make", "pull", "SMK_ARGS=--configfile study.yaml"], b)
    for f in finals:
        rel = f.relative_to(a)
        assert files(a / rel) == files(b / rel), f"{rel}: pulled checkpoint differs"
    missing = [o for o in outputs if not (b / o).exists()]
    assert not missing, f"outputs of `all` that make pull did not restore: {missing[:10]}"
    for d in DVC_DIRS:
        if (a / "results" / d).exists():
            assert files(a / "results" / d) == files(b / "results" / d), d
    r = smk(b, "-n", "all")
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout[-3000:]

    # each run's record came too (rollout logs, metrics): the tables stage rerun in b writes a's tables, the
    # coop_ratio table's cooperation column included (read from the rollout logs)
    records = [p.relative_to(a) for p in (a / "results" / "runs").rglob("*.jsonl") if "checkpoints" not in p.parts]
    assert any(p.name == "rollouts.jsonl" for p in records) and any(p.name == "metrics.jsonl" for p in records)
    assert all((b / p).read_bytes() == (a / p).read_bytes() for p in records), "a run record was not pulled"
    r = smk(b, "--forcerun", "tables", "all")
    assert r.returncode == 0 and job_stats(r.stdout + r.stderr).get("tables") == 1, r.stderr[-3000:]
    assert files(a / "results" / "tables") == files(b / "results" / "tables")
    assert imported_ilr(tmp_path) == venv_ilr, "make push / pull reinstalled the shared .venv from a clone"
