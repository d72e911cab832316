"""The `ppo` baseline: a small actor-critic with a rule-based reward (METHOD.md, "Methods").

TRL no longer ships a PPO trainer (`trl.experimental.ppo` was removed in TRL 1.13, and it only took
a learned reward model), so this is the classic RLHF PPO loop written on the same machinery:

- actor: the base model (transformers `AutoModelForCausalLM`);
- critic: a value head on a copy of the base model: transformers `AutoModelForSequenceClassification`
  with `num_labels=1` loaded from the base checkpoint (its backbone + the linear `score` head, read
  per token), which is how TRL's former PPOTrainer built its value model;
- reference: the frozen base model, loaded only when `beta != 0` (as TRL's GRPOTrainer does);
- per-token log-probabilities, entropy, padding and dropout handling from TRL 1.16
  (`selective_log_softmax`, `entropy_from_logits`, `pad`, `disable_dropout_in_model`);
- reward: `rule_reward` (1 correct / 0 wrong) at the completion's last token, plus the per-token KL
  penalty `-beta * (log pi - log pi_ref)` on every completion token (classic RLHF PPO, k1 estimator);
- GAE with `gae_gamma` (1.0) and `gae_lambda` (0.95); advantages whitened over the batch
  (`whiten_advantages`, TRL PPO's default); returns = advantages (before whitening) + values;
- loss = PPO clipped policy loss (`epsilon`) + `vf_coef` * clipped value loss (`cliprange_value`),
  token-level means over the whole batch.

(choice) Parity with GRPO: each step takes the step's `questions_per_step` questions of
`question_schedule` and samples `num_generations` completions per question (as GRPO does), so both
methods see the same questions, the same number of samples and make the same number of optimizer
updates (one per step). With one update on freshly sampled data the ratio is 1 at the update, as in
TRL's GRPO with `num_iterations=1`; the clipping is in the objective all the same.

Training-args keys read here (config `training` merged with `methods.<method>`; defaults in
`DEFAULTS`): steps, questions_per_step, num_generations, learning_rate, beta, epsilon, temperature,
max_new_tokens, save_steps, vf_coef, gae_gamma, gae_lambda, cliprange_value, whiten_advantages,
critic_learning_rate (null: learning_rate), weight_decay, max_grad_norm (clipped separately for actor
and critic), lr_scheduler_type, warmup_steps, micro_batch_size (gradient accumulation only; does not
change the maths), generation_batch_size, save_total_limit, dtype.

Outputs under `<out_dir>/<model>/`: `final/` (actor + tokenizer, written atomically),
`checkpoints/checkpoint-N/` (actor, critic, optimizer, scheduler, RNG, `trainer_state.json`) every
`save_steps`, and `metrics.jsonl` (one row per step: reward_mean/std, kl = mean over sequences of the
summed per-token log pi - log pi_ref on the sampled tokens (an unbiased estimate that can be negative;
null when beta == 0, as no reference model is loaded then), policy_loss, value_loss, clip fractions,
entropy, value/return means, completion_length, truncated_fraction, grad norms, learning_rate). A run restarts from its latest checkpoint; since
torch is seeded with `stable_seed(seed, step)` before each step's sampling, a killed and restarted run
ends with the same weights as an uninterrupted one (on CPU).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ilr.io import append_jsonl, read_jsonl, write_json, write_jsonl
from ilr.train import preempt
from ilr.train.common import latest_checkpoint, question_schedule, rule_reward, stable_seed

DEFAULTS = {
    "vf_coef": 0.5,
    "gae_gamma": 1.0,
    "gae_lambda": 0.95,
    "cliprange_value": 0.2,
    "whiten_advantages": True,
    "critic_learning_rate": None,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "lr_scheduler_type": "linear",
    "warmup_steps": 0,
    "micro_batch_size": 8,
    "generation_batch_size": 64,
    "save_total_limit": None,
    "dtype": None,
    "beta": 0.0,
    "epsilon": 0.2,
    "temperature": 1.0,
}


# ----------------------------------------------------------------------------- the maths (tested)

def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries (unbiased variance, as TRL's former masked_whiten)."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = (((x - mean) ** 2) * mask).sum() / (n - 1).clamp(min=1)
    return ((x - mean) * torch.rsqrt(var + eps)) * mask


def token_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor | None,
                  mask: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: -beta * (logp - ref_logp) on each completion token, plus the sequence's score
    on its last token. Returns (rewards [B, T], per-token KL [B, T]); mask is right-padded."""
    mask = mask.to(logprobs.dtype)
    if ref_logprobs is None:
        kl = torch.zeros_like(logprobs)
    else:
        kl = (logprobs - ref_logprobs) * mask
    rewards = -beta * kl
    last = mask.sum(1).long() - 1
    rows = torch.arange(len(scores), device=rewards.device)
    rewards[rows, last.clamp(min=0)] += scores.to(rewards.dtype) * (last >= 0)
    return rewards * mask, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over right-padded sequences; V after the last token is 0.

    delta_t = r_t + gamma V_{t+1} - V_t ; A_t = delta_t + gamma lam A_{t+1} ; returns R_t = A_t + V_t.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_v = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    adv = adv * mask
    return adv, (adv + values) * mask


def policy_loss_terms(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                      epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO clipped loss max(-A r, -A clip(r, 1-eps, 1+eps)) and whether clipping was active."""
    ratio = torch.exp(logprobs - old_logprobs)
    loss1 = -advantages * ratio
    loss2 = -advantages * torch.clamp(ratio, 1.0 - epsilon, 1.0 + epsilon)
    return torch.max(loss1, loss2), (loss2 > loss1).float()


def value_loss_terms(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                     clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clipped value loss 0.5 max((V - R)^2, (clip(V, V_old -+ c) - R)^2), and clip activity."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    l1 = (values - returns) ** 2
    l2 = (clipped - returns) ** 2
    return 0.5 * torch.max(l1, l2), (l2 > l1).float()


def policy_loss(logprobs, old_logprobs, advantages, mask, epsilon) -> torch.Tensor:
    return masked_mean(policy_loss_terms(logprobs, old_logprobs, advantages, epsilon)[0], mask)


def value_loss(values, old_values, returns, mask, clip) -> torch.Tensor:
    return masked_mean(value_loss_terms(values, old_values, returns, clip)[0], mask)


# ----------------------------------------------------------------------------- configuration

def _training_args(config: dict, method: str) -> dict:
    # TODO(lead): swap for ilr.config.training_args(config, method) (helper D) once it exists.
    try:
        from ilr.config import training_args
    except ImportError:
        training_args = None
    if training_args is not None:
        args = dict(training_args(config, method))
    else:
        args = {**config.get("training", {}), **config["methods"][method]}
    return {**DEFAULTS, **{k: v for k, v in args.items() if v is not None or k not in DEFAULTS}}


# ----------------------------------------------------------------------------- model plumbing

def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def _actor_logits(model, input_ids, attention_mask, width_prompt: int) -> torch.Tensor:
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=_positions(attention_mask),
                use_cache=False)
    return out.logits[:, width_prompt - 1:-1]   # position t predicts completion token t


def _critic_values(critic, input_ids, attention_mask, width_prompt: int) -> torch.Tensor:
    backbone = getattr(critic, critic.base_model_prefix)
    h = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=_positions(attention_mask),
                 use_cache=False).last_hidden_state
    return critic.score(h[:, width_prompt - 1:-1]).squeeze(-1).float()   # V(state before token t)


def _batch(samples, pad_id: int, device) -> dict:
    """Left-padded prompts + right-padded completions, as one [B, P + C] batch."""
    from trl.trainer.utils import pad

    prompts = [torch.tensor(s.prompt_ids, dtype=torch.long) for s in samples]
    comps = [torch.tensor(s.completion_ids or [pad_id], dtype=torch.long) for s in samples]
    p = pad(prompts, padding_value=pad_id, padding_side="left")
    pm = pad([torch.ones_like(x) for x in prompts], padding_value=0, padding_side="left")
    c = pad(comps, padding_value=pad_id, padding_side="right")
    cm = pad([torch.ones_like(x) for x in comps], padding_value=0, padding_side="right")
    return {"input_ids": torch.cat([p, c], 1).to(device), "attention_mask": torch.cat([pm, cm], 1).to(device),
            "completion_ids": c.to(device), "mask": cm.float().to(device), "width_prompt": p.shape[1]}


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_dir_atomically(target: Path, write: Callable[[Path], None]) -> None:
    tmp = target.parent / f".{target.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


# ----------------------------------------------------------------------------- the trainer

def train_ppo(config: dict, method: str, model_name: str, seed: int, train_path: str, out_dir: str, *,
              reward_fn: Callable[[dict, str], float] | None = None, stop_after: int | None = None) -> None:
    """Train `model_name` with PPO; see the module docstring. `reward_fn(record, completion)` defaults to
    the rule-based reward; `stop_after` ends the run after that step (tests: simulate a kill)."""
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, get_scheduler
    from transformers.utils import logging as hf_logging
    from trl.trainer.utils import disable_dropout_in_model, entropy_from_logits, selective_log_softmax

    from ilr.generation import load_model, sample
    from ilr.prompts import as_model_input, load as load_prompts

    args = _training_args(config, method)
    reward_fn = reward_fn or rule_reward
    base = config["models"][model_name]["path"]
    run_dir = Path(out_dir) / model_name
    ckpt_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    run_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args["dtype"]) if args["dtype"] else None

    steps, qps, G = int(args["steps"]), int(args["questions_per_step"]), int(args["num_generations"])
    temperature, beta = float(args["temperature"]), float(args["beta"])
    if temperature <= 0:
        raise ValueError(f"methods.{method}: ppo samples, temperature must be > 0 (got {temperature})")
    schedule = question_schedule(train_path, steps, qps, seed)
    prompts_set = load_prompts(config.get("prompts", "tiny"))

    resume = latest_checkpoint(ckpt_dir)
    src_actor = resume / "actor" if resume else base
    actor, tokenizer = load_model(src_actor, dtype=dtype)
    torch.manual_seed(stable_seed(seed, "critic-init"))   # the value head's random init
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()   # the expected "lm_head unexpected, score missing" load report
    try:
        critic = AutoModelForSequenceClassification.from_pretrained(
            str(resume / "critic" if resume else base), num_labels=1, dtype=dtype or "auto")
    finally:
        hf_logging.set_verbosity(verbosity)
    critic.config.pad_token_id = tokenizer.pad_token_id
    ref = None
    if beta != 0.0:
        ref = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype or "auto").to(device).eval()
        ref.requires_grad_(False)
        disable_dropout_in_model(ref)
    for m in (actor, critic):
        disable_dropout_in_model(m)
        m.to(device).train()

    critic_lr = args["critic_learning_rate"] or args["learning_rate"]
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in actor.parameters() if p.requires_grad], "lr": float(args["learning_rate"])},
         {"params": [p for p in critic.parameters() if p.requires_grad], "lr": float(critic_lr)}],
        weight_decay=float(args["weight_decay"]))
    scheduler = get_scheduler(args["lr_scheduler_type"], optimizer, num_warmup_steps=int(args["warmup_steps"]),
                              num_training_steps=steps)
    start = 0
    if resume:
        state = json.loads((resume / "trainer_state.json").read_text())
        start = int(state["global_step"])
        optimizer.load_state_dict(torch.load(resume / "optimizer.pt", map_location=device, weights_only=False))
        scheduler.load_state_dict(torch.load(resume / "scheduler.pt", weights_only=False))
        _set_rng_state(torch.load(resume / "rng_state.pth", weights_only=False))
    # Rows past the checkpoint came from a run that was killed later; they are redone.
    if metrics_path.exists():
        write_jsonl(metrics_path, [r for r in read_jsonl(metrics_path) if r["step"] <= start])

    pad_id = tokenizer.pad_token_id
    mb = max(1, int(args["micro_batch_size"]))
    bar = tqdm(range(start, steps), desc=f"ppo {model_name}", unit="step", initial=start, total=steps)
    for step in bar:
        records = schedule[step * qps:(step + 1) * qps]
        torch.manual_seed(stable_seed(seed, step))
        texts = [as_model_input(tokenizer, prompts_set.solve(r)) for r in records]
        groups = sample(actor, tokenizer, texts, n=G, max_new_tokens=int(args["max_new_tokens"]),
                        temperature=temperature, batch_size=int(args["generation_batch_size"]))
        samples = [s for g in groups for s in g]
        scores = torch.tensor([float(reward_fn(rec, s.text)) for rec, g in zip(records, groups) for s in g],
                              device=device)
        batch = _batch(samples, pad_id, device)
        B, wp, mask = len(samples), batch["width_prompt"], batch["mask"]
        ids, att, comp = batch["input_ids"], batch["attention_mask"], batch["completion_ids"]

        # Rollout quantities under the sampling policy (no gradient).
        with torch.no_grad():
            old_lp, ref_lp, old_v = [], [], []
            for i in range(0, B, mb):
                sl = slice(i, i + mb)
                old_lp.append(selective_log_softmax(_actor_logits(actor, ids[sl], att[sl], wp).float(),
                                                    comp[sl], temperature=temperature))
                if ref is not None:
                    ref_lp.append(selective_log_softmax(_actor_logits(ref, ids[sl], att[sl], wp).float(),
                                                        comp[sl], temperature=temperature))
                old_v.append(_critic_values(critic, ids[sl], att[sl], wp))
            old_lp = torch.cat(old_lp) * mask
            ref_lp = torch.cat(ref_lp) * mask if ref is not None else None
            old_v = torch.cat(old_v) * mask
            rewards, kl = token_rewards(scores, old_lp, ref_lp, mask, beta)
            adv, returns = gae(rewards, old_v, mask, float(args["gae_gamma"]), float(args["gae_lambda"]))
            if args["whiten_advantages"]:
                adv = masked_whiten(adv, mask)

        # One optimizer update on the whole batch (micro-batches accumulate gradients).
        n_tok = mask.sum().clamp(min=1)
        optimizer.zero_grad(set_to_none=True)
        sums = {"pg": 0.0, "vf": 0.0, "pg_clip": 0.0, "vf_clip": 0.0, "entropy": 0.0}
        for i in range(0, B, mb):
            sl = slice(i, i + mb)
            m = mask[sl]
            logits = _actor_logits(actor, ids[sl], att[sl], wp).float()
            lp = selective_log_softmax(logits, comp[sl], temperature=temperature)
            v = _critic_values(critic, ids[sl], att[sl], wp)
            pg, pg_c = policy_loss_terms(lp, old_lp[sl], adv[sl], float(args["epsilon"]))
            vf, vf_c = value_loss_terms(v, old_v[sl], returns[sl], float(args["cliprange_value"]))
            pg_sum, vf_sum = (pg * m).sum(), (vf * m).sum()
            ((pg_sum + float(args["vf_coef"]) * vf_sum) / n_tok).backward()
            with torch.no_grad():
                sums["pg"] += pg_sum.item()
                sums["vf"] += vf_sum.item()
                sums["pg_clip"] += (pg_c * m).sum().item()
                sums["vf_clip"] += (vf_c * m).sum().item()
                sums["entropy"] += (entropy_from_logits(logits / temperature) * m).sum().item()
        max_norm = float(args["max_grad_norm"]) if args["max_grad_norm"] else float("inf")
        actor_norm = torch.nn.utils.clip_grad_norm_(actor.parameters(), max_norm)
        critic_norm = torch.nn.utils.clip_grad_norm_(critic.parameters(), max_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()

        n = n_tok.item()
        row = {
            "step": step + 1,
            "reward_mean": scores.mean().item(),
            "reward_std": scores.std().item() if B > 1 else 0.0,
            "kl": (kl.sum(1).mean().item() if ref is not None else None),   # per sequence, summed over tokens
            "policy_loss": sums["pg"] / n,
            "value_loss": sums["vf"] / n,
            "policy_clipfrac": sums["pg_clip"] / n,
            "value_clipfrac": sums["vf_clip"] / n,
            "entropy": sums["entropy"] / n,
            "value_mean": masked_mean(old_v, mask).item(),
            "return_mean": masked_mean(returns, mask).item(),
            "completion_length": mask.sum(1).mean().item(),
            "truncated_fraction": sum(s.truncated for s in samples) / B,
            "grad_norm_actor": float(actor_norm),
            "grad_norm_critic": float(critic_norm),
            "learning_rate": lr,
        }
        append_jsonl(metrics_path, row)
        bar.set_postfix(reward=f"{row['reward_mean']:.3f}", vloss=f"{row['value_loss']:.4f}")

        done = step + 1
        stopping = preempt.requested() and done < steps   # a signal: save here and stop (preempt.py)
        if (args["save_steps"] and done % int(args["save_steps"]) == 0) or done == steps or stopping:
            _save_checkpoint(ckpt_dir, done, actor, critic, tokenizer, optimizer, scheduler,
                             {"method": method, "model": model_name, "seed": seed, "steps": steps},
                             args["save_total_limit"])
        if stopping:
            bar.close()
            raise preempt.Interrupted(done)
        if stop_after is not None and done >= stop_after:
            bar.close()
            return
    bar.close()

    def write_final(tmp: Path) -> None:
        actor.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    _save_dir_atomically(run_dir / "final", write_final)


def _save_checkpoint(ckpt_dir: Path, step: int, actor, critic, tokenizer, optimizer, scheduler, info: dict,
                     limit: int | None) -> None:
    def write(tmp: Path) -> None:
        actor.save_pretrained(tmp / "actor")
        tokenizer.save_pretrained(tmp / "actor")
        critic.save_pretrained(tmp / "critic")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(_rng_state(), tmp / "rng_state.pth")
        write_json(tmp / "trainer_state.json", {"global_step": step, **info})   # last: marks it complete
    _save_dir_atomically(ckpt_dir / f"checkpoint-{step}", write)
    if limit:
        done = sorted((p for p in ckpt_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
                      key=lambda p: int(p.name.split("-")[1]))
        for old in done[:-int(limit)]:
            shutil.rmtree(old)
