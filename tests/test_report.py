"""The tables stage on synthetic evaluation files (no model, no torch)."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

import pytest

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
    return n


@pytest.fixture()
def tiny_config():
    return cfg.load(REPO / "config" / "config.yaml")


def test_tables_from_fake_evals(tmp_path, tiny_config):
    fake_evals(tiny_config, tmp_path / "eval")
    written = tables.write_tables(tiny_config, tmp_path / "eval", tmp_path / "tables", tmp_path / "figures")
    names = sorted(p.name for p in written)
    assert names == sorted(["main.md", "main.csv", "ablation.md", "ablation.csv", "coop_ratio.md", "coop_ratio.csv",
                            "coop_ratio.png"])
    md = (tmp_path / "tables" / "main.md").read_text()
    assert "solo" in md and "greedy" in md
    for model in tiny_config["models"]:
        assert f"## {model}" in md
    assert "| ILR-group1 |" in md and "| GRPO |" in md and "| PPO |" in md and "| Base |" in md
    rows = list(csv.DictReader(open(tmp_path / "tables" / "main.csv")))
    # tiny-llama: Base, GRPO, PPO, ILR-group1, ILR-group2
    assert [r["row"] for r in rows if r["model"] == "tiny-llama"] == ["Base", "GRPO", "PPO", "ILR-group1", "ILR-group2"]
    r = rows[0]
    assert float(r["arith_ci_low"]) <= float(r["arith"]) <= float(r["arith_ci_high"])
    assert float(r["Avg_ci_low"]) <= float(r["Avg"]) <= float(r["Avg_ci_high"])
    coop = list(csv.DictReader(open(tmp_path / "tables" / "coop_ratio.csv")))
    assert [r["row"] for r in coop if r["model"] == "tiny-llama"][-1] == "IRT"
    assert len(coop) == 2 * 7
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
