"""`python -m ilr build-model --config CFG --model NAME --out DIR`: build one tiny base model.

models[NAME].build = {arch: llama|qwen2, hidden, layers, heads, warmup_steps, seed} (optional:
lr (1e-2), batch_size (16), intermediate (2 * hidden), context (512), intermediate, context) gives a LlamaForCausalLM / Qwen2ForCausalLM with random
init and the character tokenizer (ilr/tiny/tokenizer.py), then a short supervised warm-up on
generated data, on CPU, one thread. The warm-up teaches every format the study asks of a model,
rendered with the study's own prompt templates (config `prompts`):

  solo solve (math, code, choice)   prompt = PromptSet.solve(record), target = metadata.solution
  analysis (cooperation)            target = "<recomputed work> right: me,P1" (who agrees, or none)
  analysis (competition)            target = "<recomputed work> wrong: P1"     (who disagrees, or none)
  fusion (cooperation, competition) target = the correct solution
  debate_revise                     target = the correct solution
Peers and "own" answers are synthetic: the correct solution, or with probability 1/2 a copy with
one step's result off by 1..3 and the rest of the chain carried on from it (or, rarely, a truncated
one); the analysis shown to fusion is the correct one, or one computed from a wrong recomputation.
So an interacting model gains by reading a correct peer: fusion's target is right whatever the
inputs say. Loss is on target tokens only; every target ends with <eos>.

The warm-up data come from data.train.params (the training distribution) with a seed of their own
(`build.seed` + 1000003), independent of the study's data seeds.

Known issue: with the mixed warm-up, qwen2 builds reached a training loss as low as llama's but a
much worse greedy accuracy (0.02-0.18 vs 0.4-0.5 at the same size and steps; seen on the saved
models, whose solo-math loss was 1.0-1.5; trained on solo math alone, qwen2 is fine). Not yet explained, so the tiny config
builds all three models as llama; arch: qwen2 still works.

Writes DIR atomically (built in a temporary directory beside it, renamed at the end): the model
and tokenizer (save_pretrained) and build.json (model, build config, final loss, loss curve, time).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import time
from pathlib import Path

from ilr.tiny.task import generate

DATA_SEED_OFFSET = 1000003
FORMATS = {  # format -> share of warm-up batches (interaction batches are half as many, longer, rows)
    "solve_math": 0.80, "solve_code": 0.04, "solve_choice": 0.04,
    "analysis_cooperation": 0.02, "analysis_competition": 0.02,
    "fusion_cooperation": 0.03, "fusion_competition": 0.03, "debate_revise": 0.02,
}
IDEA3_KINDS = {"math": 0.7, "code": 0.15, "choice": 0.15}   # question kinds seen in interaction formats
KIND_SOURCE = {"math": "tiny_arith", "code": "tiny_code", "choice": "tiny_choice"}
STEP = re.compile(r"(-?\d+)([-+*])(\d+)=(-?\d+)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="study config YAML")
    parser.add_argument("--model", required=True, help="a models: entry with a build: key")
    parser.add_argument("--out", required=True, help="output directory (save_pretrained)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def load_config(path: str) -> dict:
    try:
        from ilr.config import load
    except ImportError:  # ilr.config not there yet (built in parallel): the raw YAML
        import yaml
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    return load(path)


# ----------------------------------------------------------------------------- synthetic peers

def _work(solution: str) -> str:
    """The comma-separated steps of a tiny solution (math, choice or code)."""
    return ",".join(f"{a}{op}{b}={c}" for a, op, b, c in STEP.findall(solution))


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _corrupt_steps(solution: str, rng: random.Random) -> tuple[list[tuple], int]:
    """The steps with one result off by 1..3 and the chain carried on: (steps, final value)."""
    steps = [(int(a), op, int(b), int(c)) for a, op, b, c in STEP.findall(solution)]
    k = rng.randrange(len(steps))
    out = steps[:k]
    a, op, b, c = steps[k]
    c = c + rng.choice([-3, -2, -1, 1, 2, 3])
    out.append((a, op, b, c))
    for a, op, b, _ in steps[k + 1:]:
        a = c
        c = _apply(a, op, b)
        out.append((a, op, b, c))
    return out, c


def _steps_text(steps) -> str:
    return ",".join(f"{a}{op}{b}={c}" for a, op, b, c in steps)


def answer_of(record: dict, completion: str) -> str | None:
    """The final answer a tiny completion states (value, letter, or the code's constant)."""
    if record["kind"] == "code":
        m = re.search(r"return x([+-]\d+)\s*$", completion)
        return str(int(m.group(1))) if m else None
    m = re.findall(r"\\boxed\{([^}]*)\}", completion)
    return m[-1] if m else None


def value_answer(record: dict, value: int) -> str | None:
    """The answer a completion whose work ends in `value` states (the option letter for choice)."""
    if record["kind"] != "choice":
        return str(value)
    hit = [L for L, o in zip("ABCD", record["options"]) if o == str(value)]
    return hit[0] if hit else None


def gold_of(record: dict) -> str:
    return answer_of(record, record["metadata"]["solution"])


def noisy(record: dict, rng: random.Random, p_wrong: float = 0.5) -> str:
    """A synthetic peer (or own) answer: the solution, or a plausible wrong one."""
    sol = record["metadata"]["solution"]
    if rng.random() >= p_wrong:
        return sol
    if rng.random() < 0.1:  # a truncated answer, as a sampled completion sometimes is
        return sol[:rng.randrange(1, max(2, len(sol) - 1))]
    steps, value = _corrupt_steps(sol, rng)
    work = _steps_text(steps)
    if record["kind"] == "math":
        return f"{work} \\boxed{{{value}}}"
    if record["kind"] == "choice":
        gold = record["answer"]
        letters = "ABCD"[:len(record["options"])]
        hit = [letters[i] for i, o in enumerate(record["options"]) if o == str(value)]
        letter = hit[0] if hit and hit[0] != gold else rng.choice([x for x in letters if x != gold])
        return f"{work} \\boxed{{{letter}}}"
    return f"def f(x):\n # {work}\n return " + (f"x+{value}" if value >= 0 else f"x-{-value}")


def analysis_target(mode: str, record: dict, own: str, peers: list[str], recomputed: str | None = None,
                    recomputed_answer: str | None = None) -> str:
    """'<work> right: me,P1' (cooperation) or '<work> wrong: P1' (competition), from a recomputation."""
    work = _work(record["metadata"]["solution"]) if recomputed is None else recomputed
    ref = gold_of(record) if recomputed_answer is None else recomputed_answer
    names = ["me"] + [f"P{k}" for k in range(1, len(peers) + 1)]
    answers = [answer_of(record, t) for t in [own] + peers]
    if mode == "cooperation":
        picked = [n for n, a in zip(names, answers) if a == ref]
        return f"{work} right: {','.join(picked) or 'none'}"
    picked = [n for n, a in zip(names, answers) if a != ref]
    return f"{work} wrong: {','.join(picked) or 'none'}"


def example(fmt: str, prompts, pools: dict, rng: random.Random) -> tuple[str, str]:
    """One (prompt, target) warm-up pair of a format."""
    if fmt.startswith("solve_"):
        rec = rng.choice(pools[fmt.removeprefix("solve_")])
        return prompts.solve(rec), rec["metadata"]["solution"]
    kind = rng.choices(list(IDEA3_KINDS), weights=list(IDEA3_KINDS.values()))[0]
    rec = rng.choice(pools[kind])
    n_peers = 1 if rng.random() < 0.8 else 2
    own = noisy(rec, rng)
    peers = [noisy(rec, rng) for _ in range(n_peers)]
    if fmt == "debate_revise":
        return prompts.debate_revise(rec, own, peers), rec["metadata"]["solution"]
    stage, mode = fmt.split("_")
    if stage == "analysis":
        return prompts.analysis(mode, rec, own, peers), analysis_target(mode, rec, own, peers)
    # fusion: the analysis the model would have written, right or (sometimes) from a wrong recomputation
    if rng.random() < 0.7:
        note = analysis_target(mode, rec, own, peers)
    else:
        steps, value = _corrupt_steps(rec["metadata"]["solution"], rng)
        note = analysis_target(mode, rec, own, peers, _steps_text(steps), value_answer(rec, value))
    return prompts.fusion(mode, rec, own, peers, note), rec["metadata"]["solution"]


# ----------------------------------------------------------------------------- model

def make_model(build: dict, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    arch = build["arch"]
    common = dict(
        vocab_size=len(tokenizer), hidden_size=int(build["hidden"]),
        intermediate_size=int(build.get("intermediate", 2 * int(build["hidden"]))),
        num_hidden_layers=int(build["layers"]), num_attention_heads=int(build["heads"]),
        num_key_value_heads=int(build["heads"]), max_position_embeddings=int(build.get("context", 512)),
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, use_cache=True,
        # Qwen2's default theta (1e6) leaves a tiny head almost no positional resolution
        rope_parameters={"rope_type": "default", "rope_theta": float(build.get("rope_theta", 10000.0))})
    torch.manual_seed(int(build["seed"]))
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    else:
        raise ValueError(f"build.arch must be llama or qwen2, got {arch!r}")
    gc = model.generation_config
    gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    gc.do_sample = False
    gc.max_length = None
    return model


def batch_tensors(pairs: list[tuple[str, str]], tokenizer):
    """Right-padded input ids, attention mask and labels (-100 except on target tokens and <eos>)."""
    import torch

    rows = []
    for prompt, target in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        t = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((p + t, [-100] * len(p) + t))
    width = max(len(r[0]) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r[0] + [pad] * (width - len(r[0])) for r in rows])
    mask = torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows])
    labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in rows])
    return ids, mask, labels


def warm_up(model, tokenizer, prompts, build: dict, train_params: dict, log=None) -> list[float]:
    """The supervised warm-up; returns the loss of every step."""
    import torch

    steps = int(build["warmup_steps"])
    lr = float(build.get("lr", 1e-2))
    batch_size = int(build.get("batch_size", 16))
    data_seed = int(build["seed"]) + DATA_SEED_OFFSET
    pool_n = max(512, min(20000, steps * batch_size))
    pools = {kind: generate(src, pool_n if kind == "math" else pool_n // 4, data_seed, **train_params)
             for kind, src in KIND_SOURCE.items()}
    rng = random.Random(data_seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    model.train()
    losses = []
    names, weights = list(FORMATS), list(FORMATS.values())
    for step in range(steps):
        fmt = rng.choices(names, weights=weights)[0]
        bs = batch_size if fmt.startswith("solve_") else max(2, batch_size // 2)
        ids, mask, labels = batch_tensors([example(fmt, prompts, pools, rng) for _ in range(bs)], tokenizer)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log and (step + 1) % max(1, steps // 10) == 0:
            log(f"step {step + 1}/{steps} loss {sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    return losses


def build_model(config: dict, name: str, out: str | Path, threads: int = 1, log=print) -> dict:
    """Build, warm up and save models[name]; returns the build.json record."""
    import torch

    from ilr.prompts import load as load_prompts
    from ilr.tiny.tokenizer import build_tokenizer

    t0, c0 = time.time(), time.process_time()
    torch.set_num_threads(threads)
    entry = config["models"].get(name)
    if entry is None or "build" not in entry:
        raise ValueError(f"models.{name} has no build: key (only tiny models are built)")
    build = entry["build"]
    tokenizer = build_tokenizer(int(build.get("context", 512)))
    model = make_model(build, tokenizer)
    prompts = load_prompts(str(config["prompts"]))
    train_params = dict(config["data"]["train"].get("params", {}))
    losses = warm_up(model, tokenizer, prompts, build, train_params, log=log)
    tail = losses[-20:]
    record = {"model": name, "build": build, "prompts": str(config["prompts"]), "train_params": train_params,
              "data_seed": int(build["seed"]) + DATA_SEED_OFFSET,
              "n_params": sum(p.numel() for p in model.parameters()),
              "first_loss": losses[0] if losses else None,
              "final_loss": sum(tail) / len(tail) if tail else None,
              "loss_curve": [round(sum(losses[i:i + 10]) / len(losses[i:i + 10]), 4) for i in range(0, len(losses), 10)],
              "threads": threads, "torch": torch.__version__}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    record["time_s"] = round(time.time() - t0, 2)
    record["cpu_s"] = round(time.process_time() - c0, 2)   # this process's CPU time (one thread: the quiet-core time)
    (tmp / "build.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    log(f"{name}: {record['n_params']} parameters, final loss {record['final_loss']:.3f}, "
        f"{record['time_s']} s -> {out}")
    return record


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    build_model(config, args.model, args.out, threads=args.threads)
    return 0
