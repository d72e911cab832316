"""The trainer registry (ilr/trainers.py) is the one place a trainer's facts live: the schema names the same
trainers, each spec's module exists, and nothing reads a trainer another way."""

import ast
from pathlib import Path

import pytest

from ilr import config as cfg
from ilr import trainers

REPO = Path(__file__).resolve().parents[1]


def test_schema_trainer_enum_equals_registry():
    assert cfg.trainer_names() == list(trainers.TRAINERS)
    for name in trainers.TRAINERS:     # and each has its schema branch
        assert cfg.method_schema(name)["properties"]["trainer"] == {"const": name}


def test_each_spec_names_its_module_and_memory_kind():
    for name, t in trainers.TRAINERS.items():
        assert t.name == name and t.memory in trainers.MEMORY
        path = REPO / (t.module.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "train" for n in tree.body), t.module
        for key in t.extra_models:     # each extra model is a key of its schema branch
            assert key in cfg.trainer_keys(name)


def test_unknown_trainer_is_an_error():
    with pytest.raises(KeyError, match="unknown trainer 'nope'"):
        trainers.trainer("nope")
    with pytest.raises(ValueError, match="memory"):
        trainers.Trainer("x", "ilr.train.x", group=False, memory="guess")


def test_single_and_group():
    assert trainers.group() == ["ilr"]
    assert set(trainers.single()) == {"grpo", "ppo", "aipo"}
    assert trainers.extra_models({"trainer": "aipo", "helper": "tiny-qwen-l"}) == ["tiny-qwen-l"]
    assert trainers.extra_models({"trainer": "grpo"}) == []


def test_vllm_flag_marks_the_trainers_that_build_trls_engine():
    """`vllm`: the trainers whose job checks TRL's colocated engine before it loads anything (ilr/train/__init__.py)
    are exactly those whose module builds their TRL config with it (model_grpo_config: trl_vllm_args)."""
    for name, t in trainers.TRAINERS.items():
        source = (REPO / (t.module.replace(".", "/") + ".py")).read_text()
        assert t.vllm == ("model_grpo_config(" in source), name
