"""Text generation with transformers: batched, KV-cached, left-padded; the CPU and test path.

On a GPU cluster, evaluation may use vLLM instead (`ilr.vllm_engine`, imported only there); the
training loop of ILR always generates through this module so that every model of a group is sampled
with its current weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Sample:
    prompt_ids: list[int]
    completion_ids: list[int]   # ends with EOS when the model stopped by itself
    text: str                   # the decoded completion, special tokens removed
    truncated: bool             # hit max_new_tokens without EOS


def load_model(path: str | Path, dtype: torch.dtype | None = None):
    """A causal LM and its tokenizer from a local directory or a hub id (never downloads in tests)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or "auto")
    return model, tokenizer


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], n: int = 1, max_new_tokens: int = 64,
           temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 64,
           progress: bool = False) -> list[list[Sample]]:
    """n completions for each prompt (greedy when temperature == 0, then n must be 1)."""
    if temperature == 0.0 and n != 1:
        raise ValueError("greedy decoding gives one completion per prompt: use n=1 or temperature > 0")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    flat = [p for p in prompts for _ in range(n)]
    out: list[Sample] = []
    starts = range(0, len(flat), batch_size)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="generate", unit="batch", leave=False)
    was_training = model.training
    model.eval()
    for start in starts:
        chunk = flat[start:start + batch_size]
        enc = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in chunk]
        width = max(map(len, enc))
        input_ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc], device=model.device)
        attention = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=model.device)
        kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(do_sample=False)
        gen = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)[:, width:].tolist()
        for e, ids in zip(enc, gen):
            if eos in ids:
                ids = ids[: ids.index(eos) + 1]
                truncated = False
            else:
                ids = [t for t in ids if t != pad] if pad != eos else ids
                truncated = True
            out.append(Sample(e, ids, tokenizer.decode(ids, skip_special_tokens=True), truncated))
    if was_training:
        model.train()
    return [out[i * n:(i + 1) * n] for i in range(len(prompts))]


def complete(model, tokenizer, prompts: list[str], **kwargs) -> list[str]:
    """One completion's text per prompt."""
    return [s[0].text for s in sample(model, tokenizer, prompts, n=1, **kwargs)]
