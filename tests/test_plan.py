"""The memory plan (ilr/plan.py): the paper study fits its GPUs; a job that cannot is named before anything runs."""

from __future__ import annotations

import copy

import pytest

from conftest import REPO, make_random_model, run_ilr
from ilr import config as cfg
from ilr import study
from ilr import plan


@pytest.fixture(scope="module")
def paper():
    return study.load(REPO / "config" / "paper.yaml")


def test_paper_study_fits(paper):
    rows = plan.plan(paper)
    gpu_jobs = [r for r in rows if r["gpus"]]
    assert {r["rule"] for r in gpu_jobs} == {"ability", "difficulty", "train_single", "train_group", "evaluate",
                                             "multi_agent"}
    assert all(r["fits"] and r["need"] <= r["gpu_mem"] for r in gpu_jobs), [r for r in gpu_jobs if not r["fits"]]
    # every training job is sharded, and N processes split the step's questions evenly
    for r in gpu_jobs:
        if r["rule"].startswith("train_"):
            assert "ZeRO-3" in r["how"]
            assert paper["training"]["questions_per_step"] % r["gpus"] == 0, r


def test_the_group_jobs_plan_every_member_on_every_gpu(paper):
    rows = {r["what"]: r for r in plan.plan(paper)}
    group3, single14 = rows["ilr/group3/seed0"], rows["grpo/qwen-14b/seed0"]
    assert group3["names"] == ["qwen-7b", "qwen-14b"] and group3["gpus"] == 8
    # two models' training state on the same 8 GPUs weigh more than one's
    assert group3["need"] > rows["ilr/group1/seed0"]["need"] > 0 and single14["need"] > 0


def test_a_job_that_cannot_fit_fails_naming_it(paper):
    small = copy.deepcopy(paper)
    small["resources"]["rules"]["train_group"]["gpus"] = 2
    with pytest.raises(cfg.ConfigError, match=r"train_group ilr/group3/seed0: \d+ GB per GPU of 80 GB"):
        plan.check(small, "paper.yaml")
    no_shard = copy.deepcopy(paper)
    no_shard["training"]["accelerate_config"] = "multi_gpu"   # DDP: every GPU holds all of 7B + 14B's state
    assert any(not r["fits"] and "DDP" in r["how"] for r in plan.plan(no_shard))


def test_local_checkpoints_are_counted_exactly(tmp_path):
    from transformers import AutoModelForCausalLM

    path = make_random_model(tmp_path / "m", hidden=48)
    facts = plan.model_facts(str(path))
    n = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(path).parameters())
    assert facts.params == n and facts.hidden == 48 and facts.layers == 1
    with pytest.raises(KeyError, match="model_facts.yaml"):
        plan.model_facts("someone/unknown-model")


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen-l"])
def test_models_still_to_build_are_planned_from_their_build_entry(tmp_path, name):
    """A tiny model the study has not built yet (e.g. gpu_smoke's fresh study) is planned from its
    `build:` entry: the same numbers as the model make_model builds from it."""
    from ilr.tiny.build import make_model
    from ilr.tiny.tokenizer import build_tokenizer

    build = cfg.load(REPO / "config" / "config.yaml")["models"][name]["build"]
    model = make_model(build, build_tokenizer())
    model.save_pretrained(tmp_path / name)
    built, planned = plan.model_facts(str(tmp_path / name)), plan.model_facts(str(tmp_path / "absent"), build)
    assert planned == built and planned.params == sum(p.numel() for p in model.parameters())


def test_plan_command(tmp_path, paper):
    ok = run_ilr("plan", "--config", str(REPO / "config" / "paper.yaml"))
    assert ok.returncode == 0 and "0 cannot fit" in ok.stdout and "train_group ilr/group3/seed0" in ok.stdout
    import yaml

    bad = copy.deepcopy(yaml.safe_load((REPO / "config" / "paper.yaml").read_text()))
    bad["resources"]["default"]["gpu_mem_mb"] = 24000
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    r = run_ilr("plan", "--config", str(tmp_path / "bad.yaml"))
    assert r.returncode == 1 and " NO " in r.stdout


def test_an_unknown_hub_model_is_a_config_error(paper):
    other = copy.deepcopy(paper)
    other["models"]["qwen-7b"]["path"] = "someone/unknown-7b"
    with pytest.raises(cfg.ConfigError, match=r"paper\.yaml: models: someone/unknown-7b: .*model_facts\.yaml"):
        plan.check(other, "paper.yaml")
