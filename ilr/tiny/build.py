"""`python -m ilr build-model --config CFG --model NAME --out DIR`: build one tiny base model.

models[NAME].build = {arch: llama|qwen2, hidden, layers, heads, warmup_steps, seed} (optional:
lr (1e-2), batch_size (16), intermediate (2 * hidden), context (512), rope_theta, and the warm-up's
knobs below) gives a LlamaForCausalLM / Qwen2ForCausalLM with random init and the character tokenizer
(ilr/tiny/tokenizer.py), then a supervised warm-up on generated data, on CPU, one thread. The warm-up
teaches every format the study asks of a model, rendered with the study's own prompt templates (config
`prompts`):

  solo solve (math, code, choice)   prompt = PromptSet.solve(record), target = metadata.solution
  analysis (cooperation, "Agree?")  target = the peers whose final answer agrees with mine: "P1" or "none"
  analysis (competition, "Error?")  target = the peers whose final answer differs from mine: "P1" or "none"
  fusion (cooperation, competition) target = the right answer alone, "\\boxed{24}" (fusion_target)
  debate_revise                     target = the same
  guided_solve (AIPO)               prompt = solo prompt + partial solution + <guidance>reply</guidance>,
                                    target = the rest of the solution (guided_example)

A world where reading a peer can help (issue 16): the questions are chains of sums or chains of
products (data.train.params `families`, ilr/tiny/task.py), and `skills` (op family -> share of the solo
math questions) gives each model its own: in the tiny config tiny-llama learns products only, the
others both. Two phases, each its own lr cycle (warm-up, cosine to 10%: these models learn as the lr
anneals):
  1. solo (`solo_share` of warmup_steps, default 0.5): the solve formats, so that the skills exist before
     the model is shown its own answers; `early_interaction` (default 0) adds the Idea3 formats at that
     share of FORMATS, over synthetic own answers, which starts Fusion's copying early;
  2. everything (FORMATS), the lr restarting at `restart_lr` x lr (default 0.5). At its start (and at the
     other `own_refresh` fractions of it) the model answers `own_pool` (384) training questions greedily:
     these are the "Me:" of every Idea3 and Debate example from then on, so the model learns how far its
     own answers can be trusted, per kind of question, from its real ones. Peers are synthetic (noisy:
     the solution, or with probability `peer_p_wrong` (0.6) one step wrong and the chain carried on, the
     wrong result a slip, the step done with another operator, or any number; rarely a truncated one), on
     every kind of question alike: a model has no prior on who its peer is.
Fusion and Debate examples are drawn only where some idea on the table is right (resolvable), and
their target is that answer alone: a tiny model learns to copy a short answer from the idea it trusts
in a few thousand rows, where copying a whole worked solution took it many more (it recomputed
instead, and lost what it read). So the model that cannot add learns to give its peer's answer on a
sum, and keeps its own on a product; the strong model, whose own answers beat a peer's 40% on
both kinds, keeps its own. The analysis only records agreement: whether an idea is right needs the
skill the reader may lack, and an analysis that recomputes the question is only the model's own answer
again (before issue 16 the note so talked Fusion into the model's own mistakes). Loss is on target
tokens only; every target ends with <eos>. Interaction examples are math questions with one peer
(IDEA3_KINDS, TWO_PEERS: the tiny study interacts on tiny_arith, in pairs), `interaction_batch_size`
rows a batch (default batch_size // 2).

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
import shutil
import time
from pathlib import Path

from ilr.tiny.peers import agreement_target, analysis_target, answer_of, fusion_target, gold_of, noisy, resolvable
from ilr.tiny.task import generate

DATA_SEED_OFFSET = 1000003
FORMATS = {  # format -> share of warm-up batches (interaction batches: interaction_batch_size rows, longer ones)
    "solve_math": 0.30, "solve_code": 0.01, "solve_choice": 0.01,
    "analysis_cooperation": 0.04, "analysis_competition": 0.04,
    "fusion_cooperation": 0.25, "fusion_competition": 0.25, "debate_revise": 0.05,
    "guided_solve": 0.03,   # AIPO: a partial solution, an agent's <guidance>, the rest (guided_example)
}
# question kinds in the interaction formats, and how often a question has two peers rather than one: the tiny
# study interacts on tiny_arith (its training data and the multi-agent benchmark) in pairs; a batch is as wide
# as its longest row, and one code, choice or two-peer row in eight made most interaction batches half again
# as costly
IDEA3_KINDS = {"math": 1.0, "code": 0.0, "choice": 0.0}
TWO_PEERS = 0.0
# the formats that show a model its own answer ("Me:"): drawn only once the model has answers of its own
INTERACTION = ("analysis_cooperation", "analysis_competition", "fusion_cooperation", "fusion_competition",
               "debate_revise")
SOLO_SHARE = 0.5                 # the first half of the warm-up is solo only (its own lr cycle): skills first
EARLY_INTERACTION = 0.0          # the first phase's share of Idea3 formats (synthetic own answers), relative to FORMATS
RESTART_LR = 0.5                 # the interaction half restarts the lr cycle at this fraction of lr
OWN_REFRESH = (0.0,)             # fractions of the interaction half at which the model's own answers are (re)drawn
OWN_POOL = 384                   # questions it answers each time
PEER_P_WRONG = 0.6               # a synthetic peer is wrong this often, on every kind of question
OWN_MAX_NEW_TOKENS = 64          # the evaluation's budget (config evaluation.max_new_tokens)
KIND_SOURCE = {"math": "tiny_arith", "code": "tiny_code", "choice": "tiny_choice"}


def config_slice(config: dict, model: str) -> dict:
    """The config this stage reads for one model (Snakemake's rerun trigger, ilr.study.stage_spec)."""
    m = config["models"][model]
    # the warm-up also reads the training distribution and the prompt templates (build_model)
    return {"path": m["path"], "build": m.get("build"), "numerics": config["numerics"],
            "train_params": config["data"]["train"].get("params", {}), "prompts": config["prompts"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="study config YAML")
    parser.add_argument("--model", required=True, help="a models: entry with a build: key")
    parser.add_argument("--out", required=True, help="output directory (save_pretrained)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


# ----------------------------------------------------------------------------- own answers and examples
# (the synthetic peers and the interaction targets: ilr/tiny/peers.py)

def own_answers(model, tokenizer, prompts, records: list[dict]) -> list[str]:
    """The model's own greedy solo answers (the Sharing answers it would give now), as the study samples them."""
    from ilr.generation import TransformersEngine

    engine = TransformersEngine(model, tokenizer, batch_size=128)
    return engine.complete([prompts.solve(r) for r in records], max_new_tokens=OWN_MAX_NEW_TOKENS)


def draw_own(model, tokenizer, prompts, pools: dict, rng: random.Random, n: int) -> list[tuple[dict, str]]:
    """n interaction questions (kinds as IDEA3_KINDS) with the model's own current answers to them."""
    kinds = rng.choices(list(IDEA3_KINDS), weights=list(IDEA3_KINDS.values()), k=n)
    records = [rng.choice(pools[k]) for k in kinds]
    return list(zip(records, own_answers(model, tokenizer, prompts, records)))


def guided_example(prompts, pools: dict, rng: random.Random) -> tuple[str, str]:
    """AIPO's guided continuation (METHOD.md "AIPO"; ilr/train/aipo.py): the solo prompt, a partial solution (the
    worked solution cut at a random character), an agent's reply in the study's guidance markup
    (prompts/<dir>/guidance.txt), and as target the rest of the solution. The tiny models cannot learn to ask
    for help, but a policy that has never seen guidance in its context cannot use it (the tiny config's
    `aipo.trigger: stuck` inserts it). The reply has the shape of a tiny agent's answer (prompts/tiny/agent_*.txt):
    Verify's check of the partial solution, Knowledge's worked steps, or Reasoning's continuation."""
    rec = rng.choice(pools["math"])
    sol = rec["metadata"]["solution"]
    k = rng.randrange(1, len(sol))
    partial, rest = sol[:k], sol[k:]
    agent = rng.choice(["verify", "knowledge", "reasoning"])
    reply = {"verify": analysis_target("competition", rec, partial, []), "knowledge": sol, "reasoning": rest}[agent]
    return prompts.solve(rec) + partial + prompts.guidance(reply), rest


def example(fmt: str, prompts, pools: dict, rng: random.Random, own: list[tuple[dict, str]] | None = None,
            skills: dict | None = None, p_wrong: float = PEER_P_WRONG) -> tuple[str, str]:
    """One (prompt, target) warm-up pair of a format. `own`: (question, the model's own answer) pairs for the
    interaction formats (None: a synthetic own answer, noisy()); `skills`: op family -> weight of the solo
    math questions (pools["math:<family>"]); p_wrong: how often a synthetic peer is wrong."""
    if fmt == "guided_solve":
        return guided_example(prompts, pools, rng)
    if fmt == "solve_math" and skills:
        family = rng.choices(list(skills), weights=list(skills.values()))[0]
        rec = rng.choice(pools[f"math:{family}"])
        return prompts.solve(rec), rec["metadata"]["solution"]
    if fmt.startswith("solve_"):
        rec = rng.choice(pools[fmt.removeprefix("solve_")])
        return prompts.solve(rec), rec["metadata"]["solution"]
    for _ in range(100):   # Fusion and Debate: only questions with a right idea to read (resolvable)
        if own:
            rec, mine = rng.choice(own)
        else:
            kind = rng.choices(list(IDEA3_KINDS), weights=list(IDEA3_KINDS.values()))[0]
            rec = rng.choice(pools[kind])
            mine = noisy(rec, rng)
        n_peers = 2 if rng.random() < TWO_PEERS else 1
        peers = [noisy(rec, rng, p_wrong) for _ in range(n_peers)]
        if fmt.startswith("analysis_") or resolvable(rec, mine, peers):
            break
    if fmt == "debate_revise":
        return prompts.debate_revise(rec, mine, peers), fusion_target(rec)
    stage, mode = fmt.split("_")
    note = agreement_target(mode, rec, mine, peers)
    if stage == "analysis":
        return prompts.analysis(mode, rec, mine, peers), note
    return prompts.fusion(mode, rec, mine, peers, note), fusion_target(rec)


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
    # one batched call for the prompts and one for the targets (per pair, the tokenizer's Python wrapper was
    # 5% of a build's time); the same ids
    prompts = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    targets = tokenizer([t for _, t in pairs], add_special_tokens=False)["input_ids"]
    for p, t in zip(prompts, targets):
        t = t + [tokenizer.eos_token_id]
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
    skills = {str(f): float(w) for f, w in (build.get("skills") or {}).items()}
    solo_params = {k: v for k, v in train_params.items() if k not in ("ops", "families")}
    for family in skills:   # the solo questions of each skill: the training distribution, one op family
        pools[f"math:{family}"] = generate("tiny_arith", pool_n, data_seed, **solo_params, families=[family])
    formats = {**FORMATS, **{str(k): float(v) for k, v in (build.get("formats") or {}).items()}}
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"build.formats: unknown formats {sorted(unknown)}; known: {sorted(FORMATS)}")
    solo_steps = int(steps * float(build.get("solo_share", SOLO_SHARE)))
    restart = float(build.get("restart_lr", RESTART_LR))
    refresh = sorted({min(steps - 1, solo_steps + int(f * (steps - solo_steps)))
                      for f in build.get("own_refresh", OWN_REFRESH)})
    n_own, p_wrong = int(build.get("own_pool", OWN_POOL)), float(build.get("peer_p_wrong", PEER_P_WRONG))
    interaction_batch = int(build.get("interaction_batch_size", max(2, batch_size // 2)))
    early = float(build.get("early_interaction", EARLY_INTERACTION))
    rng = random.Random(data_seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    def lr_factor(s: int) -> float:   # a warm-up and cosine cycle per phase (the tiny models learn as the lr anneals)
        start, length, peak = (0, solo_steps, 1.0) if s < solo_steps else (solo_steps, steps - solo_steps, restart)
        k, warm = s - start, max(1, length // 20)
        return peak * min(1.0, (k + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, k / max(1, length)))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    model.train()
    losses = []
    own = None      # (question, the model's own answer): none until the first refresh
    for step in range(steps):
        if step in refresh:   # the model's own Sharing answers as they are now: what "Me:" shows it
            own = draw_own(model, tokenizer, prompts, pools, rng, n_own)
            model.train()
            if log:
                right = sum(answer_of(r, t) == gold_of(r) for r, t in own) / len(own)
                log(f"step {step}: own answers redrawn ({len(own)} questions, {right:.2f} right)")
        if step >= solo_steps:
            weights = formats
        else:   # the first phase: solo answers, and (early_interaction) Idea3 formats over synthetic own answers
            weights = {f: w * (early if f in INTERACTION else 1.0) for f, w in formats.items()
                       if f.startswith("solve_") or (early and f in INTERACTION)}
        names = list(weights)
        fmt = rng.choices(names, weights=list(weights.values()))[0]
        bs = batch_size if fmt.startswith("solve_") else interaction_batch
        pairs = [example(fmt, prompts, pools, rng, own=own, skills=skills, p_wrong=p_wrong) for _ in range(bs)]
        ids, mask, labels = batch_tensors(pairs, tokenizer)
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
    from ilr.config import load

    config = load(args.config)
    build_model(config, args.model, args.out, threads=args.threads)
    return 0
