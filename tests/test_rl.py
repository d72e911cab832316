"""The RL maths home (ilr/train/rl.py): GRPO's estimators by name against TRL's own formula, and AIPO's
importance weight. PPO's GAE, whitening and losses: tests/test_ppo.py; calibration's effect on the
advantages: tests/test_calibration.py."""

from __future__ import annotations

import pytest
import torch
import yaml

from ilr.config import load
from ilr.train import rl

from factories import REPO


def test_estimators_are_the_schema_choices():
    """Every `training.advantages` the schema accepts has an estimator, and no estimator is unreachable."""
    s = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert sorted(s["properties"]["training"]["properties"]["advantages"]["enum"]) == sorted(rl.ESTIMATORS)
    assert load(REPO / "config" / "config.yaml")["training"]["advantages"] in rl.ESTIMATORS


def test_member_advantages_are_trl_grpo_advantages():
    """`member` with scale group is TRL's GRPO: (R - mean) / (std + 1e-4) over each model's own G, std
    unbiased (torch.std), whatever the peers' rewards."""
    raw = {"a": [0.0, 0.2, 1.2, 0.2], "b": [1.2, 1.2, 0.0, 0.2]}
    out = rl.advantages(raw, "member", "group")
    for n, r in raw.items():
        t = torch.tensor(r, dtype=torch.float64)
        want = (t - t.mean()) / (t.std() + 1e-4)
        assert out[n] == pytest.approx(want.tolist(), abs=1e-12)
    assert rl.unbiased_std([3.0]) == 0.0


def test_pooled_advantages_use_every_models_completions():
    raw = {"a": [0.0, 0.0], "b": [1.0, 1.0]}
    out = rl.advantages(raw, "pooled", "none")
    assert out == {"a": [-0.5, -0.5], "b": [0.5, 0.5]}
    assert rl.advantages(raw, "member", "none") == {"a": [0.0, 0.0], "b": [0.0, 0.0]}
    assert rl.advantages(raw, "member", "batch", batch_std={"a": 1.0, "b": 1.0}) == {"a": [0.0, 0.0], "b": [0.0, 0.0]}


def test_unknown_estimator_or_scale_is_an_error_naming_it():
    with pytest.raises(ValueError, match="unknown advantage estimator 'median'"):
        rl.advantages({"a": [0.0, 1.0]}, "median", "group")
    with pytest.raises(ValueError, match="unknown scale_rewards 'max'"):
        rl.advantages({"a": [0.0, 1.0]}, "member", "max")


def test_importance_weight_is_the_clipped_ratio():
    target = torch.log(torch.tensor([0.5, 0.1, 0.9]))
    behaviour = torch.log(torch.tensor([0.25, 0.5, 0.9]))
    w, raw = rl.importance_weight(target, behaviour, 0.5, 1.5)
    assert raw.tolist() == pytest.approx([2.0, 0.2, 1.0])
    assert w.tolist() == pytest.approx([1.5, 0.5, 1.0])
