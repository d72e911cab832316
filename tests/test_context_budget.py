"""The context budget (ilr/config/budget.py): every stage's longest prompt + completion against
generation.max_model_len, on the real study configs; prepare-data holds questions to the budget's bound."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ilr import config as cfg
from ilr import study
from ilr.config import budget as context_budget

REPO = Path(__file__).resolve().parents[1]
PAPER, TINY = REPO / "config" / "paper.yaml", REPO / "config" / "config.yaml"


def stage(config: dict, name: str) -> context_budget.Stage:
    return next(s for s in context_budget.stages(config) if s.name.startswith(name))


def test_the_paper_config_holds_every_stage():
    c = cfg.load(PAPER)
    stages = context_budget.stages(c)
    limit = c["generation"]["max_model_len"]
    assert max(s.total for s in stages) <= limit
    # the stages the issue names are all budgeted
    for name in ("ability", "evaluation", "difficulty (self_rank)", "methods.ilr: ILR Sharing",
                 "methods.ilr: ILR Analysis (group trio, m = 3)", "methods.ilr: ILR Fusion (group trio, m = 3)",
                 "methods.aipo: AIPO rollout (trigger request", "methods.aipo: AIPO agent",
                 "multi_agent: Debate round 2", "multi_agent: Idea3 Fusion"):
        assert stage(c, name).total > 0, name
    # a Fusion prompt quotes the question, the own solution, the peers' and the analysis: the completions in full
    Q, C = c["context_budget"]["max_question_tokens"], c["training"]["max_new_tokens"]
    trio = stage(c, "methods.ilr: ILR Fusion (group trio")
    assert trio.completion == C and trio.prompt > Q + 4 * C


def test_the_paper_config_with_a_2048_context_is_refused(tmp_path):
    c = cfg.load_yaml(PAPER)
    c["generation"]["max_model_len"] = 2048
    path = tmp_path / "paper-2048.yaml"
    path.write_text(yaml.safe_dump(c, sort_keys=False))
    with pytest.raises(cfg.ConfigError) as e:
        cfg.load(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: generation.max_model_len: 2,048 tokens cannot hold"), msg
    # the stage, its prompt and completion tokens, the total against the limit
    assert "multi_agent: Idea3 Fusion" in msg and "methods.ilr: ILR Fusion (group trio, m = 3)" in msg, msg
    worst = max(context_budget.stages(cfg.load(PAPER)), key=lambda s: s.total)
    assert f"expected at least {worst.total:,}" in msg and f"completion {worst.completion}" in msg, msg
    # `python -m ilr check-config`: one line, exit 2, before anything runs
    r = subprocess.run([sys.executable, "-m", "ilr", "check-config", str(path)], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stderr == f"error: {' '.join(msg.split())}\n", r.stderr


def test_a_trio_needs_more_than_a_pair():
    c = cfg.load(PAPER)
    pairs = copy.deepcopy(c)
    pairs["methods"]["ilr"]["groups"] = ["group1", "group2", "group3"]
    trio = stage(c, "methods.ilr: ILR Fusion")
    pair = stage(pairs, "methods.ilr: ILR Fusion")
    assert "m = 3" in trio.name and "m = 2" in pair.name
    # one more peer's solution: its markup and max_new_tokens
    peer = context_budget.Budget(c).fixed("peer_item") + 1
    assert trio.total - pair.total == peer + c["training"]["max_new_tokens"] > 0
    assert context_budget.run_tokens(c, "ilr") == trio.total > context_budget.run_tokens(pairs, "ilr")


def test_the_tiny_config_holds_every_stage_in_its_models_positions():
    c = cfg.load(TINY)
    limit = c["generation"]["max_model_len"]
    contexts = {m["build"].get("context", 512) for m in c["models"].values()}
    assert limit <= min(contexts)
    assert max(s.total for s in context_budget.stages(c)) <= limit


def test_a_smaller_question_bound_or_completion_changes_the_need():
    c = cfg.load(PAPER)
    before = stage(c, "multi_agent: Idea3 Fusion").total
    c["context_budget"]["max_question_tokens"] -= 100
    c["evaluation"]["max_new_tokens"] -= 10
    assert stage(c, "multi_agent: Idea3 Fusion").total == before - 100 - 4 * 10


def test_prepare_data_drops_long_training_questions_and_refuses_a_long_benchmark(tmp_path, capsys):
    from ilr.data_prep import prepare
    from ilr.io import DataError

    c = cfg.load(TINY)
    c["context_budget"]["max_question_tokens"] = 6     # tiny questions have up to 7 characters (arith_hard: 11)
    train = tmp_path / "train"
    m = prepare(c, train, ["train"])
    dropped = m["dropped_long_questions"]["data.train"]
    assert dropped["n"] > 0 and len(dropped["ids"]) == dropped["n"]
    assert "data.train: dropped" in capsys.readouterr().err
    n = c["data"]["train"]["n"]
    assert m["files"]["train.jsonl"]["records"] + m["files"]["val.jsonl"]["records"] == n - dropped["n"]
    with pytest.raises(DataError, match=r"benchmarks\.arith_hard: \d+ of 80 questions longer than "
                                        r"context_budget\.max_question_tokens = 6"):
        prepare(c, tmp_path / "bench", ["bench/arith_hard"])
    # the bound is part of what prepare-data reads (its rerun trigger)
    assert study.stage_spec(c, "prepare_data", part="train")["context_budget"]["max_question_tokens"] == 6
