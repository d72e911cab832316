"""Prompts are tokenized in one place with exactly one BOS, generation stops on every EOS id of the model's
generation config, and the ids trained on are the ids sampled (ilr/prompts.py, ilr/generation.py)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_llama3_style_model, make_random_model
from ilr.generation import TransformersEngine, eos_token_ids, load_model
from ilr.prompts import encode_prompt, load as load_prompts, trl_prompt

TEXT = load_prompts("paper").solve({"question": "What is 2+3?", "kind": "math"})


@pytest.fixture(scope="module")
def llama3(tmp_path_factory):
    return make_llama3_style_model(tmp_path_factory.mktemp("llama3") / "model")


def test_one_bos_with_a_chat_template(llama3):
    model, tok = load_model(llama3, on="cpu")
    ids = encode_prompt(tok, TEXT)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    # the trap this avoids: the rendered chat text tokenized with special tokens carries two
    text = tok.apply_chat_template([{"role": "user", "content": TEXT}], tokenize=False, add_generation_prompt=True)
    assert tok(text)["input_ids"][:2] == [tok.bos_token_id] * 2


def test_one_bos_without_a_chat_template(llama3, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(llama3)
    tok.chat_template = None             # a base model: the tokenizer's post-processor adds the BOS
    ids = encode_prompt(tok, TEXT)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    tiny = AutoTokenizer.from_pretrained(make_random_model(tmp_path / "tiny"))   # no template, no BOS added
    assert tiny.bos_token_id not in encode_prompt(tiny, TEXT)


def test_trl_tokenizes_our_prompt_into_our_ids(llama3, tmp_path):
    """GRPO hands TRL `trl_prompt`; TRL's own tokenization of it gives exactly `encode_prompt`'s ids."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    for path in (llama3, make_random_model(tmp_path / "tiny")):
        model, tok = load_model(path, on="cpu")
        trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=lambda completions, **_: [0.0] * len(completions),
                              train_dataset=Dataset.from_list([{"prompt": trl_prompt(tok, TEXT)}] * 2),
                              args=GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2,
                                              num_generations=2, max_steps=1, use_cpu=True, report_to=[]))
        ids, _, _ = trainer._tokenize_prompts([trl_prompt(tok, TEXT)])
        assert list(ids[0]) == encode_prompt(tok, TEXT)


def test_engine_generates_from_one_bos_and_keeps_sampled_ids(llama3):
    model, tok = load_model(llama3, on="cpu")
    engine = TransformersEngine(model, tok)
    (s,), = engine.sample([encode_prompt(tok, TEXT)], n=1, max_new_tokens=6, temperature=0.0)
    assert s.prompt_ids.count(tok.bos_token_id) == 1
    assert eos_token_ids(tok, model.generation_config) == [tok.eos_token_id, tok.convert_tokens_to_ids("<|end_of_text|>"),
                                                          tok.pad_token_id]


def test_generation_stops_on_every_eos_of_the_generation_config(llama3, tmp_path):
    """A model whose every logit is equal picks token 0 greedily: here the pad token, which its generation
    config lists as an EOS (as Qwen2.5's does). Generation must stop there, with that id kept: stopping only
    on the tokenizer's EOS and stripping pad ids afterwards trains on other ids than were sampled."""
    model, tok = load_model(llama3, on="cpu")
    assert tok.pad_token_id == 0
    with torch.no_grad():
        model.model.norm.weight.zero_()          # every hidden state 0: every logit 0
    engine = TransformersEngine(model, tok)
    (s,), = engine.sample([encode_prompt(tok, TEXT)], n=1, max_new_tokens=8, temperature=0.0)
    assert s.completion_ids == [0] and not s.truncated and s.text == ""
    model.generation_config.eos_token_id = tok.eos_token_id     # without it: 8 sampled pads, kept as sampled
    (s,), = TransformersEngine(model, tok).sample([encode_prompt(tok, TEXT)], n=1, max_new_tokens=8)
    assert s.completion_ids == [0] * 8 and s.truncated


def test_model_generation_defaults_do_not_leak(llama3):
    """The checkpoint's generation_config.json (Qwen2.5's: repetition_penalty 1.05, top_k 20) is not the study's
    sampling: greedy decoding is the same with or without such defaults in the model."""
    model, tok = load_model(llama3, on="cpu")
    prompt = [encode_prompt(tok, TEXT)]
    plain = TransformersEngine(model, tok).sample(prompt, max_new_tokens=12)[0][0].completion_ids
    model.generation_config.repetition_penalty = 5.0
    model.generation_config.do_sample = True
    model.generation_config.top_k = 1
    assert TransformersEngine(model, tok).sample(prompt, max_new_tokens=12)[0][0].completion_ids == plain


class RecordingLLM:
    """Stands in for vllm.LLM (not installed here): records what the engine asks of it."""

    def __init__(self, completion):
        self.calls, self.completion = [], completion

    def generate(self, prompts, params, use_tqdm=False):
        from types import SimpleNamespace

        self.calls.append((prompts, params))
        return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=self.completion)]) for _ in prompts]


def test_vllm_engine_sends_token_ids_and_every_eos(llama3, monkeypatch):
    """Up to the boundary: vLLM gets the prompt as token ids (so it adds no second BOS) and the model's every
    EOS id as stop tokens; the ids come back cut after the first EOS."""
    import sys
    import types

    from ilr import vllm_engine

    fake = types.ModuleType("vllm")
    fake.SamplingParams = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", fake)
    model, tok = load_model(llama3, on="cpu")
    engine = object.__new__(vllm_engine.VLLMEngine)
    engine.tokenizer, engine.eos = tok, vllm_engine.model_eos_ids(str(llama3), tok)
    eot = tok.eos_token_id
    engine.llm = RecordingLLM([40, 41, eot, 0, 0])
    ids = encode_prompt(tok, TEXT)
    (s,), = engine.sample([ids], n=1, max_new_tokens=5, temperature=0.0)
    (prompts, params), = engine.llm.calls
    assert prompts == [{"prompt_token_ids": ids}] and ids.count(tok.bos_token_id) == 1
    assert params["stop_token_ids"] == eos_token_ids(tok, model.generation_config)
    assert s.completion_ids == [40, 41, eot] and not s.truncated
    args = vllm_engine.engine_args("/ckpt", {"gpu_memory_utilization": 0.9, "max_model_len": 4096}, 0)
    assert args["generation_config"] == "vllm"   # sampling is ours, not the checkpoint's defaults
    json.dumps(args)
