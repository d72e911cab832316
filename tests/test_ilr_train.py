"""The ILR group trainer on real tiny models: the rollout log is recomputable, runs resume exactly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import REPO, run_ilr, train_args
from ilr.calibration import calibrate
from ilr.train.rl import advantages
from ilr.interaction import common_type, irt_probability, irt_type, irt_types, ratio_type
from ilr.io import read_jsonl

MODELS = ("tiny-llama", "tiny-qwen-s")


@pytest.mark.parametrize("method,irt_rule", [("ilr", "mean"), ("ilr", "per_model"), ("ilr_di_only", "per_model"),
                                             ("ilr_pc_only", "mean"), ("ilr_ratio_p0.5", "mean")])
def test_rollout_log_recomputes(warm_study, method, irt_rule):
    cfg, config_path, d = warm_study
    cfg["training"]["advantages"] = "member"   # GRPO "as usual" (pooled: test_pooled_advantages_let_calibration_act)
    cfg["training"]["reward_format"] = 0.0     # 0/1 rewards: calibration is then inert by construction (below)
    cfg["interaction"]["irt_rule"] = irt_rule
    config_path.write_text(yaml.safe_dump(cfg))
    out = d / "run"
    proc = run_ilr(*train_args(d, config_path, method, out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_jsonl(out / "rollouts.jsonl")
    G, per_step, steps = 4, 4, 4
    assert [r["step"] for r in rows] == [s for s in range(1, steps + 1) for _ in range(per_step)]
    difficulty = {r["id"]: r["difficulty"] for r in read_jsonl(d / "difficulty.jsonl")}
    varied = False
    for r in rows:
        models = r["models"]
        assert set(models) == set(MODELS)
        raw = {n: m["rewards"] for n, m in models.items()}
        assert all(len(v) == G and set(v) <= {0.0, 1.0} for v in raw.values())
        varied |= any(len(set(v)) > 1 for v in raw.values())
        if method == "ilr_di_only":
            assert all(m["calibrated"] is None for m in models.values())
        else:  # every calibrated reward is the formula applied to the logged raw rewards
            expected = calibrate(raw, cfg["training"]["calibration_eps"])
            for n, m in models.items():
                assert m["calibrated"] == pytest.approx(expected[n])
        # the advantages each model trained on, and without calibration, from the logged rewards
        trained = {n: m["calibrated"] or m["rewards"] for n, m in models.items()}
        for key, source in (("advantages", trained), ("advantages_uncalibrated", raw)):
            want = advantages(source, "member", scale=cfg["training"]["scale_rewards"])
            for n, m in models.items():
                assert m[key] == pytest.approx(want[n], abs=1e-9)
        if method in ("ilr", "ilr_di_only"):
            assert r["rule"] == "irt" and r["difficulty"] == difficulty[r["question_id"]]
            P = {n: irt_probability(m["gamma"], r["difficulty"]) for n, m in models.items()}
            assert {n: m["P"] for n, m in models.items()} == pytest.approx(P)
            modes = irt_types(P, irt_rule)   # each model's own mode (per_model) or the group's one
            assert {n: m["interaction"] for n, m in models.items()} == modes
            assert r["interaction"] == common_type(modes)
            if irt_rule == "per_model":
                assert modes == {n: ("cooperation" if P[n] < 0.5 else "competition") for n in models}
            else:
                assert set(modes.values()) == {irt_type(P, irt_rule)}
        elif method == "ilr_pc_only":
            assert r["rule"] == "none" and r["interaction"] is None and r["difficulty"] is None
            assert all("analysis" not in m["completions"] for m in models.values())   # no interaction
        else:
            assert r["rule"] == "ratio" and r["p"] == 0.5 and r["difficulty"] is None
            assert r["interaction"] == ratio_type(0.5, 0, r["question_id"])
            assert all(m["interaction"] == r["interaction"] for m in models.values())
        if r["interaction"] is not None:
            assert all(set(m["completions"]) == {"sharing", "analysis", "fusion"} for m in models.values())
        assert all(len(m["completions"]["fusion"]) == G for m in models.values())
    assert varied, "no question had varied rewards: the warm models never answer right, the test proves nothing"
    if irt_rule == "per_model" and method != "ilr_pc_only":   # the D = 0.5 questions (conftest.warm_study)
        assert "mixed" in {r["interaction"] for r in rows}
    if method == "ilr":   # both modes occur, for some model
        assert {m["interaction"] for r in rows for m in r["models"].values()} == {"cooperation", "competition"}
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(1, steps + 1))
    # binary rewards, each model's completions normalised: calibration changes no update (METHOD.md section 5)
    assert all(m["calibration_effect"] < 1e-3 for m in metrics)
    summary = json.loads((out / MODELS[0] / "final" / "training_summary.json").read_text())
    assert summary["calibration"] == (method != "ilr_di_only")
    assert summary.get("calibration_inert", True)
    for n in MODELS:
        assert (out / n / "final" / "model.safetensors").is_file()
    from ilr.report.curves import load_curves

    curves = load_curves(out)  # what training_curve.png shows
    assert (out / "training_curve.png").stat().st_size > 10_000
    assert set(curves["reward"]) >= set(MODELS)
    assert all(xs == list(range(1, steps + 1)) for xs, _ in curves["reward"].values())


def weights(run_dir, name):
    return load_file(str(run_dir / name / "final" / "model.safetensors"))


def test_killed_run_resumes_to_identical_weights(warm_study):
    cfg, config_path, d = warm_study
    straight, killed = d / "straight", d / "killed"
    assert run_ilr(*train_args(d, config_path, "ilr", straight)).returncode == 0

    # Start the same run, SIGKILL it as soon as both members have their step-2 checkpoint.
    proc = subprocess.Popen([sys.executable, "-m", "ilr", *train_args(d, config_path, "ilr", killed)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marks = [killed / n / "checkpoints" / "checkpoint-2" / "trainer_state.json" for n in MODELS]
    deadline = time.time() + 300
    while not all(m.exists() for m in marks) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / MODELS[0] / "final").exists(), "the run finished before it could be killed"

    resumed = run_ilr(*train_args(d, config_path, "ilr", killed))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for n in MODELS:
        a, b = weights(straight, n), weights(killed, n)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{n}: resumed weights differ"
        base = load_file(str(cfg["models"][n]["path"] + "/model.safetensors"))
        assert not all(torch.equal(a[k], base[k]) for k in a), f"{n}: training did not move the weights"
    assert read_jsonl(straight / "rollouts.jsonl") == read_jsonl(killed / "rollouts.jsonl")


@pytest.mark.parametrize("stages", [["fusion"], ["sharing", "fusion"]])
def test_trained_stages(warm_study, stages):
    """What TRL trains on is what the rollout log says: the G Fusion completions per question, and with
    train_stages [sharing, fusion] also G solo (Sharing) answers per question, calibrated against the
    peers' Sharing answers, the first of which is the idea the peers read."""
    from ilr.train.common import rule_reward

    cfg, config_path, d = warm_study
    cfg["training"]["train_stages"] = stages
    config_path.write_text(yaml.safe_dump(cfg))
    out = d / "run"
    proc = run_ilr(*train_args(d, config_path, "ilr", out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["id"]: r for r in read_jsonl(d / "train.jsonl")}
    rows = read_jsonl(out / "rollouts.jsonl")
    assert len(rows) == 4 * 4
    trained = [[x for r in rows if r["step"] == step for x in r["models"][n]["calibrated"]
                + (r["models"][n]["sharing"]["calibrated"] if "sharing" in stages else [])]
               for n in MODELS for step in range(1, 5)]
    assert all(len(t) == len(stages) * 4 * 4 for t in trained)
    for i, n in enumerate(MODELS):   # TRL's logged mean reward is over exactly those completions
        log = [json.loads(line) for line in (out / n / "trainer_log.jsonl").read_text().splitlines()]
        logged = [row["reward"] for row in log if "reward" in row]
        assert logged == pytest.approx([sum(t) / len(t) for t in trained[4 * i:4 * i + 4]], abs=1e-5)
    if stages == ["fusion"]:
        assert all("sharing" not in m for r in rows for m in r["models"].values())
        return
    varied = False
    for r in rows:
        raw = {n: m["sharing"]["rewards"] for n, m in r["models"].items()}
        expected = calibrate(raw, cfg["training"]["calibration_eps"])
        for n, m in r["models"].items():
            sharing = m["sharing"]
            assert len(sharing["completions"]) == 4
            fmt = cfg["training"]["reward_format"]
            assert sharing["rewards"] == [rule_reward(records[r["question_id"]], t, fmt) for t in sharing["completions"]]
            assert sharing["calibrated"] == pytest.approx(expected[n])
            assert m["completions"]["sharing"] == sharing["completions"][0]   # the idea the peers read
            assert len(m["completions"]["fusion"]) == 4
        varied |= any(len(set(v)) > 1 for v in raw.values())
    assert varied, "no question had varied Sharing rewards: the test proves nothing"
    assert all(f"{n}/sharing_reward" in m for m in read_jsonl(out / "metrics.jsonl") for n in MODELS)


def test_empirical_difficulty_is_reproducible(warm_study):
    """D_q from sampled answers (empirical, T > 0) is seeded: two runs, and a run with the group's models
    in the other order, rate every question alike (unseeded, group2/group3 of the demo differed run to run)."""
    cfg, config_path, d = warm_study
    cfg["difficulty"].update(method="empirical", samples=4, temperature=1.0, max_new_tokens=24)
    config_path.write_text(yaml.safe_dump(cfg))
    swapped = d / "swapped.yaml"
    cfg["groups"]["group1"] = cfg["groups"]["group1"][::-1]
    swapped.write_text(yaml.safe_dump(cfg))
    outs = []
    for i, path in enumerate((config_path, config_path, swapped)):
        r = run_ilr("difficulty", "--config", str(path), "--group", "group1", "--train", str(d / "train.jsonl"),
                    "--out", str(d / f"difficulty{i}.jsonl"))
        assert r.returncode == 0, r.stderr[-3000:]
        outs.append(read_jsonl(d / f"difficulty{i}.jsonl"))
    assert outs[0] == outs[1]
    assert [r["ratings"] for r in outs[0]] == [r["ratings"] for r in outs[2]]
    assert len({r["difficulty"] for r in outs[0]}) > 2, "every question rated alike: the test proves nothing"


def test_pooled_advantages_let_calibration_act(warm_study):
    """With advantages pooled over the group's m x G completions (config training.advantages), calibration
    moves what the models train on; the run says so in its metrics and its final training summary, and the
    advantages TRL trained on are the logged ones (recomputed here)."""
    cfg, config_path, d = warm_study
    cfg["training"]["advantages"] = "pooled"
    cfg["training"]["steps"] = 2
    config_path.write_text(yaml.safe_dump(cfg))
    out = d / "run"
    proc = run_ilr(*train_args(d, config_path, "ilr", out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_jsonl(out / "rollouts.jsonl")
    for r in rows:
        want = advantages({n: m["calibrated"] for n, m in r["models"].items()}, "pooled", scale="group")
        assert all(m["advantages"] == pytest.approx(want[n], abs=1e-9) for n, m in r["models"].items())
    effect = max(m["calibration_effect"] for m in read_jsonl(out / "metrics.jsonl"))
    summary = json.loads((out / MODELS[0] / "final" / "training_summary.json").read_text())
    assert effect > 0.05 and summary["calibration_effect"] > 0.05 and not summary["calibration_inert"]


def test_gradient_checkpointing_reaches_trl_and_changes_no_weight(warm_study):
    """`training.gradient_checkpointing` is TRL's setting for every member (it once reached only PPO: TRL's own
    default, on, applied), and recomputing the activations in backward changes no bit of what is trained: the
    tiny default turns it off for speed with the same tables."""
    cfg, config_path, d = warm_study
    runs = {}
    for on in (True, False):
        cfg["training"]["gradient_checkpointing"] = on
        path = d / f"config-{on}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        out = runs[on] = d / f"gc-{on}"
        proc = run_ilr(*train_args(d, path, "ilr", out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        for n in MODELS:
            args = torch.load(out / n / "checkpoints" / "checkpoint-2" / "training_args.bin", weights_only=False)
            assert args.gradient_checkpointing is on, n
    for n in MODELS:
        a, b = weights(runs[True], n), weights(runs[False], n)
        assert all(torch.equal(a[k], b[k]) for k in a), f"{n}: weights differ with gradient checkpointing"
        base = load_file(str(cfg["models"][n]["path"] + "/model.safetensors"))
        assert not all(torch.equal(a[k], base[k]) for k in a), f"{n}: training did not move the weights"
    assert read_jsonl(runs[True] / "rollouts.jsonl") == read_jsonl(runs[False] / "rollouts.jsonl")
