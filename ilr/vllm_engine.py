"""vLLM's offline engine for evaluation on GPU clusters (config `evaluation.engine: vllm`).

Imported only when that engine is chosen: vLLM is an optional extra (`pip install .[gpu]`) and does
not run on the CPU path. `engine_args` and `sampling_args` are plain functions so that the exact
arguments the cluster run will pass are tested on a machine without vLLM.
"""

from __future__ import annotations

from ilr.generation import Sample


def tensor_parallel_size(evaluation: dict, size: str | None = None) -> int:
    """config `evaluation.tensor_parallel_size`: one number, or one per model size (default 1)."""
    tp = evaluation.get("tensor_parallel_size", 1)
    if isinstance(tp, dict):
        tp = tp.get(size, 1)
    return int(tp)


def engine_args(model_path: str, evaluation: dict, seed: int, size: str | None = None) -> dict:
    return {
        "model": str(model_path),
        "tensor_parallel_size": tensor_parallel_size(evaluation, size),
        "gpu_memory_utilization": float(evaluation.get("gpu_memory_utilization", 0.9)),
        "max_model_len": int(evaluation.get("max_model_len", 4096)),
        "dtype": "bfloat16",
        "seed": seed,
        "enforce_eager": False,
    }


def sampling_args(n: int, temperature: float, max_new_tokens: int, top_p: float = 1.0) -> dict:
    if temperature == 0.0 and n != 1:
        raise ValueError("greedy decoding gives one completion per prompt: use n=1 or temperature > 0")
    return {"n": n, "temperature": temperature, "top_p": top_p if temperature > 0 else 1.0,
            "max_tokens": max_new_tokens}


class VLLMEngine:
    """Same `sample` interface as ilr.generation.sample, on a vllm.LLM."""

    def __init__(self, model_path: str, evaluation: dict, seed: int, size: str | None = None):
        from vllm import LLM  # noqa: PLC0415 - optional GPU dependency

        self.llm = LLM(**engine_args(model_path, evaluation, seed, size))
        self.tokenizer = self.llm.get_tokenizer()

    def sample(self, prompts: list[str], n: int = 1, max_new_tokens: int = 64, temperature: float = 0.0,
               top_p: float = 1.0, **_) -> list[list[Sample]]:
        from vllm import SamplingParams

        params = SamplingParams(**sampling_args(n, temperature, max_new_tokens, top_p))
        outputs = self.llm.generate(prompts, params)
        return [[Sample(list(o.prompt_token_ids), list(c.token_ids), c.text, c.finish_reason == "length")
                 for c in o.outputs] for o in outputs]
