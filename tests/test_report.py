"""The tables stage on synthetic evaluation files (no model, no torch); CIs and paired tests against scipy;
provenance of real evaluation and multi-agent outputs (random-init models); the paper dry-run's jobs."""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ilr import config as cfg
from ilr.io import write_json
from ilr.report import tables

REPO = Path(__file__).resolve().parents[1]


def fake_evals(config: dict, eval_dir: Path, skip: tuple | None = None) -> int:
    """Write an evaluation file for every cell the tables need; returns how many."""
    n = 0
    for (method, group, model, seed), benches in cfg.eval_cells(config).items():
        for b in benches:
            if skip == (method, group, model, seed, b):
                continue
            rng = random.Random(f"{method}{group}{model}{seed}{b}")
            records = [{"id": f"{b}-{i}", "sample": 0, "prompt": "q", "completion": "c", "extracted": "1",
                        "correct": rng.random() < 0.5, "reason": None} for i in range(20)]
            acc = sum(r["correct"] for r in records) / len(records)
            write_json(eval_dir / method / group / model / f"seed{seed}" / f"{b}.json",
                       {"summary": {"benchmark": b, "model": model, "method": method, "group": group, "seed": seed,
                                    "accuracy": acc, "n": 20, "ci_low": max(0, acc - 0.2), "ci_high": min(1, acc + 0.2)},
                        "records": records})
            n += 1
    fake_multi_agent(config, eval_dir.parent / "multi_agent")
    return n


def fake_multi_agent(config: dict, ma_dir: Path) -> None:
    for models, bench in cfg.multi_agent_jobs(config):
        settings = {}
        for k, setting in enumerate(("single", "debate", "idea3")):
            settings[setting] = {m: {"accuracy": 0.4 + 0.1 * k, "n": 20, "ci_low": 0.2 + 0.1 * k,
                                     "ci_high": 0.6 + 0.1 * k, "records": []} for m in models}
        write_json(ma_dir / cfg.pair_name(models) / f"{bench}.json",
                   {"benchmark": bench, "models": models, "idea3_mode": "cooperation", "settings": settings})


@pytest.fixture()
def tiny_config():
    return cfg.load(REPO / "config" / "config.yaml")


def test_tables_from_fake_evals(tmp_path, tiny_config):
    fake_evals(tiny_config, tmp_path / "eval")
    written = tables.write_tables(tiny_config, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    names = sorted(p.name for p in written)
    assert names == sorted([f"{t}.{ext}" for t in ("main", "ablation", "coop_ratio", "multi_agent",
                                                   "paper_vs_reproduced") for ext in ("md", "csv", "tex")]
                           + ["coop_ratio.png"])
    md = (tmp_path / "tables" / "main.md").read_text()
    assert "solo" in md and "greedy" in md
    # every caption states the decoding protocol and whether evaluation is solo, in every format
    for t in ("main", "ablation", "coop_ratio", "multi_agent", "paper_vs_reproduced"):
        for ext in ("md", "tex"):
            text = (tmp_path / "tables" / f"{t}.{ext}").read_text()
            assert "solo" in text and "greedy" in text and "64 new tokens" in text, (t, ext)
    assert "NOT solo" in (tmp_path / "tables" / "multi_agent.md").read_text()
    tex = (tmp_path / "tables" / "main.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "\\caption{" in tex
    assert "arith\\_hard" in tex  # escaped
    ma = list(csv.DictReader(open(tmp_path / "tables" / "multi_agent.csv")))
    assert [(r["model"], r["Single"], r["Idea3"]) for r in ma] == [("tiny-llama", "40.0", "60.0"),
                                                                    ("tiny-qwen-l", "40.0", "60.0")]
    # the tiny study maps to no paper number; the file says why
    pv = (tmp_path / "tables" / "paper_vs_reproduced.md").read_text()
    assert "no paper counterpart" in pv
    assert list(csv.DictReader(open(tmp_path / "tables" / "paper_vs_reproduced.csv"))) == []
    for model in tiny_config["models"]:
        assert f"## {model}" in md
    assert "| ILR-group1 |" in md and "| GRPO |" in md and "| PPO |" in md and "| Base |" in md
    rows = list(csv.DictReader(open(tmp_path / "tables" / "main.csv")))
    # tiny-llama: Base, GRPO, PPO, ILR-group1, ILR-group2
    assert [r["row"] for r in rows if r["model"] == "tiny-llama"] == ["Base", "GRPO", "PPO", "ILR-group1", "ILR-group2"]
    r = rows[0]
    assert float(r["arith_ci_low"]) <= float(r["arith"]) <= float(r["arith_ci_high"])
    # ILR rows carry the paired test against the best baseline; baselines do not
    ilr_rows = [x for x in rows if x["row"].startswith("ILR-")]
    assert ilr_rows and all(x["vs_baseline"] in ("GRPO", "PPO") and 0 <= float(x["p_value"]) <= 1 for x in ilr_rows)
    assert all(x["p_value"] == "" for x in rows if not x["row"].startswith("ILR-"))
    assert "vs GRPO (p" in md or "vs PPO (p" in md
    assert float(r["Avg_ci_low"]) <= float(r["Avg"]) <= float(r["Avg_ci_high"])
    coop = list(csv.DictReader(open(tmp_path / "tables" / "coop_ratio.csv")))
    assert [r["row"] for r in coop if r["model"] == "tiny-llama"][-1] == "IRT"
    assert len(coop) == 2 * (len(tiny_config["methods"]["ilr_ratio"]["p"]) + 1)  # 2 models x (each p, IRT)
    ab = list(csv.DictReader(open(tmp_path / "tables" / "ablation.csv")))
    assert {r["row"] for r in ab} == {"Full ILR", "DI-only", "PC-only"}
    assert (tmp_path / "figures" / "coop_ratio.png").read_bytes()[:4] == b"\x89PNG"


def test_merged_column_pools_questions(tmp_path, tiny_config):
    c = tiny_config
    c["tables"]["main"]["benchmarks"] = ["arith", {"name": "HARD", "merge": ["arith_hard", "arith_code"]}]
    c["tables"]["main"]["average"] = ["HARD"]
    cfg.check(c)
    fake_evals(c, tmp_path / "eval")
    tables.write_tables(c, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    rows = list(csv.DictReader(open(tmp_path / "tables" / "main.csv")))
    assert rows[0]["HARD_n"] == "40"
    assert rows[0]["Avg"] == rows[0]["HARD"]


def test_missing_eval_file_is_named(tmp_path, tiny_config):
    fake_evals(tiny_config, tmp_path / "eval", skip=("grpo", "tiny-llama", "tiny-llama", 0, "arith"))
    r = subprocess.run([sys.executable, "-m", "ilr", "tables", "--config", str(REPO / "config" / "config.yaml"),
                        "--eval-dir", str(tmp_path / "eval"), "--out-dir", str(tmp_path / "t"),
                        "--figures-dir", str(tmp_path / "f")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode != 0
    assert "grpo/tiny-llama/tiny-llama/seed0/arith.json" in r.stderr
    assert not (tmp_path / "t" / "main.md").exists()


# ------------------------------------------------------------------------ statistics against scipy


def _records(n: int, p: float, seed: int, prefix: str = "q") -> list[dict]:
    rng = random.Random(seed)
    return [{"id": f"{prefix}{i}", "correct": rng.random() < p} for i in range(n)]


def test_cell_ci_matches_scipy_bootstrap():
    """The evaluation stage's percentile CI and the tables' pooled CI vs scipy.stats.bootstrap on the same records."""
    import numpy as np
    from scipy import stats

    from ilr.evaluate import bootstrap_ci, per_question_accuracy

    recs = _records(300, 0.6, 1)
    x = np.array(list(per_question_accuracy(recs).values()), dtype=float)
    ref = stats.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                          random_state=np.random.default_rng(123)).confidence_interval
    lo, hi = bootstrap_ci(list(x), 20000, seed=0)
    assert abs(lo - ref.low) < 0.006 and abs(hi - ref.high) < 0.006
    lo2, hi2 = tables.bootstrap_mean_of_means([x], 20000)
    assert abs(lo2 - ref.low) < 0.006 and abs(hi2 - ref.high) < 0.006


def test_paired_bootstrap_matches_independent_computations():
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(0)
    n = 400
    b = (rng.random(n) < 0.55).astype(float)
    a = np.where(rng.random(n) < 0.75, b, 1 - b)  # correlated pairs, a small difference
    a[:30] = 1.0
    d_obs, p, lo, hi = tables.paired_bootstrap([(a, b)], 20000, seed=0)
    assert d_obs == pytest.approx((a - b).mean())
    # 1. scipy's paired bootstrap distribution of mean(a) - mean(b), the same shifted-null p-value
    res = stats.bootstrap((a, b), lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis), paired=True,
                          vectorized=True, n_resamples=20000, method="percentile",
                          random_state=np.random.default_rng(7))
    dist = res.bootstrap_distribution
    p_scipy = float(np.mean(np.abs(dist - d_obs) >= abs(d_obs)))
    assert abs(p - p_scipy) < 0.015, (p, p_scipy)
    assert lo == pytest.approx(res.confidence_interval.low, abs=0.005)    # and the same 95% percentile CI
    assert hi == pytest.approx(res.confidence_interval.high, abs=0.005)
    # 2. the normal approximation of the same bootstrap (sd of the mean difference, ddof 0)
    d = a - b
    p_normal = 2 * stats.norm.sf(abs(d.mean()) / (d.std(ddof=0) / np.sqrt(n)))
    assert abs(p - p_normal) < 0.03, (p, p_normal)
    assert 0.01 < p < 0.3  # a genuinely intermediate case (p about 0.07)


def test_paired_seed_p_is_a_paired_t_test():
    import numpy as np
    from scipy import stats

    a, b = [0.52, 0.55, 0.50, 0.57], [0.50, 0.51, 0.49, 0.52]
    d = np.subtract(a, b)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    delta, p = tables.paired_seed_p(a, b)
    assert delta == pytest.approx(d.mean())
    assert p == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1))
    assert tables.paired_seed_p([0.5, 0.5], [0.5, 0.5])[1] == 1.0


def scipy_paired(eval_dir: Path, a_run: tuple[str, str], b_run: tuple[str, str]):
    """tiny-qwen-s arith of two (method, group) rows from the eval files: the aligned per-question vectors and
    scipy's paired percentile bootstrap of mean(a) - mean(b), with the two-sided p the tables compute."""
    import numpy as np
    from scipy import stats

    def vec(method, group):
        obj = json.loads((eval_dir / method / group / "tiny-qwen-s" / "seed0" / "arith.json").read_text())
        return {x["id"]: float(x["correct"]) for x in obj["records"]}

    va, vb = vec(*a_run), vec(*b_run)
    ids = sorted(va)
    a, b = np.array([va[i] for i in ids]), np.array([vb[i] for i in ids])
    res = stats.bootstrap((a, b), lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis), paired=True,
                          vectorized=True, n_resamples=20000, method="percentile",
                          random_state=np.random.default_rng(11))
    d = (a - b).mean()
    p = float(np.mean(np.abs(res.bootstrap_distribution - d) >= abs(d) - 1e-12))
    return d, res, p


def test_main_table_p_value_against_scipy(tmp_path, tiny_config):
    """One column, one seed: the main table's p for an ILR row, recomputed with scipy from the eval files."""
    c = tiny_config
    c["tables"]["main"]["benchmarks"] = ["arith"]
    c["evaluation"]["bootstrap"] = 20000
    cfg.check(c)
    fake_evals(c, tmp_path / "eval")
    tables.write_tables(c, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    rows = list(csv.DictReader(open(tmp_path / "tables" / "main.csv")))
    r = next(x for x in rows if x["model"] == "tiny-qwen-s" and x["row"] == "ILR-group1")
    base = {"GRPO": ("grpo", "tiny-qwen-s"), "PPO": ("ppo", "tiny-qwen-s")}[r["vs_baseline"]]
    d, _, p_scipy = scipy_paired(tmp_path / "eval", ("ilr", "group1"), base)
    assert float(r["delta_avg"]) == pytest.approx(100 * d, abs=1e-3)
    assert abs(float(r["p_value"]) - p_scipy) < 0.02


def test_trained_rows_against_base_on_the_in_distribution_column(tmp_path, tiny_config):
    """tables.main.vs_base: each trained row's Δ on that column against Base, with the paired
    difference's 95% CI and p, recomputed with scipy from the eval files."""
    c = tiny_config
    assert c["tables"]["main"]["vs_base"] == "arith"
    c["evaluation"]["bootstrap"] = 20000
    fake_evals(c, tmp_path / "eval")
    tables.write_tables(c, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    rows = list(csv.DictReader(open(tmp_path / "tables" / "main.csv")))
    assert all(r["delta_vs_base"] == "" for r in rows if r["row"] == "Base")
    assert all(r["delta_vs_base"] != "" for r in rows if r["row"] != "Base")

    r = next(x for x in rows if x["model"] == "tiny-qwen-s" and x["row"] == "GRPO")
    d, res, p_scipy = scipy_paired(tmp_path / "eval", ("grpo", "tiny-qwen-s"), ("base", "none"))
    assert float(r["delta_vs_base"]) == pytest.approx(100 * d, abs=1e-3)
    assert float(r["delta_vs_base_ci_low"]) == pytest.approx(100 * res.confidence_interval.low, abs=2.0)
    assert float(r["delta_vs_base_ci_high"]) == pytest.approx(100 * res.confidence_interval.high, abs=2.0)
    assert abs(float(r["p_vs_base"]) - p_scipy) < 0.02
    md = (tmp_path / "tables" / "main.md").read_text()
    assert "Δ arith vs Base [95% CI] (p)" in md and "in-distribution" in md


def test_several_seeds_show_spread_and_seed_test(tmp_path, tiny_config):
    c = tiny_config
    c["seeds"] = [0, 1, 2]
    fake_evals(c, tmp_path / "eval")
    tables.write_tables(c, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    rows = list(csv.DictReader(open(tmp_path / "tables" / "main.csv")))
    g = next(x for x in rows if x["model"] == "tiny-llama" and x["row"] == "GRPO")
    per_seed = [float(v) for v in g["arith_per_seed"].split()]
    assert len(per_seed) == 3
    assert float(g["arith"]) == pytest.approx(sum(per_seed) / 3, abs=1e-3)
    assert float(g["arith_sd"]) == pytest.approx(statistics.stdev(per_seed), abs=1e-3)
    base = next(x for x in rows if x["model"] == "tiny-llama" and x["row"] == "Base")
    assert base["seeds"] == "0" and base["arith_sd"] == ""
    ilr = next(x for x in rows if x["model"] == "tiny-llama" and x["row"] == "ILR-group1")
    assert ilr["test"].startswith("paired t-test over seeds")
    vs = next(x for x in rows if x["model"] == "tiny-llama" and x["row"] == ilr["vs_baseline"])
    from scipy import stats
    a = [float(v) for v in ilr["Avg_per_seed"].split()]
    b = [float(v) for v in vs["Avg_per_seed"].split()]
    assert float(ilr["p_value"]) == pytest.approx(stats.ttest_rel(a, b).pvalue, abs=1e-4)
    md = (tmp_path / "tables" / "main.md").read_text()
    assert " ± " in md and "standard deviation over seeds" in md


def test_paper_numbers_side_by_side(tmp_path):
    """The paper config: every transcribed number whose row and column the study produces is compared."""
    c = cfg.load(REPO / "config" / "paper.yaml")
    fake_evals(c, tmp_path / "eval")
    tables.write_tables(c, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    rows = list(csv.DictReader(open(tmp_path / "tables" / "paper_vs_reproduced.csv")))
    key = {(r["table"], r["model"], r["row"], r["column"]): r for r in rows}
    r = key[("main", "llama-8b", "Base", "math500")]
    assert float(r["paper"]) == 49.80
    assert float(r["delta"]) == pytest.approx(float(r["reproduced"]) - 49.80, abs=1e-3)
    assert ("main", "qwen-14b", "ILR-group3", "Avg") in key
    assert ("ablation", "qwen-7b", "DI-only", "Avg") in key
    assert key[("coop_ratio", "llama-8b", "IRT", "Avg")]["approx"] == "True"
    assert not any(r["row"] == "p = 0.5" for r in rows)  # p = 0.5 is not in the sweep: not produced
    assert float(key[("multi_agent", "qwen-14b", "pair llama-8b+qwen-14b", "Idea3 (math500)")]["paper"]) == 82.00
    assert len(rows) == 55
    tex = (tmp_path / "tables" / "paper_vs_reproduced.tex").read_text()
    assert "\\toprule" in tex and "solo" in tex


# ------------------------------------------------------------------------ real outputs: provenance

PROVENANCE = ("git_commit", "config_hash", "data_sha256", "checkpoint_sha256", "seed", "decoding")


def short_study(tmp_path, study):
    """The study config with 8-token decoding, and a data dir holding a 4-question arith benchmark."""
    from ilr.io import write_jsonl
    from ilr.tiny.task import generate

    config, config_path = study
    config["evaluation"]["max_new_tokens"] = 8
    config_path.write_text(yaml.safe_dump(config))
    data = tmp_path / "data"
    write_jsonl(data / "bench" / "arith.jsonl", generate("tiny_arith", 4, 1, min_steps=1, max_steps=1, max_operand=5))
    return config, config_path, data


def test_eval_outputs_carry_provenance(tmp_path, study):
    """`python -m ilr evaluate` on a random-init model: every cell names where it came from."""
    from conftest import run_ilr

    from ilr.io import sha256_file, write_jsonl
    from ilr.tiny.task import generate

    config, config_path, data = short_study(tmp_path, study)
    write_jsonl(data / "bench" / "arith_choice.jsonl", generate("tiny_choice", 3, 2))
    model = config["models"]["tiny-llama"]["path"]
    out = tmp_path / "eval" / "base" / "none" / "tiny-llama" / "seed0"
    r = run_ilr("evaluate", "--config", str(config_path), "--model-path", model, "--benchmarks", "arith", "arith_choice",
                "--data-dir", str(data), "--out-dir", str(out), "--model", "tiny-llama", "--seed", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    for bench in ("arith", "arith_choice"):
        obj = json.loads((out / f"{bench}.json").read_text())
        prov = obj["summary"]["provenance"]
        for k in PROVENANCE:
            assert prov.get(k) is not None, (bench, k)
        assert prov["data_sha256"] == sha256_file(data / "bench" / f"{bench}.jsonl")
        assert prov["decoding"] == {"samples": 1, "temperature": 0.0, "max_new_tokens": 8}
        assert "solo" in prov["protocol"]
        assert obj["summary"]["n"] == len(obj["records"]) and obj["summary"]["ci_low"] <= obj["summary"]["ci_high"]


@pytest.mark.slow
def test_multi_agent_output_carries_provenance(tmp_path, study):
    """`python -m ilr multi-agent` on random-init models (~20 s of CPU: 12 generation passes)."""
    from conftest import run_ilr

    config, config_path, data = short_study(tmp_path, study)
    ma = tmp_path / "ma.json"
    r = run_ilr("multi-agent", "--config", str(config_path), "--models", "tiny-llama", "tiny-qwen-l",
                "--benchmark", "arith", "--data-dir", str(data), "--out", str(ma))
    assert r.returncode == 0, r.stderr[-3000:]
    obj = json.loads(ma.read_text())
    for k in ("git_commit", "config_hash", "data_sha256", "decoding"):
        assert obj["provenance"].get(k) is not None, k
    for setting in ("single", "debate", "idea3"):
        for m in ("tiny-llama", "tiny-qwen-l"):
            x = obj["settings"][setting][m]
            assert x["n"] == 4 and 0 <= x["ci_low"] <= x["accuracy"] <= x["ci_high"] <= 1


# ------------------------------------------------------------------------ the DAG


def test_paper_dryrun_lists_multi_agent_and_tables(tmp_path):
    snakemake = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    r = subprocess.run([snakemake, "--configfile", "config/paper.yaml", "--config",
                        f"results={tmp_path}/paper", "-n", "all"], cwd=REPO, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert re.search(r"^multi_agent\s+1$", out, re.M) and re.search(r"^tables\s+1$", out, re.M)
    assert f"{tmp_path}/paper/multi_agent/llama-8b+qwen-14b/math500.json" in out
    for t in ("main", "ablation", "coop_ratio", "multi_agent", "paper_vs_reproduced"):
        for ext in ("md", "csv", "tex"):
            assert f"{tmp_path}/paper/tables/{t}.{ext}" in out, (t, ext)
    for g in ("group1", "group2", "group3"):
        assert f"{tmp_path}/paper/figures/difficulty_{g}.png" in out


def test_html_report_from_fake_outputs(tmp_path):
    """`snakemake --report` collects every table (.csv) and figure with its caption (outputs faked here)."""
    from ilr.difficulty import save_histogram

    c = cfg.load(REPO / "config" / "config.yaml")
    res = tmp_path / "r"
    fake_evals(c, res / "eval")
    tables.write_tables(c, res / "eval", res / "tables", res / "figures", res / "multi_agent")
    for g in c["groups"]:
        save_histogram([0.1, 0.5, 0.5, 0.9], str(res / "figures" / f"difficulty_{g}.png"), g)
    snakemake = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    r = subprocess.run([snakemake, "--config", f"results={res}", "--report", str(res / "report.html"), "all"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    html = (res / "report.html").read_text()
    for name in ("main.csv", "ablation.csv", "coop_ratio.csv", "multi_agent.csv", "paper_vs_reproduced.csv",
                 "coop_ratio.png", "difficulty_group1.png"):
        assert name in html, name
    assert "solo" in html and "greedy (temperature 0)" in html
