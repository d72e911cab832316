"""Training curves (config training.report_to, ilr/train/trackers.py): tiny grpo, aipo and ILR group runs
(`ilr train`) leave TensorBoard event files under their run directories with their reward and loss scalars,
one value per step (the members' TRL logs, the coordinator's group metrics); report_to [] writes none;
check-config refuses wandb / trackio for a trainer that writes TensorBoard only. PPO: tests/test_ppo.py."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from conftest import run_ilr

STEPS = 2


def event_files(root: Path) -> list[Path]:
    return sorted(root.rglob("events.out.tfevents.*"))


def scalars(log_dir: Path) -> dict[str, list[int]]:
    """tag -> the steps of its values, from every TensorBoard event file in `log_dir`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert list(log_dir.glob("events.out.tfevents.*")), f"no event files in {log_dir}"
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture
def tiny_run(study, tmp_path):
    """`run(method, group, report_to)`: `ilr train` of a 2-step run on the random tiny models; its out dir."""
    from ilr.io import write_jsonl
    from ilr.tiny.task import generate

    cfg, _ = study
    cfg["training"].update(steps=STEPS, questions_per_step=2, num_generations=2, max_new_tokens=6,
                           save_steps=STEPS)
    train = tmp_path / "train.jsonl"
    write_jsonl(train, generate("tiny_arith", 8, 0, min_steps=1, max_steps=1, max_operand=3, families=["+-"]))

    def run(method: str, group: str, report_to) -> Path:
        c = copy.deepcopy(cfg)
        c["training"]["report_to"] = report_to
        tag = f"{method}-{'_'.join(report_to) if isinstance(report_to, list) else report_to}"
        path, out = tmp_path / f"{tag}.yaml", tmp_path / tag
        path.write_text(yaml.safe_dump(c))
        r = run_ilr("train", "--config", str(path), "--method", method, "--group", group, "--seed", "0",
                    "--train", str(train), "--out-dir", str(out), timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        return out
    return run


@pytest.mark.parametrize("method", ["grpo", "aipo"])
def test_trl_trainer_writes_tensorboard_curves_in_its_run_dir(tiny_run, method):
    out = tiny_run(method, "tiny-llama", ["tensorboard"])
    run_dir = out / "tiny-llama"
    assert {p.parent for p in event_files(out)} == {run_dir / "tensorboard"}   # not checkpoints/runs/<date>
    tags = scalars(run_dir / "tensorboard")
    for tag in ("train/reward", "train/loss"):
        assert tags[tag] == list(range(1, STEPS + 1)), (tag, sorted(tags))


def test_report_to_none_writes_no_curves(tiny_run):
    out = tiny_run("grpo", "tiny-llama", [])
    assert (out / "tiny-llama" / "final").is_dir() and not event_files(out)


def test_ilr_members_and_coordinator_write_their_own_curves(tiny_run):
    out = tiny_run("ilr_pc_only", "group1", ["tensorboard"])   # interaction none: no gamma or difficulty needed
    members = ("tiny-llama", "tiny-qwen-s")
    assert {p.parent for p in event_files(out)} == {out / "tensorboard", *(out / n / "tensorboard" for n in members)}
    group = scalars(out / "tensorboard")
    for tag in ("group/calibration_effect", *(f"group/{n}/reward" for n in members)):
        assert group[tag] == list(range(1, STEPS + 1)), (tag, sorted(group))
    for n in members:
        tags = scalars(out / n / "tensorboard")
        for tag in ("train/reward", "train/loss"):
            assert tags[tag] == list(range(1, STEPS + 1)), (n, tag, sorted(tags))


def test_wandb_is_refused_where_only_tensorboard_is_written(tiny_config):
    from ilr import study
    from ilr.config import ConfigError

    c = copy.deepcopy(tiny_config)
    c["training"]["report_to"] = ["tensorboard", "wandb"]
    with pytest.raises(ConfigError, match=r"training\.report_to: trainer 'ppo' writes its curves to tensorboard"):
        study.validate(c)
    c["methods"]["ppo"]["report_to"] = ["tensorboard"]
    for name, m in c["methods"].items():
        if m["trainer"] == "ilr":
            m["report_to"] = "none"
    assert study.validate(c)["methods"]["grpo"].get("report_to") is None   # grpo: the training default, wandb
