"""Test helpers: model factories, study configs and the `python -m ilr` runner, as plain functions.

tests/conftest.py wraps them as fixtures (`random_models`, `study`, `warm_models`, `warm_study`, ...) and
re-exports the names tests import from it (`from conftest import REPO, run_ilr, ...`). Import torch-using
helpers only under pytest: conftest pins the tiny study's numerics (ilr/numerics.py) before torch loads.
"""

from __future__ import annotations

import copy
import functools
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def load_tiny_config() -> dict:
    """The tiny default (config/config.yaml), freshly parsed."""
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def make_random_model(path: Path, arch: str = "llama", hidden: int = 32, layers: int = 1, seed: int = 0) -> Path:
    """A real transformers causal LM, random init, with the tiny char tokenizer, saved like a hub model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from ilr.tiny.tokenizer import build_tokenizer

    tok = build_tokenizer()
    cls, cfg = (LlamaForCausalLM, LlamaConfig) if arch == "llama" else (Qwen2ForCausalLM, Qwen2Config)
    torch.manual_seed(seed)
    model = cls(cfg(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                    num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                    max_position_embeddings=512, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                    bos_token_id=tok.bos_token_id, tie_word_embeddings=False))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_random_models(root: Path) -> dict[str, Path]:
    """The three study models as random-init ones under `root` (llama, qwen2, a wider qwen2)."""
    return {"tiny-llama": make_random_model(root / "tiny-llama", "llama", seed=1),
            "tiny-qwen-s": make_random_model(root / "tiny-qwen-s", "qwen2", seed=2),
            "tiny-qwen-l": make_random_model(root / "tiny-qwen-l", "qwen2", hidden=48, seed=3)}


def make_study(tmp_path: Path, base: dict, models: dict[str, Path]) -> tuple[dict, Path]:
    """A small study config in tmp whose models are the random-init ones; returns (config, path)."""
    cfg = copy.deepcopy(base)
    cfg["results"] = str(tmp_path / "results")
    for name, path in models.items():
        cfg["models"][name] = {"path": str(path), "size": cfg["models"][name].get("size", "small")}
    cfg["training"].update(steps=4, questions_per_step=4, num_generations=4, max_new_tokens=12, save_steps=2)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return cfg, path


def run_ilr(*args: str, **kwargs):
    """`python -m ilr ...` in a subprocess, from the repository root."""
    return subprocess.run([sys.executable, "-m", "ilr", *args], cwd=REPO, capture_output=True, text=True, **kwargs)


def build_warm_models(root: Path, base: dict) -> dict[str, Path]:
    """Two tiny models really built by the build-model stage under `root`, with a short warm-up (they answer
    some one-step questions right, so rewards vary and training moves the weights)."""
    from ilr.tiny.build import build_model

    cfg = copy.deepcopy(base)
    out = {}
    for name in ("tiny-llama", "tiny-qwen-s"):
        cfg["models"][name]["build"]["warmup_steps"] = 600
        build_model(cfg, name, root / name, threads=1, log=lambda *a, **k: None)
        out[name] = root / name
    return out


@functools.lru_cache(maxsize=1)
def _mixed_questions(paths: tuple[str, ...], n: int) -> list[dict]:
    """`n` one-step questions that each warm model answers right in some of 8 samples at T = 1 and wrong in
    others: the premise of the tests that need rewards to vary, made true by choosing the questions (with
    the numerics conftest pins, the same choice on every machine) instead of hoping the models oblige."""
    import torch

    from ilr.generation import TransformersEngine, load_model
    from ilr.grading import grade
    from ilr.prompts import load as load_prompts
    from ilr.tiny.task import generate

    candidates = generate("tiny_arith", 600, 7, min_steps=1, max_steps=1, max_operand=3, families=["+-", "*"])
    prompts = load_prompts("tiny")
    mixed = set(r["id"] for r in candidates)
    for k, path in enumerate(paths):
        engine = TransformersEngine(*load_model(path, on="cpu"))
        torch.manual_seed(k)
        outs = engine.sample_texts([prompts.solve(r) for r in candidates], n=8, max_new_tokens=24, temperature=1.0)
        right = {r["id"]: sum(grade(r, s.text).correct for s in o) for r, o in zip(candidates, outs)}
        mixed &= {q for q, c in right.items() if 0 < c < 8}
    chosen = [r for r in candidates if r["id"] in mixed][:n]
    assert len(chosen) == n, f"only {len(chosen)} of 600 questions get mixed answers from the warm models"
    return chosen


def mixed_questions(warm_models: dict, n: int = 32) -> list[dict]:
    """`n` questions the warm models answer right in some samples and wrong in others (a fresh copy)."""
    return copy.deepcopy(_mixed_questions(tuple(str(p) for p in warm_models.values()), n))


def two_model_config(tmp_path: Path, base: dict, models: dict[str, Path]) -> dict:
    """The tiny config over two models (tiny-llama, tiny-qwen-s at `models`' paths): one group, one pair."""
    cfg = copy.deepcopy(base)
    cfg["results"] = str(tmp_path / "results")
    for name, path in models.items():
        cfg["models"][name] = {"path": str(path), "size": "small"}
    cfg["models"].pop("tiny-qwen-l")
    for m in cfg["methods"].values():
        if m["trainer"] == "aipo":      # its helper must be a model of the study
            m["helper"] = "tiny-qwen-s"
    cfg["groups"] = {"group1": ["tiny-llama", "tiny-qwen-s"]}
    cfg["multi_agent"]["pairs"] = [["tiny-llama", "tiny-qwen-s"]]
    for m in cfg["methods"].values():
        if m["trainer"] == "ilr":
            m["groups"] = ["group1"]
    for m in cfg["methods"].values():   # AIPO's helper: the stronger of the two warm models
        if "helper" in m:
            m["helper"] = "tiny-qwen-s"
    cfg["training"].update(steps=4, questions_per_step=4, num_generations=4, max_new_tokens=24, save_steps=2)
    cfg["tables"]["ablation"]["rows"] = [["tiny-llama", "group1"], ["tiny-qwen-s", "group1"]]
    return cfg


def make_warm_study(tmp_path: Path, base: dict, models: dict[str, Path]) -> tuple[dict, Path, Path]:
    """A study config in tmp over the warm models, with easy one-step training questions; returns
    (config, path, tmp_path), tmp_path holding train.jsonl, the two ability files and difficulty.jsonl."""
    from ilr.io import write_json, write_jsonl

    cfg = two_model_config(tmp_path, base, models)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    records = mixed_questions(models)
    write_jsonl(tmp_path / "train.jsonl", records)
    # gamma 0.3 and 0.6; a third of the questions very hard (D = 1: P 0.23 and 0.34, both cooperate), a third
    # very easy (D = 0: both compete), a third between (D = 0.5: P 0.42 and 0.54, per_model mixes them; mean 0.48)
    for name, g in (("tiny-llama", 0.3), ("tiny-qwen-s", 0.6)):
        write_json(tmp_path / f"{name}.json", {"model": name, "gamma": g})
    write_jsonl(tmp_path / "difficulty.jsonl",
                [{"id": r["id"], "difficulty": (1.0, 0.0, 0.5)[i % 3], "ratings": {}} for i, r in enumerate(records)])
    return cfg, path, tmp_path


def train_args(study_dir: Path, config_path: Path, method: str, out: Path) -> list[str]:
    return ["train", "--config", str(config_path), "--method", method, "--group", "group1", "--seed", "0",
            "--train", str(study_dir / "train.jsonl"),
            "--ability", str(study_dir / "tiny-llama.json"), str(study_dir / "tiny-qwen-s.json"),
            "--difficulty", str(study_dir / "difficulty.jsonl"), "--out-dir", str(out)]


def make_llama3_style_model(path: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A real tiny Llama with a Llama-3-style tokenizer: its post-processor adds <|begin_of_text|> to every
    encode, its chat template writes <|begin_of_text|> too, its EOS is <|eot_id|> and the model's generation
    config ends on <|eot_id|>, <|end_of_text|> and the pad token (as Qwen2.5's ends on its pad token): the
    tokenizer the paper's Llama-3.1 has, in miniature."""
    import torch
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from ilr.tiny.tokenizer import CHARS

    specials = ["<|pad|>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                "<|end_header_id|>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + CHARS)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    bos = ("<|begin_of_text|>", vocab["<|begin_of_text|>"])
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[bos])
    template = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                "{{ m['content'] }}<|eot_id|>{% endfor %}"
                "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|pad|>", unk_token="<unk>", padding_side="left",
                                   chat_template=template)
    fast.add_special_tokens({"extra_special_tokens": ["<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"]})
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512, pad_token_id=vocab["<|pad|>"],
        bos_token_id=vocab["<|begin_of_text|>"], eos_token_id=vocab["<|eot_id|>"]))
    model.generation_config.eos_token_id = [vocab["<|eot_id|>"], vocab["<|end_of_text|>"], vocab["<|pad|>"]]
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path
