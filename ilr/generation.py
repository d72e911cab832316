"""Generation: one interface for every stage that samples from a model.

An engine takes token-id prompts (`ilr.prompts.encode_prompt`, the one place prompts are tokenized)
and returns, per prompt, `n` `Sample`s whose `completion_ids` are exactly the ids that were sampled,
cut after the first end-of-sequence id. A model ends on any EOS id of its generation config (Qwen2.5
ends on `<|im_end|>` and `<|endoftext|>`; Llama-3.1 on `<|eot_id|>`, `<|eom_id|>` and
`<|end_of_text|>`), not only on the tokenizer's `eos_token`.

Engines (config `generation.engine`):
- `TransformersEngine`: transformers' `generate` (batched, KV cache, left padding) on the model's device;
  the CPU path, and the training rollouts of the ILR family under DeepSpeed (parameters gathered for
  generation by `gather`, TRL's `unwrap_model_for_generation`).
- `ilr.vllm_engine.VLLMEngine`: vLLM's offline engine for the inference stages (GPUs; vLLM's CPU build in tests);
  `ilr.vllm_engine.TrainerVLLMEngine`: the vLLM engine TRL colocates with a GRPOTrainer
  (`use_vllm`), which the ILR coordinator samples through so that GRPO and ILR sample alike.
vLLM is an optional extra (`pip install .[gpu]`), imported only by the code paths that use it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Sample:
    prompt_ids: list[int]
    completion_ids: list[int]   # as sampled; ends with an EOS id when the model stopped by itself
    text: str                   # the decoded completion, special tokens removed
    truncated: bool             # hit max_new_tokens without an EOS


def eos_token_ids(tokenizer, generation_config=None) -> list[int]:
    """Every id that ends a completion: the tokenizer's EOS and those of the model's generation config."""
    ids: list[int] = []
    extra = getattr(generation_config, "eos_token_id", None)
    for i in [tokenizer.eos_token_id] + (list(extra) if isinstance(extra, (list, tuple)) else [extra]):
        if i is not None and i not in ids:
            ids.append(int(i))
    return ids


def cut_at_eos(ids: list[int], eos: list[int]) -> tuple[list[int], bool]:
    """The ids up to and including the first EOS, and whether there was none (truncated)."""
    for k, t in enumerate(ids):
        if t in eos:
            return ids[:k + 1], False
    return ids, True


def device() -> torch.device:
    """Where an inference stage puts its model: the job's GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str | Path, dtype: torch.dtype | str | None = None, on: torch.device | str | None = None):
    """A causal LM and its tokenizer from a local directory or a hub id (tests never download).

    Inference stages place it on the GPU when there is one (`on` defaults to `device()`); training
    passes its own dtype and lets the trainer place the model.
    """
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or "auto")
    model.to(on or device())
    return model, tokenizer


class Engine:
    """What every engine offers; `sample` is engine-specific."""

    tokenizer = None

    def sample(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int = 64, temperature: float = 0.0,
               top_p: float = 1.0, progress: bool = False) -> list[list[Sample]]:
        raise NotImplementedError

    def sample_texts(self, texts: list[str], **kwargs) -> list[list[Sample]]:
        from ilr.prompts import encode_prompt

        return self.sample([encode_prompt(self.tokenizer, t) for t in texts], **kwargs)

    def complete(self, texts: list[str], **kwargs) -> list[str]:
        """One greedy completion's text per prompt."""
        return [s[0].text for s in self.sample_texts(texts, n=1, temperature=0.0, **kwargs)]


def check_sampling(n: int, temperature: float) -> None:
    if temperature == 0.0 and n != 1:
        raise ValueError("greedy decoding gives one completion per prompt: use n=1 or temperature > 0")


class TransformersEngine(Engine):
    """transformers' generate. `gather()` is a context manager yielding the module to generate with (default:
    the model itself; under DeepSpeed ZeRO-3, TRL's unwrap_model_for_generation with gathered parameters)."""

    def __init__(self, model, tokenizer, gather=None, batch_size: int = 64):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.gather = gather or (lambda: contextlib.nullcontext(model))
        self.eos = eos_token_ids(tokenizer, getattr(model, "generation_config", None))
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos[0]

    def generation_config(self, max_new_tokens: int, temperature: float, top_p: float):
        """Every sampling setting spelt out: greedy at temperature 0, else plain sampling (no top-k)."""
        from transformers import GenerationConfig

        sampled = temperature > 0
        return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=sampled,
                                temperature=temperature if sampled else 1.0, top_p=top_p if sampled else 1.0,
                                top_k=0 if sampled else 50, repetition_penalty=1.0, pad_token_id=self.pad,
                                eos_token_id=self.eos, bos_token_id=self.tokenizer.bos_token_id)

    @torch.no_grad()
    def sample(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int = 64, temperature: float = 0.0,
               top_p: float = 1.0, progress: bool = False) -> list[list[Sample]]:
        check_sampling(n, temperature)
        flat = [list(p) for p in prompts for _ in range(n)]
        out: list[Sample] = []
        starts = range(0, len(flat), self.batch_size)
        if progress:
            from tqdm import tqdm
            starts = tqdm(starts, desc="generate", unit="batch", leave=False)
        config = self.generation_config(max_new_tokens, temperature, top_p)
        with self.gather() as model:
            was_training = model.training
            model.eval()
            for start in starts:
                chunk = flat[start:start + self.batch_size]
                width = max(map(len, chunk))
                dev = next(model.parameters()).device
                input_ids = torch.tensor([[self.pad] * (width - len(e)) + e for e in chunk], device=dev)
                attention = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in chunk], device=dev)
                gen = _generate(model, input_ids, attention, config)[:, width:].tolist()
                for e, ids in zip(chunk, gen):
                    # after its first EOS a finished row holds only padding: cutting there keeps exactly the
                    # sampled ids (a pad id that is also an EOS id, as Qwen's, is never mistaken for text)
                    ids, truncated = cut_at_eos(ids, self.eos)
                    out.append(Sample(e, ids, self.tokenizer.decode(ids, skip_special_tokens=True), truncated))
            if was_training:
                model.train()
        return [out[i * n:(i + 1) * n] for i in range(len(prompts))]


def _generate(model, input_ids, attention, config):
    # The model's own generation config (Qwen2.5's says top_k 20, repetition_penalty 1.05) must not leak
    # into the study's sampling: transformers fills every field a passed config leaves unset from it, so
    # the model carries ours while it generates.
    saved = model.generation_config
    model.generation_config = config
    try:
        return model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config)
    finally:
        model.generation_config = saved


def open_engine(config: dict, model_path: str | Path, size: str | None = None, seed: int = 0,
                source: str = "config") -> Engine:
    """The engine of an inference stage (ability, difficulty, evaluate, multi-agent): config `generation`.
    `source`: the config file, which vLLM's config errors name."""
    gen = config["generation"]
    if gen["engine"] == "vllm":
        from ilr.vllm_engine import VLLMEngine

        return VLLMEngine(model_path, config, seed, size, source)
    model, tokenizer = load_model(model_path)
    return TransformersEngine(model, tokenizer)
