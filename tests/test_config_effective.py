"""The effective config a study's jobs read: content-addressed (`<results>/.config/<hash>.yaml`), written once
when a run starts, never rewritten; a dry-run writes nothing under results/; another invocation (another
`--config`) cannot change what a running study's jobs read; a key no stage reads reruns nothing even though
the file's name changes; on a cluster a job reads the file its submitting invocation chose. Files are
written with the user's umask (group-readable results)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ilr import config as cfg
from ilr import study
from ilr.io import DataError, write_json, write_once, write_text

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
TARGET = "data/bench/arith_code.jsonl"      # the cheapest job of the tiny study (prepare_benchmark)


def smk(results: Path, *args: str, config: tuple = (), umask: int | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """`snakemake --cores 1 ARGS --config results=RESULTS CONFIG...`. Targets go before options that take
    lists (`--forcerun`): Snakemake reads every word after such an option as one more of its values."""
    cmd = [SNAKEMAKE, "--cores", "1", *args, "--config", f"results={results}", *config]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env,
                       preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
    r.out = r.stdout + r.stderr
    return r


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under root: content, mtime, mode."""
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(root.rglob("*")) if p.is_file()}


def planned_configs(out: str) -> set[str]:
    return set(re.findall(r"(?:^|\s)ilr [\w-]+ --config (\S+)", out))


def test_dry_run_writes_nothing_and_plans_one_hashed_config(tmp_path):
    results = tmp_path / "r"
    r = smk(results, "-n", "-p", "all")
    assert r.returncode == 0, r.out[-3000:]
    (path,) = planned_configs(r.out)
    assert re.fullmatch(rf"{results}/\.config/[0-9a-f]{{16}}\.yaml", path)
    assert not results.exists()


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """One real job of the tiny study, run under umask 022: (results, the effective config it read)."""
    results = tmp_path_factory.mktemp("eff") / "r"
    r = smk(results, "-p", str(results / TARGET), umask=0o022)
    assert r.returncode == 0, r.out[-3000:]
    (path,) = planned_configs(r.out)
    return results, Path(path)


def test_run_writes_the_config_its_jobs_read(ran):
    results, path = ran
    assert sorted(p.name for p in (results / ".config").iterdir()) == [path.name]
    text = path.read_text()
    assert path.stem == hashlib.sha256(text.encode()).hexdigest()[:16]      # named after its content
    loaded = study.load(path)                                                 # what the job read
    assert loaded == study.validate(cfg.load_yaml(REPO / "config" / "config.yaml") | {"results": str(results)})


def test_another_invocation_cannot_change_what_jobs_read(ran):
    """The issue's case: a dry-run with another --config beside the study leaves every file under results/
    untouched (the old design rewrote the shared effective.yaml, and the running job read the new prompts);
    a real run with another config writes a file of its own."""
    results, path = ran
    before = snapshot(results)
    # (the paper's prose prompts need more than the tiny models' 512 positions: ilr/config/budget.py)
    paper_prompts = ["prompts=paper", "generation={max_model_len: 1024}"]
    for args, config in ((["-n", "all"], paper_prompts), (["-n", "-p", str(results / TARGET)], [])):
        r = smk(results, *args, config=config)
        assert r.returncode == 0, r.out[-3000:]
    assert snapshot(results) == before
    other = smk(results, "-p", str(results / "data/bench/arith.jsonl"), "--forcerun", "prepare_benchmark",
                config=["study=renamed"])
    assert other.returncode == 0, other.out[-3000:]
    (other_path,) = planned_configs(other.out)
    assert Path(other_path) != path and Path(other_path).is_file()
    assert study.load(other_path)["study"] == "renamed"
    assert snapshot(results)[path.relative_to(results).as_posix()] == before[path.relative_to(results).as_posix()]


def test_unread_key_reruns_nothing_though_the_config_name_changes(ran):
    results, path = ran
    target = str(results / TARGET)
    r = smk(results, "-n", "-p", target, "--forcerun", "prepare_benchmark", config=["study=renamed"])
    assert planned_configs(r.out) - {str(path)}                  # another effective config ...
    # ... and nothing to rerun, by any trigger on its own (not `--list-changes params`: Snakemake 9.27 lists
    # the last output of every job with recorded params there, changed or not)
    for trigger in ("mtime", "params", "code", "input", "software-env"):
        r = smk(results, "-n", target, "--rerun-triggers", trigger, config=["study=renamed"])
        assert "Nothing to be done" in r.out, (trigger, r.out[-3000:])
    # while a key the job reads does rerun it, through its params (the check above can fail)
    r = smk(results, "-n", target, "--rerun-triggers", "params", config=["benchmarks={arith_code: {n: 40}}"])
    assert "prepare_benchmark" in r.out and "Nothing to be done" not in r.out, r.out[-2000:]


def test_cluster_jobs_read_the_config_of_their_submitter(ran, tmp_path):
    """On Slurm each job re-parses the Snakefile (`--mode remote`): it takes the path the submitting
    invocation exported ($ILR_EFFECTIVE_CONFIG), even if the config files changed meanwhile; a main
    invocation ignores a stale variable."""
    results, path = ran
    env = dict(os.environ, ILR_EFFECTIVE_CONFIG=str(tmp_path / "submitted.yaml"))
    target = str(results / "data/bench/arith.jsonl")
    remote = smk(results, "--mode", "remote", "-n", "-p", target, "--forcerun", "prepare_benchmark", env=env)
    assert planned_configs(remote.out) == {str(tmp_path / "submitted.yaml")}, remote.out[-2000:]
    main = smk(results, "-n", "-p", target, "--forcerun", "prepare_benchmark", env=env)
    assert planned_configs(main.out) == {str(path)}, main.out[-2000:]


def test_write_once(tmp_path):
    p = tmp_path / "a" / "x.yaml"
    write_once(p, "a: 1\n")
    mtime = p.stat().st_mtime_ns
    write_once(p, "a: 1\n")
    assert p.stat().st_mtime_ns == mtime                          # never rewritten
    with pytest.raises(DataError, match="other content"):
        write_once(p, "a: 2\n")


# ---------------------------------------------------------------------------------------------- umask


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_get_the_umask_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_text(tmp_path / "t.txt", "x")
        write_json(tmp_path / "sub" / "j.json", {"a": 1})
    finally:
        os.umask(old)
    for f in (tmp_path / "t.txt", tmp_path / "sub" / "j.json"):
        assert stat.S_IMODE(f.stat().st_mode) == mode, (f, oct(f.stat().st_mode))
    assert not list(tmp_path.rglob("*.tmp"))


def test_study_outputs_are_group_readable(ran):
    results, path = ran
    for f in (path, results / TARGET, results / "data" / "bench" / "manifest.json"):
        if f.exists():
            assert stat.S_IMODE(f.stat().st_mode) == 0o644, (f, oct(f.stat().st_mode))
