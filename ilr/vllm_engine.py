"""vLLM engines for GPU clusters (config `generation.engine: vllm`; optional extra `pip install .[gpu]`).

- `VLLMEngine`: vLLM's offline `LLM` for the inference stages (ability, difficulty, evaluate, multi-agent).
- `TrainerVLLMEngine`: the vLLM engine that TRL colocates with a GRPOTrainer (`GRPOConfig.use_vllm`,
  `vllm_mode="colocate"`), weights synced by TRL at every step. GRPO samples through it inside TRL;
  the ILR coordinator samples each member through its trainer's engine, so both methods sample alike.

Both take token-id prompts (`ilr.prompts.encode_prompt`): vLLM adds nothing to them, so a Llama-3 prompt
keeps its one `<|begin_of_text|>` (given text, vLLM's tokenizer would add a second). Generation stops
on every EOS id of the model's generation config (`stop_token_ids`). vLLM is imported only inside these
classes: `engine_args`, `sampling_args` and `trl_vllm_args` are plain functions, so that the exact
arguments a cluster run passes are tested on a machine without vLLM (tests/test_generation.py).
"""

from __future__ import annotations

from ilr.generation import Engine, Sample, check_sampling, cut_at_eos


def tensor_parallel_size(generation: dict, size: str | None = None) -> int:
    """config `generation.tensor_parallel_size`: one number, or one per model size (default 1)."""
    tp = generation.get("tensor_parallel_size", 1)
    if isinstance(tp, dict):
        tp = tp.get(size, 1)
    return int(tp)


def engine_args(model_path: str, generation: dict, seed: int, size: str | None = None) -> dict:
    return {
        "model": str(model_path),
        "tensor_parallel_size": tensor_parallel_size(generation, size),
        "gpu_memory_utilization": float(generation["gpu_memory_utilization"]),
        "max_model_len": int(generation["max_model_len"]),
        "dtype": "bfloat16",
        "seed": seed,
        # sampling is ours (sampling_args), not the model's generation_config.json (Qwen2.5's says
        # repetition_penalty 1.05, top_k 20): its EOS ids come in as stop_token_ids instead
        "generation_config": "vllm",
        "enforce_eager": False,
    }


def sampling_args(n: int, temperature: float, max_new_tokens: int, stop_token_ids: list[int],
                  top_p: float = 1.0) -> dict:
    check_sampling(n, temperature)
    return {"n": n, "temperature": temperature, "top_p": top_p if temperature > 0 else 1.0, "top_k": 0,
            "repetition_penalty": 1.0, "max_tokens": max_new_tokens, "stop_token_ids": list(stop_token_ids),
            "skip_special_tokens": True}


def trl_vllm_args(generation: dict, size: str | None = None) -> dict:
    """GRPOConfig's vLLM keys for training rollouts: vLLM colocated with the training processes.

    (choice) TRL's importance-sampling correction for vLLM's sampling mismatch is off for every trainer:
    ILR's coordinator and AIPO sample through their own rollout_func and hand TRL no sampling
    log-probabilities (which the correction needs), and the GRPO row must train under the same loss as
    the ILR rows it is compared with (METHOD.md, "One estimator per comparison")."""
    if generation["engine"] != "vllm":
        return {"use_vllm": False}
    return {"use_vllm": True, "vllm_mode": "colocate", "vllm_importance_sampling_correction": False,
            "vllm_gpu_memory_utilization": float(generation["training_gpu_memory_utilization"]),
            "vllm_tensor_parallel_size": tensor_parallel_size(generation, size),
            "vllm_max_model_length": int(generation["max_model_len"]),
            "vllm_enable_sleep_mode": True}   # weights and KV cache leave the GPU during the optimizer step


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

    def __init__(self, model_path: str, generation: dict, seed: int, size: str | None = None):
        from vllm import LLM  # noqa: PLC0415 - optional GPU dependency

        self.llm = LLM(**engine_args(model_path, generation, seed, size))
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
