"""The Snakemake DAG and the config layer: dry-runs (no job runs, no model loads), validation, rerun hashes."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ilr import config as cfg
from ilr import study

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"


def snakemake(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def job_stats(output: str) -> dict[str, int]:
    """The `Job stats` table of a dry-run."""
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal\s+(\d+)", output, re.S)
    assert m, output[-3000:]
    return {name: int(n) for name, n in re.findall(r"^(\S+)\s+(\d+)$", m.group(1), re.M)}


def load_yaml(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


# ---------------------------------------------------------------------------------------------- dry-runs


def test_paper_dryrun_with_slurm_profile(tmp_path):
    """`snakemake --profile slurm all` is the paper study: the profile names config/paper.yaml."""
    results = tmp_path / "paper"
    r = snakemake("--profile", "slurm", "all", "--config", f"results={results}", "-n", "-p")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout + r.stderr
    config = study.load(REPO / "config" / "paper.yaml")
    config["results"] = str(results)
    stats = job_stats(out)
    cells = study.eval_cells(config)
    n_eval = sum(len(b) for b in cells.values())
    # granularity: cell; aipo, aipo_keep: 27 cells each; the trio: 27; the pooled ablation rows: 2 x 18
    assert stats["evaluate"] == n_eval == 243 + 2 * 27 + 27 + 2 * 18
    assert stats["prepare_train"] == 1 and stats["prepare_benchmark"] == len(config["benchmarks"])
    assert stats["tables"] == 1 and stats["all"] == 1
    assert stats["ability"] == 3 and stats["difficulty"] == len(config["groups"]) == 4   # the pairs and the trio
    assert "build_model" not in stats  # hub ids are not built
    assert stats["train_single"] == 12  # grpo, ppo, aipo, aipo_keep x 3 models
    assert sum(v for k, v in stats.items() if k.startswith("train_group_")) == 13 + 1 + 2 * 2   # trio; pooled
    # every model, group, method run and benchmark of the study has its jobs
    for (method, group, model, seed), benches in cells.items():
        for b in benches:
            assert f"{results}/eval/{method}/{group}/{model}/seed{seed}/{b}.json" in out
    for model in config["models"]:
        assert f"{results}/eval/base/none/{model}/seed0/gsm8k.json" in out
        assert f"{results}/ability/{model}.json" in out
    for group in config["groups"]:
        assert f"{results}/difficulty/{group}.jsonl" in out
        assert f"{results}/runs/ilr/{group}/seed0/" in out
    trained = {run for run, _, _ in study.train_jobs(config)}
    assert trained == set(cfg.run_names(config))   # every method of the paper config is a row of a table
    for run in trained:
        assert f"{results}/runs/{run}/" in out, run
    for b in config["benchmarks"]:
        assert f"{results}/data/bench/{b}.jsonl" in out
    assert "gpu=8" in out and "gpu=4" in out  # 14B asks more than 7B (resources from the config)
    # the paper config alone, not merged with the tiny default; every job reads one effective config, which
    # a dry-run does not write (nothing under results/)
    assert "tiny-" not in out
    assert len(set(re.findall(r"(?:^|\s)ilr [\w-]+ --config (\S+)", out))) == 1
    assert re.search(rf"--config {results}/\.config/[0-9a-f]{{16}}\.yaml ", out)
    assert not results.exists()


def test_tiny_dryrun_model_granularity(tmp_path):
    r = snakemake("--cores", "2", "--config", f"results={tmp_path}/r", "-n", "all")
    assert r.returncode == 0, r.stderr[-3000:]
    stats = job_stats(r.stdout + r.stderr)
    config = study.load(REPO / "config" / "config.yaml")
    n_models = len(study.eval_cells(config))
    assert sum(v for k, v in stats.items() if k.startswith("evaluate_model")) == n_models
    assert "evaluate" not in stats
    # the tiny models are built where config.yaml says (results/models/, shared by every study of this working
    # directory): the ones a `make demo` already built are not built again, unless their code changed since
    unbuilt = [m for m in config["models"].values() if not (REPO / m["path"] / "config.json").is_file()]
    assert len(unbuilt) <= stats.get("build_model", 0) <= len(config["models"])


def test_cell_granularity_override(tmp_path):
    # --config merges into the section: only the granularity changes
    r = snakemake("all", "--cores", "2", "--config", f"results={tmp_path}/r", "evaluation={granularity: cell}", "-n")
    assert r.returncode == 0, r.stderr[-3000:]
    stats = job_stats(r.stdout + r.stderr)
    config = study.load(REPO / "config" / "config.yaml")
    assert stats["evaluate"] == sum(len(b) for b in study.eval_cells(config).values())
    assert not any(k.startswith("evaluate_model") for k in stats)


def test_training_rerun_with_changed_inputs_starts_fresh(tmp_path):
    """The train rules' shell keeps a run directory (and its checkpoints) when the job runs again with the
    same inputs (a Slurm requeue resumes from them), and empties it when an input changed (what made
    Snakemake rerun the job: the retraining must not resume from the old run's checkpoints)."""
    import os
    import time

    results = tmp_path / "r"
    c = _tiny()
    c["results"] = str(results)
    for name, m in c["models"].items():
        m["path"] = str(results / "models" / name)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(c))
    r = snakemake("--cores", "1", "--configfile", str(tmp_path / "config.yaml"), "-n", "-p",
                  str(results / "runs/grpo/tiny-llama/seed0/tiny-llama/final"))
    assert r.returncode == 0, r.stderr[-3000:]
    shell = re.search(r"^Shell command: (d=.*)$", r.stdout + r.stderr, re.M).group(1)
    end = '> "$d/.spec"; '
    prefix = shell[:shell.index(end) + len(end)]   # the run-directory check, before the trainer starts
    (results / "models" / "tiny-llama").mkdir(parents=True)   # the job's inputs, as upstream jobs leave them
    (results / "models" / "tiny-llama" / "config.json").write_text("{}")
    (results / "data").mkdir()
    train = results / "data" / "train.jsonl"
    train.write_text("{}\n")
    run_dir = results / "runs" / "grpo" / "tiny-llama" / "seed0"

    def attempt():
        p = subprocess.run(["bash", "-c", prefix], cwd=REPO, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr

    attempt()
    checkpoint = run_dir / "tiny-llama" / "checkpoints" / "checkpoint-15"
    checkpoint.mkdir(parents=True)
    attempt()                                   # requeued, same inputs: the checkpoint stays
    assert checkpoint.is_dir()
    later = time.time() + 10
    os.utime(train, (later, later))             # the training data were regenerated
    attempt()
    assert not checkpoint.exists() and (run_dir / ".spec").is_file()


# ---------------------------------------------------------------------------------------------- broken configs


def _tiny() -> dict:
    return load_yaml(REPO / "config" / "config.yaml")


def _break_trainer(c):
    c["methods"]["ilr"]["trainer"] = "ilrr"


def _break_model_path(c):
    del c["models"]["tiny-llama"]["build"]
    c["models"]["tiny-llama"]["path"] = "/nonexistent/dir/tiny-llama"


def _break_type(c):
    c["training"]["steps"] = "thirty"


def _break_group(c):
    c["groups"]["group1"] = ["tiny-llama", "tiny-gpt"]


def _break_table(c):
    c["tables"]["main"]["benchmarks"].append("aime99")


def _break_p(c):
    c["methods"]["ilr_ratio"]["p"] = [0.0, 1.5]


def _break_vs_base(c):
    c["tables"]["main"]["vs_base"] = "arith_easy"


def _break_stages(c):
    c["training"]["train_stages"] = ["analysis", "fusion"]


BROKEN = [
    (_break_trainer, "methods.ilr.trainer", "ilrr"),
    (_break_model_path, "models.tiny-llama.path", "neither an existing directory"),
    (_break_type, "training.steps", "not of type 'integer'"),
    (_break_group, "groups.group1[1]", "unknown model 'tiny-gpt'"),
    (_break_table, "tables.main.benchmarks[4]", "unknown benchmark 'aime99'"),
    (_break_p, "methods.ilr_ratio.p", "1.5"),
    (_break_vs_base, "tables.main.vs_base", "'arith_easy' is not a column"),
    (_break_stages, "training.train_stages", "is not one of"),
]


@pytest.mark.parametrize("breaker,key,what", BROKEN, ids=[b[1] for b in BROKEN])
def test_broken_config_load(tmp_path, breaker, key, what):
    c = _tiny()
    breaker(c)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(c))
    with pytest.raises(cfg.ConfigError) as e:
        study.load(path)
    msg = str(e.value)
    assert str(path) in msg and key in msg and what in msg, msg


@pytest.mark.parametrize("breaker,key,what", BROKEN[:3], ids=[b[1] for b in BROKEN[:3]])
def test_broken_config_snakemake_fails_before_any_job(tmp_path, breaker, key, what):
    c = _tiny()
    breaker(c)
    c["results"] = str(tmp_path / "results")
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(c))
    r = snakemake("all", "--cores", "1", "--configfile", str(path))
    assert r.returncode != 0
    assert key in r.stderr and what in r.stderr, r.stderr[-2000:]
    assert "Job stats" not in r.stdout + r.stderr
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------------------------------------- rerun hashes


def _specs(c: dict) -> dict:
    out = {}
    for run, group, seed in study.train_jobs(c):
        out[("train", run, group, seed)] = study.stage_hash(c, "train", method=run, group=group, seed=seed)
    for (run, group, model, seed), benches in study.eval_cells(c).items():
        out[("evaluate", run, group, model, seed)] = study.stage_hash(c, "evaluate", benchmarks=benches, method=run,
                                                                     model=model, seed=seed)
    for model in c["models"]:
        out[("ability", model)] = study.stage_hash(c, "ability", model=model)
        out[("build_model", model)] = study.stage_hash(c, "build_model", model=model)
    for g in c["groups"]:
        out[("difficulty", g)] = study.stage_hash(c, "difficulty", group=g)
    for part in ["train"] + [f"bench/{b}" for b in c["benchmarks"]]:
        out[("prepare_data", part)] = study.stage_hash(c, "prepare_data", part=part)
    out[("tables",)] = study.stage_hash(c, "tables")
    return out


def _changed(before: dict, after: dict) -> set:
    return {k for k in before if before[k] != after[k]}


def test_method_hyperparameter_changes_only_its_training():
    c = study.validate(_tiny())
    before = _specs(c)
    c2 = copy.deepcopy(c)
    c2["methods"]["grpo"]["learning_rate"] = 1e-5
    changed = _changed(before, _specs(c2))
    assert changed and all(k[0] == "train" and k[1] == "grpo" for k in changed)
    assert len(changed) == len(c["models"])  # one grpo training per model (one seed)


def test_ratio_p_changes_only_that_run():
    c = study.validate(_tiny())
    c2 = copy.deepcopy(c)
    c2["methods"]["ilr_ratio"]["calibration"] = False
    changed = _changed(_specs(c), _specs(c2))
    assert {k[1] for k in changed if k[0] == "train"} == set(cfg.method_runs(c, "ilr_ratio"))
    assert all(k[0] in ("train", "tables") for k in changed)


def test_training_default_changes_every_training_only():
    c = study.validate(_tiny())
    c2 = copy.deepcopy(c)
    c2["training"]["steps"] = 31
    changed = _changed(_specs(c), _specs(c2))
    assert {k for k in changed} == {k for k in _specs(c) if k[0] == "train"}


def test_benchmark_change_reruns_only_its_evaluations():
    c = study.validate(_tiny())
    c2 = copy.deepcopy(c)
    c2["benchmarks"]["arith_code"]["n"] = 40
    changed = _changed(_specs(c), _specs(c2))
    assert {k for k in changed if k[0] == "prepare_data"} == {("prepare_data", "bench/arith_code")}
    evals = {k for k in changed if k[0] == "evaluate"}
    assert evals == {("evaluate",) + cell for cell, b in study.eval_cells(c).items() if "arith_code" in b}
    assert not any(k[0] in ("train", "ability", "difficulty", "build_model") for k in changed)


def test_unrelated_key_changes_nothing():
    c = study.validate(_tiny())
    c2 = copy.deepcopy(c)
    c2["resources"]["default"]["runtime"] = 99
    c2["study"] = "renamed"
    assert not _changed(_specs(c), _specs(c2))


def test_report_to_changes_nothing():
    """Where the curves go (training.report_to, a method's too) is no training input: nothing reruns."""
    c = study.validate(_tiny())
    c2 = copy.deepcopy(c)
    c2["training"]["report_to"] = []
    c2["methods"]["grpo"]["report_to"] = "none"
    assert c["training"]["report_to"] == ["tensorboard"]   # the schema's default
    assert not _changed(_specs(c), _specs(c2))


def test_run_names_roundtrip():
    c = study.validate(_tiny())
    runs = cfg.method_runs(c, "ilr_ratio")
    assert runs[0] == "ilr_ratio_p0.0" and runs[-1] == "ilr_ratio_p1.0"
    for run in runs:
        m = cfg.method_config(c, run)
        assert isinstance(m["p"], float) and run.endswith(cfg.format_p(m["p"]))
    args = cfg.training_args(c, "ppo")
    assert args.vf_coef == 0.5 and args.steps == c["training"]["steps"] and args.trainer == "ppo"
