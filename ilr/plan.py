"""`python -m ilr plan --config CFG`: every GPU job of a study, its memory need per GPU against the GPUs it asks for.

Where things live (README "Running on a cluster"):
- inference jobs (ability, difficulty, evaluate, multi-agent) hold each model in bf16 on the job's GPUs: with
  vLLM, tensor-parallel over `generation.tensor_parallel_size` GPUs inside vLLM's share
  (`gpu_memory_utilization`) of each; multi-agent splits that share between the pair's engines; difficulty
  loads the group's models one after another;
- a training job runs one process per GPU, and every model it trains (all members of an ILR group) lives on
  all of them: sharded by DeepSpeed ZeRO-3 (`training.accelerate_config: deepspeed_zero3`), or replicated
  (DDP, `multi_gpu`). The ILR members take turns (ilr/train/ilr.py), so one member's activations and one
  rollout's generation memory are resident at a time, on top of every member's sharded training state.

Per GPU, with P parameters, N processes, b sequences per process and step (questions_per_step / N x G x
trained stages), C = max_new_tokens, T = the run's longest prompt + completion (its context budget,
ilr/config/budget.py; at most generation.max_model_len, which inference jobs take):
  training state   16 P / N bytes (bf16 weights 2 + bf16 gradients 2 + fp32 master weights 4 + Adam 8),
                   4 P / N with the optimizer offloaded to CPU (offload_optimizer_device: cpu), 16 P under DDP
  reference model  2 P / N (beta > 0; ZeRO-3 shards it too; 2 P under DDP)
  activations      b T h L x 2 bytes with gradient checkpointing (34 without), + logits b C V x 6 bytes
  generation       transformers: the model gathered whole, 2 P, + KV cache b T L x 2 kv_heads x head_dim x 2 bytes;
                   vLLM colocated (sleep mode: weights and cache released while training): its share of the GPU
  peak             state + reference + max(activations, generation), + 10% of the GPU (CUDA context, fragments)
  host memory      12 P with the optimizer offloaded (all processes together) + per process 2 P + 4 GB, vs mem_mb
PPO trains an actor and a critic (2 P) and generates with transformers. AIPO adds its frozen helper model (bf16,
whole on every GPU) and the helper's KV cache while it answers (helper_batch_size prompts at a time). Estimates, not measurements: they
catch a job that cannot fit before it queues for hours; the closing margin is the 10%.

Model facts come from the checkpoint's config.json for a local directory (parameters counted exactly), or
from ilr/model_facts.yaml for hub ids (copied from each repository's config.json).
"""

from __future__ import annotations

import argparse
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

FACTS = Path(__file__).with_name("model_facts.yaml")
GB = 1e9
DEFAULT_GPU_MEM_MB = 80_000      # resources `gpu_mem_mb` unset: an 80 GB A100/H100
OVERHEAD = 0.10                  # of each GPU: CUDA context, allocator fragmentation


@dataclass
class Model:
    params: float
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    vocab: int


@functools.lru_cache(maxsize=None)
def _facts() -> dict:
    return yaml.safe_load(FACTS.read_text(encoding="utf-8"))["models"]


def built_facts(build: dict) -> Model:
    """The size and shape of a tiny model the study builds (models.<name>.build, ilr/tiny/build.py
    `make_model`), before it exists: the same numbers its config.json will hold."""
    from ilr.tiny.tokenizer import vocab

    h, layers, heads = int(build["hidden"]), int(build["layers"]), int(build["heads"])
    inter, n_vocab = int(build.get("intermediate", 2 * h)), len(vocab())
    # tied embeddings; per layer q, k, v, o (full heads), gate/up/down, two norms; the final norm
    params = n_vocab * h + layers * (4 * h * h + 3 * h * inter + 2 * h) + h
    return Model(params=float(params), layers=layers, hidden=h, kv_heads=heads, head_dim=h // heads, vocab=n_vocab)


def model_facts(path: str, build: dict | None = None) -> Model:
    """A model's size and shape: counted from a local checkpoint, computed from the `build:` entry of a
    model the study has still to build, or looked up for a hub id."""
    local = Path(path) / "config.json"
    if local.is_file():
        c = json.loads(local.read_text(encoding="utf-8"))
        heads = c["num_attention_heads"]
        return Model(params=_count_params(str(Path(path))), layers=c["num_hidden_layers"], hidden=c["hidden_size"],
                     kv_heads=c.get("num_key_value_heads", heads), head_dim=c.get("head_dim") or c["hidden_size"] // heads,
                     vocab=c["vocab_size"])
    if build is not None:
        return built_facts(build)
    if path not in _facts():
        raise KeyError(f"{path}: not a local checkpoint and not in {FACTS.name} (add its config.json numbers there)")
    return Model(**_facts()[path])


@functools.lru_cache(maxsize=None)
def _count_params(path: str) -> float:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    return float(sum(p.numel() for p in model.parameters()))


def _accelerate(config: dict) -> dict:
    from ilr.config import REPO

    # the study's, not a run's (TrainingArgs): train.smk launches every training job with training:'s
    name = config["training"]["accelerate_config"]
    return yaml.safe_load((REPO / "config" / "accelerate" / f"{name}.yaml").read_text(encoding="utf-8"))


def kv_cache(m: Model, sequences: float, tokens: int) -> float:
    return sequences * tokens * m.layers * 2 * m.kv_heads * m.head_dim * 2


def inference_need(config: dict, models: list[Model], sizes: list[str], gpus: int, gpu_mem: float,
                   at_once: bool) -> tuple[float, str]:
    """Bytes per GPU of an inference job; `at_once`: the models are loaded together (multi-agent)."""
    from ilr.vllm_engine import tensor_parallel_size

    gen = config["generation"]
    if gen["engine"] == "vllm":
        share = gen["gpu_memory_utilization"] / (len(models) if at_once else 1)
        weights = max(2 * m.params / tensor_parallel_size(gen, s) for m, s in zip(models, sizes))
        tp = max(tensor_parallel_size(gen, s) for s in sizes)
        if tp > gpus:
            return float("inf"), f"vLLM tensor_parallel_size {tp} > the job's {gpus} GPU(s)"
        # vLLM takes its share; the weights must leave room in it for a KV cache (a quarter of the share)
        if weights > 0.75 * share * gpu_mem:
            return weights / 0.75 / share, f"vLLM: weights {weights / GB:.1f} GB > 3/4 of its share"
        return share * gpu_mem + OVERHEAD * gpu_mem, f"vLLM share {share:.2f}, weights {weights / GB:.1f} GB"
    ev = config["evaluation"]
    T = config["generation"]["max_model_len"]
    each = [2 * m.params / gpus + kv_cache(m, min(64, ev["samples"] * 64), T) / gpus for m in models]
    need = sum(each) if at_once else max(each)
    return need + OVERHEAD * gpu_mem, f"transformers, bf16 weights split over {gpus} GPU(s)"


def training_need(config: dict, run: str, models: list[Model], sizes: list[str], gpus: int,
                  gpu_mem: float) -> tuple[float, str, float]:
    """Bytes per GPU of a training job, how it runs, and the bytes of host memory it needs."""
    from ilr import config as cfg
    from ilr.trainers import MEMORY, trainer
    from ilr.vllm_engine import tensor_parallel_size

    args = cfg.training_args(config, run)
    method = cfg.method_config(config, run)
    spec = trainer(method["trainer"])   # ilr/trainers.py: its memory estimate, the extra models it loads
    if spec.memory not in ("trl", "trl_stages", "actor_critic"):   # a new kind needs its estimate here
        raise KeyError(f"trainer {spec.name!r}: no memory estimate for kind {spec.memory!r} ({MEMORY[spec.memory]})")
    acc = _accelerate(config) if gpus > 1 else {"distributed_type": "NO"}
    ds = acc.get("deepspeed_config", {}) if acc["distributed_type"] == "DEEPSPEED" else {}
    sharded = ds.get("zero_stage") == 3
    N = max(gpus, 1)
    offload = ds.get("offload_optimizer_device", "none") not in ("none", None)
    per_param = 4 if offload else 16
    ppo = spec.memory == "actor_critic"   # the critic: a second backbone; transformers generation
    trained = sum(m.params for m in models) * (2 if ppo else 1)
    state = per_param * trained / (N if sharded else 1)
    ref = 2 * sum(m.params for m in models) / (N if sharded else 1) if args.beta > 0 else 0.0
    stages = len(args.train_stages) if spec.memory == "trl_stages" else 1
    b = args.questions_per_step / N * args.num_generations * stages
    if ppo:
        b = min(b, args.micro_batch_size)
    from ilr.config.budget import run_tokens

    T, C = run_tokens(config, run), args.max_new_tokens
    per_token = 2 if args.gradient_checkpointing else 34
    activations = max(b * T * m.hidden * m.layers * per_token + b * C * m.vocab * 6 for m in models)
    if ppo:   # the critic's backbone runs beside the actor's
        activations += max(b * T * m.hidden * m.layers * per_token for m in models)
    if config["generation"]["engine"] == "vllm" and not ppo:
        generation = config["generation"]["training_gpu_memory_utilization"] * gpu_mem
        engine = "vLLM colocated"
        tp = max(tensor_parallel_size(config["generation"], s) for s in sizes)
        if tp > N:
            return float("inf"), f"vLLM tensor_parallel_size {tp} > the job's {N} process(es)", 0.0
    else:
        q = args.questions_per_step / N * args.num_generations
        generation = max(2 * m.params + kv_cache(m, q, T) for m in models)
        engine = "transformers"
    helper, loaded = 0.0, [m.params for m in models]
    for key in spec.extra_models:
        # a frozen extra model (AIPO's helper, ilr/train/aipo.py): bf16 weights, whole on every process, and during
        # the rollout the KV cache of one generate() over `<key>_batch_size` prompts beside the policy's generation
        extra = config["models"][method[key]]
        h = model_facts(extra["path"], extra.get("build"))
        helper += 2 * h.params
        generation += kv_cache(h, min(method[f"{key}_batch_size"], b), T)
        loaded.append(h.params)
    need = state + ref + helper + max(activations, generation) + OVERHEAD * gpu_mem
    # host memory: the offloaded optimizer (fp32 master weights + Adam, 12 bytes per trained parameter, all
    # processes together), and per process the largest checkpoint as it loads (bf16; one after the other) + 4 GB
    # (Python, torch, CUDA)
    host = (12 * trained if offload else 0) + N * (2 * max(loaded) + 4 * GB)
    how = (f"{'ZeRO-3' if sharded else 'DDP' if N > 1 else 'one process'}"
           f"{' + CPU optimizer' if offload else ''}, {engine}; state {state / GB:.1f} + ref {ref / GB:.1f} + "
           + (f"helper {helper / GB:.1f} + " if helper else "") +
           f"max(activations {activations / GB:.1f}, generation {generation / GB:.1f}) GB; host {host / GB:.0f} GB")
    return need, how, host


def jobs(config: dict) -> list[dict]:
    """Every job of the study that loads a model: rule, what it runs, its models, resources."""
    from ilr import config as cfg
    from ilr import study

    models = config["models"]
    out = []

    def add(rule, what, names, at_once=False, run=None):
        sizes = [models[n]["size"] for n in names]
        res = study.resources(config, rule, sizes)
        out.append({"rule": rule, "what": what, "names": names, "sizes": sizes, "at_once": at_once, "run": run,
                    "gpus": int(res.get("gpus", 0)), "gpu_mem": float(res.get("gpu_mem_mb", DEFAULT_GPU_MEM_MB)) * 1e6,
                    "mem": float(res.get("mem_mb", 0)) * 1e6})

    for n in models:
        add("ability", n, [n])
    trained_groups = {g for m, g, _ in study.train_jobs(config) if cfg.is_group_run(config, m)}
    if config["difficulty"]["method"] != "level":
        for g in sorted(trained_groups):
            add("difficulty", g, config["groups"][g])
    for run, group, seed in study.train_jobs(config):
        names = cfg.trained_names(config, run, group)
        rule = "train_group" if cfg.is_group_run(config, run) else "train_single"
        add(rule, f"{run}/{group}/seed{seed}", names, run=run)
    for n in models:
        add("evaluate", n, [n])
    for pair, bench in cfg.multi_agent_jobs(config):
        add("multi_agent", f"{cfg.pair_name(pair)}/{bench}", pair, at_once=True)
    return out


def plan(config: dict, source: str = "<config>") -> list[dict]:
    """jobs() with `need` (bytes per GPU), `how` and `fits` for the GPU jobs (CPU jobs: need None)."""
    rows = []
    for job in jobs(config):
        if job["gpus"] == 0:
            rows.append({**job, "need": None, "how": "CPU", "fits": True})
            continue
        try:
            facts = [model_facts(config["models"][n]["path"], config["models"][n].get("build")) for n in job["names"]]
        except KeyError as e:   # a hub model the plan has no numbers for: the user's to add
            from ilr.config import ConfigError

            raise ConfigError(source, "models", str(e).strip("'\"")) from None
        host = 0.0
        if job["rule"].startswith("train_"):
            need, how, host = training_need(config, job["run"], facts, job["sizes"], job["gpus"], job["gpu_mem"])
        else:
            need, how = inference_need(config, facts, job["sizes"], job["gpus"], job["gpu_mem"], job["at_once"])
        fits = need <= job["gpu_mem"] and host <= job["mem"]
        if host > job["mem"]:
            how += f" > mem_mb {job['mem'] / GB:.0f} GB"
        rows.append({**job, "need": need, "how": how, "fits": fits})
    return rows


def check(config: dict, source: str) -> None:
    """Fail (ConfigError) when a GPU job of the study cannot fit its GPUs."""
    from ilr.config import ConfigError

    bad = [r for r in plan(config, source) if not r["fits"]]
    if bad:
        lines = "; ".join(f"{r['rule']} {r['what']}: {r['need'] / GB:.0f} GB per GPU of {r['gpu_mem'] / GB:.0f} GB "
                          f"({r['how']})" for r in bad)
        raise ConfigError(source, "resources", f"{len(bad)} job(s) cannot fit their GPUs ({lines}); give them more "
                          "GPUs or GPU memory (gpu_mem_mb), or see `python -m ilr plan`")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)


def main(args: argparse.Namespace) -> int:
    from ilr import study

    config = study.load(args.config)
    rows = plan(config, args.config)
    print(f"{'job':<44} {'GPUs':>4} {'need/GPU':>9} {'GPU':>6}  fits  where")
    for r in rows:
        need = "-" if r["need"] is None else f"{r['need'] / GB:.1f} GB"
        gpu = "-" if r["gpus"] == 0 else f"{r['gpu_mem'] / GB:.0f} GB"
        print(f"{r['rule'] + ' ' + r['what']:<44} {r['gpus']:>4} {need:>9} {gpu:>6}  {'yes' if r['fits'] else 'NO':<4}  "
              f"{r['how']}")
    bad = sum(not r["fits"] for r in rows)
    print(f"{len(rows)} jobs, {bad} cannot fit")
    return 1 if bad else 0
