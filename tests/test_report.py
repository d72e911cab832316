"""The tables stage on synthetic evaluation files (no model, no torch); CIs and paired tests against scipy;
provenance of real evaluation and multi-agent outputs (random-init models); the paper dry-run's jobs."""

from __future__ import annotations

import copy
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
from ilr import study as ilrstudy   # (the name `study` is a fixture here)
from ilr.io import write_json
from ilr.report import registry, stats, tables

REPO = Path(__file__).resolve().parents[1]


def fake_evals(config: dict, eval_dir: Path, skip: tuple | None = None) -> int:
    """Write an evaluation file for every cell the tables need; returns how many."""
    n = 0
    for (method, group, model, seed), benches in ilrstudy.eval_cells(config).items():
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


def fake_rollouts(config: dict, results: Path, shares: dict, n: int = 20, per_model: bool = False) -> None:
    """A rollout log (METHOD.md "Rollout log", the fields the coop_ratio table reads) for every run and seed
    of the coop_ratio rows: n questions per seed, of which round(share x n) are cooperative for each model,
    `shares[run][model]`. per_model: each model has its own type (`models.<name>.interaction`) and the
    top-level `interaction` is the common type or "mixed", as with `interaction.irt_rule: per_model`."""
    from ilr.io import write_jsonl
    from ilr.layout import Layout

    spec = config["tables"]["coop_ratio"]
    g, members = spec["group"], config["groups"][spec["group"]]
    for run, by_model in shares.items():
        for seed in config["seeds"]:
            rows = []
            for q in range(n):
                kinds = {m: "cooperation" if q < round(by_model[m] * n) else "competition" for m in members}
                top = kinds[members[0]] if len(set(kinds.values())) == 1 else "mixed"
                rows.append({"step": 1 + q // 4, "question_id": f"q{q}", "rule": "irt", "interaction": top,
                             "models": {m: ({"interaction": kinds[m]} if per_model else {}) for m in members}})
            write_jsonl(Path(Layout(str(results)).run_dir(run, g, seed)) / "rollouts.jsonl", rows)


@pytest.fixture()
def tiny_config():
    return ilrstudy.load(REPO / "config" / "config.yaml")


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
    for t in ("main", "ablation", "coop_ratio", "multi_agent", "paper_vs_reproduced"):  # pdflatex: no raw Unicode
        assert (tmp_path / "tables" / f"{t}.tex").read_text().isascii(), t
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
    # tiny-llama: Base, GRPO, PPO, AIPO, ILR-group1, ILR-group2, ILR-trio (the group of three)
    assert [r["row"] for r in rows if r["model"] == "tiny-llama"] == ["Base", "GRPO", "PPO", "AIPO", "ILR-group1",
                                                                      "ILR-group2", "ILR-trio"]
    assert {r["model"] for r in rows if r["row"] == "ILR-trio"} == set(tiny_config["groups"]["trio"])
    # AIPO is compared with its model's GRPO row, ILR with the best of GRPO and PPO
    assert all(x["vs_baseline"] == "GRPO" and 0 <= float(x["p_value"]) <= 1 for x in rows if x["row"] == "AIPO")
    r = rows[0]
    assert float(r["arith_ci_low"]) <= float(r["arith"]) <= float(r["arith_ci_high"])
    # ILR rows carry the paired test against the best baseline; baselines do not
    ilr_rows = [x for x in rows if x["row"].startswith("ILR-")]
    assert ilr_rows and all(x["vs_baseline"] in ("GRPO", "PPO") and 0 <= float(x["p_value"]) <= 1 for x in ilr_rows)
    assert all(x["p_value"] == "" for x in rows if x["row"] in ("Base", "GRPO", "PPO"))
    assert "vs GRPO (p" in md or "vs PPO (p" in md
    assert float(r["Avg_ci_low"]) <= float(r["Avg"]) <= float(r["Avg_ci_high"])
    coop = list(csv.DictReader(open(tmp_path / "tables" / "coop_ratio.csv")))
    assert [r["row"] for r in coop if r["model"] == "tiny-llama"][-1] == "IRT"
    assert len(coop) == 2 * (len(tiny_config["methods"]["ilr_ratio"]["p"]) + 1)  # 2 models x (each p, IRT)
    assert all(r["cooperation"] == "" for r in coop)   # no training run here: no rollout log, no share
    assert "No rollout log" in (tmp_path / "tables" / "coop_ratio.md").read_text()
    ab = list(csv.DictReader(open(tmp_path / "tables" / "ablation.csv")))
    assert {r["row"] for r in ab} == {"Full ILR", "DI-only", "PC-only", "Full ILR (pooled)", "DI-only (pooled)"}
    assert (tmp_path / "figures" / "coop_ratio.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("per_model", [False, True])
def test_coop_ratio_measures_cooperation(tmp_path, tiny_config, per_model):
    """coop_ratio.csv's `cooperation`: every row's share of cooperative questions, read from its runs' rollout
    logs, IRT included; with a per-model rule each model's own type (the top-level one reads "mixed"). The
    figure places IRT at that share. A missing log leaves the cell empty and the caption names the row."""
    from ilr.report import coop_ratio

    c = tiny_config
    g = c["tables"]["coop_ratio"]["group"]
    first, second = c["groups"][g]
    runs = cfg.method_runs(c, "ilr_ratio")
    shares = {run: {first: float(cfg.method_config(c, run)["p"]), second: float(cfg.method_config(c, run)["p"])}
              for run in runs}
    # IRT: the two models differ only where each has its own type; otherwise the top-level type holds for both
    shares["ilr"] = {first: 0.7, second: 0.3} if per_model else {first: 0.45, second: 0.45}
    fake_evals(c, tmp_path / "eval")
    fake_rollouts(c, tmp_path, shares, per_model=per_model)
    tables.write_tables(c, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    coop = {(r["model"], r["row"]): r for r in csv.DictReader(open(tmp_path / "tables" / "coop_ratio.csv"))}
    for run in runs:
        p = cfg.method_config(c, run)["p"]
        for m in (first, second):
            assert float(coop[(m, f"p = {cfg.format_p(p)}")]["cooperation"]) == pytest.approx(p)
    for m in (first, second):
        assert float(coop[(m, "IRT")]["cooperation"]) == pytest.approx(shares["ilr"][m])
    md = (tmp_path / "tables" / "coop_ratio.md").read_text()
    assert "Cooperation" in md and "rollout logs" in md and "No rollout log" not in md
    assert (tmp_path / "figures" / "coop_ratio.png").read_bytes()[:4] == b"\x89PNG"
    # the share the figure plots IRT at is the table's (the figure reads the built rows)
    rows = coop_ratio.build(c, registry.Sources(tables.EvalStore(tmp_path / "eval"), tmp_path / "multi_agent",
                                                 tables.PAPER_NUMBERS), {})
    assert {r["model"]: r["cooperation"] for r in rows if r["label"] == "IRT"} == pytest.approx(shares["ilr"])
    # one seed's log gone: with one seed the IRT rows have no share left, and the caption says which
    (Path(tmp_path / "runs" / "ilr" / g / f"seed{c['seeds'][0]}") / "rollouts.jsonl").unlink()
    tables.write_tables(c, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    coop = {(r["model"], r["row"]): r for r in csv.DictReader(open(tmp_path / "tables" / "coop_ratio.csv"))}
    assert coop[(first, "IRT")]["cooperation"] == "" and coop[(first, "p = 0.5")]["cooperation"] != ""
    assert f"No rollout log (cooperation n/a or from the seeds that have one): IRT {first}" in (
        tmp_path / "tables" / "coop_ratio.md").read_text()


def test_coop_ratio_names_a_broken_rollout_log(tmp_path):
    """A rollout log cut off mid-line (a killed job) is an error naming the file and line, not a wrong share."""
    from ilr.io import DataError
    from ilr.report.coop_ratio import cooperation_share

    log = tmp_path / "rollouts.jsonl"
    log.write_text(json.dumps({"interaction": "cooperation", "models": {"a": {}}}) + "\n"
                   + json.dumps({"interaction": "competition", "models": {"a": {}}})[:20])
    with pytest.raises(DataError, match=r"rollouts\.jsonl, line 2: not valid JSON"):
        cooperation_share([log], "a")
    log.write_text(json.dumps({"interaction": "mixed", "models": {"a": {"interaction": "cooperation"},
                                                                   "b": {"interaction": "competition"}}}) + "\n\n"
                   + json.dumps({"interaction": None, "models": {"a": {}, "b": {}}}) + "\n")
    assert cooperation_share([log, tmp_path / "absent.jsonl"], "a") == (1.0, [str(tmp_path / "absent.jsonl")])
    assert cooperation_share([log], "b") == (0.0, [])   # the line without interaction does not count


def test_merged_column_pools_questions(tmp_path, tiny_config):
    c = tiny_config
    c["tables"]["main"]["benchmarks"] = ["arith", {"name": "HARD", "merge": ["arith_hard", "arith_code"]}]
    c["tables"]["main"]["average"] = ["HARD"]
    ilrstudy.check(c)
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


def test_registry_drives_targets_checks_and_cells(tiny_config):
    """ilr/report/registry.py: the tables a config has, their files (the Snakefile's targets), their
    config checks (run by ilr.study.check) and the evaluation cells the study runs for them."""
    c = tiny_config
    assert registry.names(c) == ["main", "ablation", "coop_ratio", "multi_agent", "paper_vs_reproduced"]
    out = registry.outputs(c, "R/tables", "R/figures")
    assert out[:3] == ["R/tables/main.md", "R/tables/main.csv", "R/tables/main.tex"]
    assert len(out) == 5 * 3 + 1 and out[-1] == "R/figures/coop_ratio.png"
    for name in registry.TABLES:
        mod = registry.module(name)
        for attr in ("TITLE", "FIGURES", "enabled", "check", "eval_rows", "build", "caption", "layout", "frame",
                     "figures"):
            assert hasattr(mod, attr), (name, attr)
    bad = copy.deepcopy(c)
    bad["multi_agent"]["benchmark"] = "nope"
    with pytest.raises(cfg.ConfigError, match=r"multi_agent\.benchmark: unknown benchmark 'nope'"):
        ilrstudy.check(bad)
    bad = copy.deepcopy(c)
    bad["tables"]["coop_ratio"]["method"] = "ilr"
    with pytest.raises(cfg.ConfigError, match=r"tables\.coop_ratio\.method: expected a method with interaction"):
        ilrstudy.check(bad)
    del c["tables"]["ablation"], c["tables"]["coop_ratio"], c["multi_agent"]
    ilrstudy.check(c)
    assert registry.names(c) == ["main", "paper_vs_reproduced"]
    assert registry.outputs(c, "t", "f")[-1] == "t/paper_vs_reproduced.tex"
    assert {m for m, *_ in ilrstudy.eval_cells(c)} == {"base", "grpo", "ppo", "aipo", "ilr"}


# ------------------------------------------------------------------------ statistics against scipy


def _records(n: int, p: float, seed: int, prefix: str = "q") -> list[dict]:
    rng = random.Random(seed)
    return [{"id": f"{prefix}{i}", "correct": rng.random() < p} for i in range(n)]


def _numpy_bootstrap(vectors: list, resamples: int, seed: int) -> tuple[float, float]:
    """An independent percentile bootstrap of the mean of the vectors' means, each resampled on its own."""
    import numpy as np

    rng = np.random.default_rng(seed)
    means = sum(v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1) for v in vectors) / len(vectors)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _exact_sign_flip_p(columns: list) -> float:
    """Two-sided p of the paired statistic (mean over columns of mean(d)) over every sign flip of the
    per-question differences `columns`, by enumeration."""
    import itertools

    import numpy as np

    d = np.concatenate(columns)
    w = np.concatenate([np.full(len(c), 1 / (len(columns) * len(c))) for c in columns])
    flips = np.array(list(itertools.product((1, -1), repeat=len(d))))
    null, obs = (flips * d * w).sum(axis=1), (d * w).sum()
    tol = 1e-12
    return min(1.0, 2 * min(np.mean(null >= obs - tol), np.mean(null <= obs + tol)))


def test_bootstrap_ci_against_numpy_and_scipy():
    """The one CI (evaluation stage, tables' cells and Avg): the same interval as an independent numpy
    percentile bootstrap on the same draws, and as scipy.stats.bootstrap with other draws."""
    import numpy as np
    from scipy import stats as sps

    from ilr import evaluate, multi_agent

    assert evaluate.bootstrap_ci is stats.bootstrap_ci and multi_agent.bootstrap_ci is stats.bootstrap_ci
    x = np.array(list(stats.per_question(_records(300, 0.6, 1)).values()), dtype=float)
    assert stats.bootstrap_ci(x, resamples=5000, seed=3) == pytest.approx(_numpy_bootstrap([x], 5000, 3), abs=1e-12)
    ref = sps.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                        rng=np.random.default_rng(123)).confidence_interval
    lo, hi = stats.bootstrap_ci(x, resamples=20000)
    assert abs(lo - ref.low) < 0.006 and abs(hi - ref.high) < 0.006
    # the Avg column: several columns of other sizes, each resampled independently
    y = np.array(list(stats.per_question(_records(80, 0.3, 2)).values()), dtype=float)
    assert stats.bootstrap_ci(x, y, resamples=5000) == pytest.approx(_numpy_bootstrap([x, y], 5000, 0), abs=1e-12)
    assert stats.bootstrap_ci(np.array([1.0]), resamples=100) == (1.0, 1.0)
    assert all(np.isnan(stats.bootstrap_ci(np.array([]), resamples=100)))


def test_paired_p_is_scipy_permutation_test_n60():
    """n = 60 pairs: the paired p is scipy.stats.permutation_test's (the two rows' answers to each question
    swapped at random), the CI scipy.stats.bootstrap's paired percentile interval, on the same draws."""
    import numpy as np
    from scipy import stats as sps

    rng = np.random.default_rng(4)
    b = (rng.random(60) < 0.5).astype(float)
    a = np.where(rng.random(60) < 0.8, b, 1 - b)
    a[:4] = 1.0
    t = stats.paired_test([(a, b)], 5000, seed=9)
    assert t["delta"] == pytest.approx((a - b).mean())
    ref = sps.permutation_test((a, b), lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis), vectorized=True,
                               permutation_type="samples", n_resamples=5000, rng=np.random.default_rng(9))
    assert t["p"] == pytest.approx(ref.pvalue, abs=1e-12)
    ci = sps.bootstrap((a, b), lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis), paired=True,
                       vectorized=True, n_resamples=5000, method="percentile",
                       rng=np.random.default_rng(9)).confidence_interval
    assert (t["lo"], t["hi"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert 0.01 < t["p"] < 0.5, t  # an intermediate case, not a trivial 0 or 1


def test_paired_p_against_exact_enumeration_and_normal_approximation():
    """Independent of scipy: few questions, the p over every sign flip (scipy's test is then exact), also with
    two columns of different sizes (each question weighted by 1 / (columns x its column's n)); many
    questions, the normal approximation of the same permutation distribution."""
    import numpy as np
    from scipy import stats as sps

    rng = np.random.default_rng(1)
    a1, b1 = rng.integers(0, 2, 5).astype(float), rng.integers(0, 2, 5).astype(float)
    a2, b2 = rng.random(7), rng.random(7)
    for pairs in ([(a1, b1)], [(a1, b1), (a2, b2)]):
        t = stats.paired_test(pairs, 5000)
        assert t["p"] == pytest.approx(_exact_sign_flip_p([x - y for x, y in pairs]), abs=1e-9)
    rng, n = np.random.default_rng(0), 400
    b = (rng.random(n) < 0.55).astype(float)
    a = np.where(rng.random(n) < 0.75, b, 1 - b)
    a[:30] = 1.0
    d = a - b   # the sign-flip null of sum(d) has variance sum(d^2)
    p_normal = 2 * sps.norm.sf(abs(d.sum()) / np.sqrt((d ** 2).sum()))
    p = stats.paired_test([(a, b)], 20000)["p"]
    assert abs(p - p_normal) < 0.02, (p, p_normal)
    assert 0.01 < p < 0.3, p  # an intermediate case
    assert stats.paired_test([(b, b)], 1000)["p"] == 1.0


def test_paired_t_test_over_seeds():
    import numpy as np
    from scipy import stats as sps

    a, b = [0.52, 0.55, 0.50, 0.57], [0.50, 0.51, 0.49, 0.52]
    d = np.subtract(a, b)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    delta, p = stats.paired_t_test(a, b)
    assert delta == pytest.approx(d.mean())
    assert p == pytest.approx(2 * sps.t.sf(abs(t), len(d) - 1))
    assert stats.paired_t_test([0.5, 0.5], [0.5, 0.5])[1] == 1.0


def scipy_paired(eval_dir: Path, a_run: tuple[str, str], b_run: tuple[str, str], resamples: int):
    """tiny-qwen-s arith of two (method, group) rows, from the eval files: Δ = mean(a) - mean(b) of the
    aligned per-question vectors, scipy's paired percentile CI and permutation p (seed 0, as the tables)."""
    import numpy as np
    from scipy import stats as sps

    def vec(method, group):
        obj = json.loads((eval_dir / method / group / "tiny-qwen-s" / "seed0" / "arith.json").read_text())
        return {x["id"]: float(x["correct"]) for x in obj["records"]}

    va, vb = vec(*a_run), vec(*b_run)
    a = np.array([va[i] for i in va])
    b = np.array([vb[i] for i in va])

    def diff(x, y, axis=-1):
        return x.mean(axis=axis) - y.mean(axis=axis)

    ci = sps.bootstrap((a, b), diff, paired=True, vectorized=True, n_resamples=resamples, method="percentile",
                       rng=np.random.default_rng(0)).confidence_interval
    p = sps.permutation_test((a, b), diff, permutation_type="samples", vectorized=True, n_resamples=resamples,
                             rng=np.random.default_rng(0)).pvalue
    return (a - b).mean(), ci, p


def test_main_table_p_value_against_scipy(tmp_path, tiny_config):
    """One column, one seed: the main table's Δ, CI and p for an ILR row, recomputed with scipy from the
    eval files."""
    c = tiny_config
    c["tables"]["main"]["benchmarks"] = ["arith"]
    c["evaluation"]["bootstrap"] = 5000
    ilrstudy.check(c)
    fake_evals(c, tmp_path / "eval")
    tables.write_tables(c, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    rows = list(csv.DictReader(open(tmp_path / "tables" / "main.csv")))
    r = next(x for x in rows if x["model"] == "tiny-qwen-s" and x["row"] == "ILR-group1")
    base = {"GRPO": ("grpo", "tiny-qwen-s"), "PPO": ("ppo", "tiny-qwen-s")}[r["vs_baseline"]]
    d, ci, p = scipy_paired(tmp_path / "eval", ("ilr", "group1"), base, 5000)
    assert float(r["delta_avg"]) == pytest.approx(100 * d, abs=1e-3)
    assert float(r["delta_avg_ci_low"]) == pytest.approx(100 * ci.low, abs=1e-3)
    assert float(r["delta_avg_ci_high"]) == pytest.approx(100 * ci.high, abs=1e-3)
    assert float(r["p_value"]) == pytest.approx(p, abs=1e-5)
    assert r["test"] == "paired over questions, seed 0: bootstrap CI, permutation p"


def test_trained_rows_against_base_on_the_in_distribution_column(tmp_path, tiny_config):
    """tables.main.vs_base: each trained row's Δ on that column against Base, with the paired
    difference's 95% CI and p, recomputed with scipy from the eval files."""
    c = tiny_config
    assert c["tables"]["main"]["vs_base"] == "arith"
    c["evaluation"]["bootstrap"] = 5000
    fake_evals(c, tmp_path / "eval")
    tables.write_tables(c, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    rows = list(csv.DictReader(open(tmp_path / "tables" / "main.csv")))
    assert all(r["delta_vs_base"] == "" for r in rows if r["row"] == "Base")
    assert all(r["delta_vs_base"] != "" for r in rows if r["row"] != "Base")

    r = next(x for x in rows if x["model"] == "tiny-qwen-s" and x["row"] == "GRPO")
    d, ci, p = scipy_paired(tmp_path / "eval", ("grpo", "tiny-qwen-s"), ("base", "none"), 5000)
    assert float(r["delta_vs_base"]) == pytest.approx(100 * d, abs=1e-3)
    assert float(r["delta_vs_base_ci_low"]) == pytest.approx(100 * ci.low, abs=1e-3)
    assert float(r["delta_vs_base_ci_high"]) == pytest.approx(100 * ci.high, abs=1e-3)
    assert float(r["p_vs_base"]) == pytest.approx(p, abs=1e-5)
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
    from scipy import stats as sps
    a = [float(v) for v in ilr["Avg_per_seed"].split()]
    b = [float(v) for v in vs["Avg_per_seed"].split()]
    assert float(ilr["p_value"]) == pytest.approx(sps.ttest_rel(a, b).pvalue, abs=1e-4)
    md = (tmp_path / "tables" / "main.md").read_text()
    assert " ± " in md and "standard deviation over seeds" in md
    # Δ vs Base (one untrained seed): the row's seed-averaged accuracy, the number its cell shows
    assert float(g["delta_vs_base"]) == pytest.approx(float(g["arith"]) - float(base["arith"]),
                                                                         abs=1e-3)
    assert "seed-averaged per-question accuracy against Base" in md


def test_paper_numbers_side_by_side(tmp_path):
    """The paper config: every transcribed number whose row and column the study produces is compared."""
    c = ilrstudy.load(REPO / "config" / "paper.yaml")
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
    # Qwen-14B's ILR AIME 23.33: the source names no group for it, so it is compared once with each ILR row
    # of the model as the unattributed `ilr/*` entry, never as ILR-Group3's own number
    aime = [r for r in rows if r["model"] == "qwen-14b" and r["column"] == "AIME" and r["row"].startswith("ILR-")]
    assert sorted(r["row"] for r in aime) == ["ILR-group2", "ILR-group3"]
    assert all(float(r["paper"]) == 23.33 and "does not name the group" in r["note"] for r in aime)
    assert len(rows) == 54
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
    for m in ("tiny-llama", "tiny-qwen-l"):   # Idea3 split by the peer's shared idea: the records' own parts
        x = obj["settings"]["idea3"][m]
        split = x["by_peer"]
        assert split["peer_right"]["n"] + split["peer_wrong"]["n"] == 4
        for key, right in (("peer_right", True), ("peer_wrong", False)):
            part = [r["correct"] for r in x["records"] if r["peers_right"] == right]
            assert split[key]["n"] == len(part)
            assert split[key]["accuracy"] == (sum(part) / len(part) if part else None)


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

    c = ilrstudy.load(REPO / "config" / "config.yaml")
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


def test_ablation_caption_flags_rows_identical_by_construction(tmp_path, tiny_config):
    """The ablation caption says where calibration moved no advantage (the run's training summary, copied into
    its evaluation files): there Full ILR is DI-only by construction. Where it acted, it says how much."""
    from ilr.io import read_json

    fake_evals(tiny_config, tmp_path / "eval")
    effects = {"tiny-llama": 1e-5, "tiny-qwen-s": 0.37}
    for f in (tmp_path / "eval").rglob("*.json"):
        obj = read_json(f)
        s = obj["summary"]
        if s["method"] in ("ilr", "ilr_pc_only"):
            e = effects.get(s["model"], 1e-5)
            s["training"] = {"method": s["method"], "calibration": True, "calibration_effect": e,
                             "calibration_inert": e < 1e-3}
            write_json(f, obj)
    tables.write_tables(tiny_config, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    md = (tmp_path / "tables" / "ablation.md").read_text()
    assert "Calibration check" in md
    assert "Full ILR tiny-llama (group1) (1e-05)" in md and "identical by construction to DI-only" in md
    assert "Full ILR tiny-qwen-s (group1) (up to 0.37)" in md
    assert "PC-only tiny-llama (group1)" in md and "GRPO on the same solo answers" in md


def test_captions_name_reward_and_estimator_and_aipo_consults(tmp_path, tiny_config):
    """Every trained table's caption says what its rows trained with; rows that differ (the pooled variants of
    the ablation) are named with theirs. AIPO rows carry their consultation rate (caption and CSV)."""
    import pandas as pd

    from ilr.io import read_json

    fake_evals(tiny_config, tmp_path / "eval")
    for f in (tmp_path / "eval").rglob("*.json"):
        obj = read_json(f)
        if obj["summary"]["method"] == "aipo":
            obj["summary"]["training"] = {"consult_rate": 0.25, "consult_rate_per_agent": {
                "verify": 0.125, "knowledge": 0.0625, "reasoning": 0.0625}}
            write_json(f, obj)
    tables.write_tables(tiny_config, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    main, ablation = ((tmp_path / "tables" / f"{t}.md").read_text() for t in ("main", "ablation"))
    primary = ("reward R = 1 for a correct final answer, else 0, + 0.2 when the completion states a final answer "
               "the grader finds; GRPO advantages (R - mean) / std over each model's own G completions")
    assert primary in main and primary in ablation
    assert "Rows " not in main                  # one estimator for every row the main table compares
    assert "Rows Full ILR (pooled), DI-only (pooled): " in ablation and "(pooled)" in ablation
    assert "AIPO consultation rate" in main and "25.0% (verify 12.5%, knowledge 6.2%, reasoning 6.2%)" in main
    csv = pd.read_csv(tmp_path / "tables" / "main.csv")
    aipo = csv[csv["method"] == "aipo"]
    assert len(aipo) == 3 and (aipo["consult_rate"] == 25.0).all() and (aipo["consult_rate_verify"] == 12.5).all()
    assert csv[csv["method"] == "grpo"]["consult_rate"].isna().all()
