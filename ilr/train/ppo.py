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
  token-level means over each optimizer update's minibatch;
- updates, as verl and OpenRLHF make them: `ppo_epochs` passes over the step's batch, each in
  `num_mini_batches` updates (`minibatch_rows`), so from the second update on the ratio departs from 1
  and the clipping acts; the critic has its own `critic_learning_rate`; for the first
  `value_warmup_steps` steps only the critic learns (the actor is frozen: loss weight and learning rate 0).
The maths is in ilr/train/rl.py.

(choice) Parity with GRPO: each step takes the step's `questions_per_step` questions of
`question_schedule` and samples `num_generations` completions per question (as GRPO does), so both
methods see the same questions and the same number of samples over the same number of steps. GRPO makes
one update per step (TRL's `num_iterations=1`: the ratio is 1 at the update); PPO makes the references'
ppo_epochs x num_mini_batches (1 x 4 in config/paper.yaml); the learning-rate schedule moves once per step.

Training arguments read here (`args`, the run's PpoArgs: config `training` merged with `methods.<method>`,
ilr/config/args.py; the defaults of the ppo-only keys are in the config schema,
workflow/schemas/config.schema.yaml): steps, questions_per_step,
num_generations, learning_rate, beta, epsilon, temperature, max_new_tokens, save_steps, vf_coef,
gae_gamma, gae_lambda, cliprange_value, whiten_advantages, critic_learning_rate (null: learning_rate),
ppo_epochs, num_mini_batches (must divide each process's sequences per step), value_warmup_steps,
weight_decay, max_grad_norm (clipped separately for actor and critic at each update; under DeepSpeed its
own global `gradient_clipping` applies instead), lr_scheduler_type, warmup_steps (in steps),
micro_batch_size (gradient accumulation within a minibatch; does not change the maths),
generation_batch_size, save_total_limit, gradient_checkpointing (actor and critic).

Distribution (accelerate): actor and critic are one module (`ActorCritic`) prepared once, with one
optimizer, on whatever `accelerate launch` set up: one process, DDP, or DeepSpeed ZeRO-3 (the
paper config; the reference model is then sharded too, and the actor's weights are gathered for
sampling). Weights are fp32 masters, bf16 autocast on GPU. Each of N processes samples and scores
its `questions_per_step / N` questions; minibatch k is the same set of the step's sequences under
any N (`minibatch_rows`), an update's loss is the token mean over that minibatch on all processes
(scaled so that the gradient average over processes gives exactly that), advantages are whitened
with statistics over all processes, and metrics are summed over them: N processes make the updates
one process would make from the same samples.

Outputs under `<out_dir>/<model>/`: `final/` (actor + tokenizer, written once and atomically by the
main process, gathered under ZeRO-3), `checkpoints/checkpoint-N/` (`state/`: accelerate's
`save_state`: model, optimizer, scheduler, every process's RNG; `trainer_state.json`, written last) every
`save_steps`, `rollouts.jsonl` (per step and question: the G completions and rewards) and
`metrics.jsonl` (one row per step: reward_mean/std, kl = mean over sequences of the summed per-token
log pi - log pi_ref on the sampled tokens (an unbiased estimate that can be negative; null when beta ==
0, as no reference model is loaded then), value_warmup (the actor frozen), policy_loss, value_loss,
clip fractions, ppo_kl and entropy (means over every update's tokens), value/return means,
completion_length, truncated_fraction, grad norms (means over the updates), learning_rate), the same rows as
TensorBoard scalars in `tensorboard/` when training.report_to has tensorboard (ilr/train/trackers.py; ppo takes
no wandb or trackio). A run restarts from its latest checkpoint; since torch is seeded with
`stable_seed(seed, step, rank)` before each step's sampling, a killed and restarted run ends with the same
weights as an uninterrupted one (on CPU).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import torch

from ilr.layout import RunPaths
from ilr.seeding import stable_seed
from ilr.train import dist, preempt
from ilr.train.common import latest_checkpoint, question_schedule, rule_reward, truncate_log, write_log
from ilr.train.trackers import Curves
from ilr.train.rl import (gae, global_whiten, minibatch_rows, policy_loss_terms, token_rewards,
                                value_loss_terms)

# ----------------------------------------------------------------------------- model plumbing

def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


class ActorCritic(torch.nn.Module):
    """The actor and the critic as one module, so that one `accelerator.prepare` (one DDP or DeepSpeed
    engine) holds both and one optimizer steps both. `forward` returns the actor's logits over the completion
    positions (position t predicts completion token t) and the critic's values V(state before token t)."""

    def __init__(self, actor, critic):
        super().__init__()
        self.actor, self.critic = actor, critic

    def forward(self, input_ids, attention_mask, width_prompt: int, values: bool = True):
        pos = _positions(attention_mask)
        logits = self.actor(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos,
                            use_cache=False).logits[:, width_prompt - 1:-1]
        if not values:
            return logits, None
        backbone = getattr(self.critic, self.critic.base_model_prefix)
        h = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos,
                     use_cache=False).last_hidden_state
        return logits, self.critic.score(h[:, width_prompt - 1:-1]).squeeze(-1).float()


def _ref_logits(ref, input_ids, attention_mask, width_prompt: int) -> torch.Tensor:
    return ref(input_ids=input_ids, attention_mask=attention_mask, position_ids=_positions(attention_mask),
               use_cache=False).logits[:, width_prompt - 1:-1]


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


def _is_zero3(accelerator) -> bool:
    plugin = accelerator.state.deepspeed_plugin
    return plugin is not None and plugin.zero_stage == 3


def _gathered(accelerator, module):
    """The module with its full weights on every process (ZeRO-3 shards them; generation needs them whole)."""
    import contextlib

    if _is_zero3(accelerator):
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(module.parameters()))
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------- the trainer

def train_ppo(config: dict, method: str, model_name: str, seed: int, train_path: str, out_dir: str, *,
              reward_fn: Callable[[dict, str], float] | None = None, stop_after: int | None = None) -> None:
    """Train `model_name` with PPO; see the module docstring. `reward_fn(record, completion)` defaults to
    the rule-based reward; `stop_after` ends the run after that step (tests: simulate a kill)."""
    from accelerate import Accelerator
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, get_scheduler
    from transformers.utils import logging as hf_logging
    from trl.trainer.utils import disable_dropout_in_model, entropy_from_logits, selective_log_softmax

    from ilr.generation import TransformersEngine
    from ilr.prompts import encode_prompt, load as load_prompts
    from ilr.config import training_args
    from ilr.train.common import load_for_training, mixed_precision, publish_dir

    args = training_args(config, method)   # PpoArgs: training: + the method's keys, the schema's defaults
    reward_fn = reward_fn or (lambda record, text: rule_reward(record, text, args.reward_format))
    base = config["models"][model_name]["path"]
    paths = RunPaths(out_dir).member(model_name)   # ilr/layout.py: final/, checkpoints/, the logs
    steps, qps, G = int(args.steps), int(args.questions_per_step), int(args.num_generations)
    my_qps = dist.per_process(qps)
    temperature, beta = float(args.temperature), float(args.beta)
    if temperature <= 0:
        raise ValueError(f"methods.{method}: ppo samples, temperature must be > 0 (got {temperature})")
    # on a machine without GPUs accelerate runs N processes over gloo only when told cpu=True, which also
    # turns DeepSpeed off; with DeepSpeed it must be told the backend, or it takes every process for the
    # main one (each would then write the checkpoints' shared files)
    use_deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false") == "true"
    if use_deepspeed and not torch.cuda.is_available():
        from accelerate import PartialState

        PartialState(backend="gloo")
    # step_scheduler_with_optimizer=False: the schedule moves once per step; left to accelerate it would move
    # N times per step under N processes (it assumes a dataloader split into N per-process batches)
    accelerator = Accelerator(mixed_precision=mixed_precision(), step_scheduler_with_optimizer=False,
                              cpu=not torch.cuda.is_available() and not use_deepspeed)
    if dist.is_main():
        paths.root.mkdir(parents=True, exist_ok=True)
    schedule = question_schedule(train_path, steps, qps, seed)
    prompts_set = load_prompts(config["prompts"])

    # fp32 master weights whatever the checkpoint's dtype; bf16 is autocast on GPU (mixed_precision)
    actor, tokenizer = load_for_training(base)
    torch.manual_seed(stable_seed(seed, "critic-init"))   # the value head's random init, the same on every rank
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()   # the expected "lm_head unexpected, score missing" load report
    try:
        critic = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    critic.config.pad_token_id = tokenizer.pad_token_id
    for m in (actor, critic):
        disable_dropout_in_model(m)
        if args.gradient_checkpointing:   # recompute activations in backward, as TRL's trainers do
            m.activation_checkpointing_enable()
    model = ActorCritic(actor, critic)
    model.train()

    critic_lr = args.critic_learning_rate or args.learning_rate
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in actor.parameters() if p.requires_grad], "lr": float(args.learning_rate)},
         {"params": [p for p in critic.parameters() if p.requires_grad], "lr": float(critic_lr)}],
        weight_decay=float(args.weight_decay))
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=int(args.warmup_steps),
                              num_training_steps=steps)
    B = my_qps * G                                  # this process's sequences per step
    epochs, warmup = int(args.ppo_epochs), int(args.value_warmup_steps)
    try:
        minibatches = minibatch_rows(B, int(args.num_mini_batches))
    except ValueError as e:
        raise ValueError(f"methods.{method}.num_mini_batches must divide each process's sequences per step "
                         f"(questions_per_step / processes x num_generations = {B}): {e}") from None
    mb = min(max(1, int(args.micro_batch_size)), B // len(minibatches))
    n_micro = -(-(B // len(minibatches)) // mb)     # micro-batches per minibatch (= per optimizer update)
    grad_scale = dist.world_size()                  # DDP and DeepSpeed average gradients over the processes
    if accelerator.state.deepspeed_plugin is not None:
        # no dataloader: DeepSpeed is told the micro-batch, and accumulates n_micro backward passes per update
        # (it divides each loss by its accumulation steps: undone by grad_scale)
        ds = accelerator.state.deepspeed_plugin.deepspeed_config
        ds["train_micro_batch_size_per_gpu"] = mb
        ds["gradient_accumulation_steps"] = n_micro
        ds["train_batch_size"] = mb * n_micro * dist.world_size()
        grad_scale *= n_micro
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    device = accelerator.device
    minibatches = [rows.to(device) for rows in minibatches]
    ref = None
    if beta != 0.0:
        ref = AutoModelForCausalLM.from_pretrained(
            str(base), dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32)
        ref.requires_grad_(False)
        disable_dropout_in_model(ref)
        if _is_zero3(accelerator):
            from trl.models.utils import prepare_deepspeed
            ref = prepare_deepspeed(ref, accelerator)   # sharded like the trained model
        else:
            ref = ref.to(device).eval()
    unwrapped = accelerator.unwrap_model(model)

    resume = latest_checkpoint(paths.checkpoints)
    start = 0
    if resume:
        accelerator.load_state(str(resume / "state"))   # weights, optimizer, scheduler, every process's RNG
        start = int(json.loads((resume / "trainer_state.json").read_text())["global_step"])
    # Rows past the checkpoint came from a run that was killed later; they are redone.
    for log in (paths.metrics, paths.rollouts):
        truncate_log(log, start)
    curves = Curves(args, paths.tensorboard, start)   # metrics.jsonl's rows, for TensorBoard (main process)

    pad_id = tokenizer.pad_token_id
    bar = tqdm(range(start, steps), desc=f"ppo {model_name}", unit="step", initial=start, total=steps,
               disable=not dist.is_main())
    for step in bar:
        records = dist.my_slice(schedule[step * qps:(step + 1) * qps])
        torch.manual_seed(stable_seed(seed, step, dist.rank()))
        with _gathered(accelerator, unwrapped.actor):
            engine = TransformersEngine(unwrapped.actor, tokenizer, batch_size=int(args.generation_batch_size))
            groups = engine.sample([encode_prompt(tokenizer, prompts_set.solve(r)) for r in records], n=G,
                                   max_new_tokens=int(args.max_new_tokens), temperature=temperature)
        samples = [s for g in groups for s in g]
        rewards_q = [[float(reward_fn(rec, s.text)) for s in g] for rec, g in zip(records, groups)]
        scores = torch.tensor([r for rq in rewards_q for r in rq], device=device)
        batch = _batch(samples, pad_id, device)
        wp, mask = batch["width_prompt"], batch["mask"]
        ids, att, comp = batch["input_ids"], batch["attention_mask"], batch["completion_ids"]

        # Rollout quantities under the sampling policy (no gradient).
        with torch.no_grad(), accelerator.autocast():
            old_lp, ref_lp, old_v = [], [], []
            for i in range(0, B, mb):
                sl = slice(i, i + mb)
                logits, v = model(ids[sl], att[sl], wp)
                old_lp.append(selective_log_softmax(logits.float(), comp[sl], temperature=temperature))
                old_v.append(v)
                if ref is not None:
                    ref_lp.append(selective_log_softmax(_ref_logits(ref, ids[sl], att[sl], wp).float(), comp[sl],
                                                        temperature=temperature))
            old_lp = torch.cat(old_lp) * mask
            ref_lp = torch.cat(ref_lp) * mask if ref is not None else None
            old_v = torch.cat(old_v) * mask
            rewards, kl = token_rewards(scores, old_lp, ref_lp, mask, beta)
            adv, returns = gae(rewards, old_v, mask, float(args.gae_gamma), float(args.gae_lambda))
            if args.whiten_advantages:
                adv = global_whiten(adv, mask)

        # ppo_epochs passes over the step's batch, each as num_mini_batches optimizer updates (micro-batches
        # accumulate gradients); an update's loss is the token mean over its minibatch's completion tokens on
        # every process. Value warm-up (the first value_warmup_steps steps): the actor's loss weight and learning
        # rate are 0, so its weights and Adam moments stay as they are while the critic learns (verl's
        # critic_warmup, OpenRLHF's freezing_actor_steps); the actor still runs, so DDP sees every gradient.
        # Adam's step count does advance under any engine: after 16 warm-up updates the actor's first updates
        # are smaller than a fresh Adam's (0.5x), then up to 1.2x larger (1.07x at the 100th).
        frozen = step < warmup
        n_tok_mini = [max(n, 1.0) for n in dist.sum_all([mask[rows].sum().item() for rows in minibatches])]
        n_tok = sum(n_tok_mini)
        n_pass = n_tok * epochs                 # the loss metrics are means over every pass's tokens
        sums = {"pg": 0.0, "vf": 0.0, "pg_clip": 0.0, "vf_clip": 0.0, "entropy": 0.0, "ppo_kl": 0.0}
        norms, lr = [], scheduler.get_last_lr()[0]
        max_norm = float(args.max_grad_norm) if args.max_grad_norm else float("inf")
        for _ in range(epochs):
            for rows, n_k in zip(minibatches, n_tok_mini):
                if frozen:   # the scheduler sets every group's rate again at its next step
                    optimizer.param_groups[0]["lr"] = 0.0
                for i in range(0, len(rows), mb):
                    sl = rows[i:i + mb]
                    m = mask[sl]
                    with accelerator.autocast():
                        logits, v = model(ids[sl], att[sl], wp)
                    logits = logits.float()
                    lp = selective_log_softmax(logits, comp[sl], temperature=temperature)
                    pg, pg_c = policy_loss_terms(lp, old_lp[sl], adv[sl], float(args.epsilon))
                    vf, vf_c = value_loss_terms(v, old_v[sl], returns[sl], float(args.cliprange_value))
                    pg_sum, vf_sum = (pg * m).sum(), (vf * m).sum()
                    loss = (0.0 if frozen else 1.0) * pg_sum + float(args.vf_coef) * vf_sum
                    accelerator.backward(loss * grad_scale / n_k)
                    with torch.no_grad():
                        sums["pg"] += pg_sum.item()
                        sums["vf"] += vf_sum.item()
                        sums["pg_clip"] += (pg_c * m).sum().item()
                        sums["vf_clip"] += (vf_c * m).sum().item()
                        sums["entropy"] += (entropy_from_logits(logits / temperature) * m).sum().item()
                        sums["ppo_kl"] += ((old_lp[sl] - lp) * m).sum().item()
                if accelerator.state.deepspeed_plugin is None:   # DeepSpeed clips (gradient_clipping), steps itself
                    norms.append((float(accelerator.clip_grad_norm_(unwrapped.actor.parameters(), max_norm)),
                                  float(accelerator.clip_grad_norm_(unwrapped.critic.parameters(), max_norm))))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        scheduler.step()                        # once per step, as verl's actor and critic schedulers
        actor_norm, critic_norm = (sum(n) / len(norms) for n in zip(*norms)) if norms else (None, None)

        total = dict(zip(["n_seq", "reward", "reward_sq", "kl", "value", "ret", "length", "truncated",
                          *sums], dist.sum_all([
            B, scores.sum().item(), (scores ** 2).sum().item(), kl.sum().item(),
            (old_v * mask).sum().item(), (returns * mask).sum().item(), mask.sum().item(),
            sum(s.truncated for s in samples), *sums.values()])))
        n_seq = total["n_seq"]
        reward_mean = total["reward"] / n_seq
        row = {
            "step": step + 1,
            "reward_mean": reward_mean,
            "reward_std": (max(total["reward_sq"] - n_seq * reward_mean ** 2, 0.0) / max(n_seq - 1, 1)) ** 0.5,
            "kl": total["kl"] / n_seq if ref is not None else None,   # per sequence, summed over tokens
            "value_warmup": frozen,             # the actor was frozen this step
            "policy_loss": total["pg"] / n_pass,
            "value_loss": total["vf"] / n_pass,
            "policy_clipfrac": total["pg_clip"] / n_pass,
            "value_clipfrac": total["vf_clip"] / n_pass,
            "ppo_kl": total["ppo_kl"] / n_pass,   # mean log pi_old - log pi: 0 until the step's first update
            "entropy": total["entropy"] / n_pass,
            "value_mean": total["value"] / n_tok,
            "return_mean": total["ret"] / n_tok,
            "completion_length": total["length"] / n_seq,
            "truncated_fraction": total["truncated"] / n_seq,
            "grad_norm_actor": actor_norm,
            "grad_norm_critic": critic_norm,
            "learning_rate": lr,
        }
        rollout_rows = [{"step": step + 1, "question_id": rec["id"], "completions": [s.text for s in g],
                         "rewards": rq} for rec, g, rq in zip(records, groups, rewards_q)]
        write_log(paths.rollouts, [r for share in dist.gather(rollout_rows) for r in share])
        write_log(paths.metrics, [row])
        curves.log(row)
        bar.set_postfix(reward=f"{row['reward_mean']:.3f}", vloss=f"{row['value_loss']:.4f}")

        done = step + 1
        stopping = preempt.agreed() and done < steps   # a signal: save here and stop (preempt.py)
        if (args.save_steps and done % int(args.save_steps) == 0) or done == steps or stopping:
            _save_checkpoint(accelerator, paths, done, {"method": method, "model": model_name, "seed": seed,
                                                        "steps": steps}, args.save_total_limit)
        if stopping or (stop_after is not None and done >= stop_after):
            bar.close()
            curves.close()
            if stopping:
                raise preempt.Interrupted(done)
            return
    bar.close()
    curves.close()

    def write_final(tmp: Path) -> None:
        state = accelerator.get_state_dict(model)          # every process: ZeRO-3 gathers the shards
        if dist.is_main():
            actor_state = {k[len("actor."):]: v for k, v in state.items() if k.startswith("actor.")}
            unwrapped.actor.save_pretrained(tmp, state_dict=actor_state)
            tokenizer.save_pretrained(tmp)
    publish_dir(paths.final, write_final)


def _save_checkpoint(accelerator, paths: RunPaths, step: int, info: dict, limit: int | None) -> None:
    from ilr.io import write_json
    from ilr.train.common import publish_dir

    def write(tmp: Path) -> None:
        # every process writes its part (DeepSpeed: its shards; all: its RNG state); the main process the rest
        accelerator.save_state(str(tmp / "state"), safe_serialization=False)
        dist.barrier()
        if dist.is_main():
            write_json(tmp / "trainer_state.json", {"global_step": step, **info})   # marks it complete
    publish_dir(paths.checkpoint(step), write, check=lambda tmp: None)
    if limit and dist.is_main():
        saved = paths.checkpoints.glob("checkpoint-*")
        done = sorted((p for p in saved if (p / "trainer_state.json").is_file()),
                      key=lambda p: int(p.name.split("-")[1]))
        for old in done[:-int(limit)]:
            shutil.rmtree(old)


def train(config: dict, args) -> None:
    train_ppo(config, args.method, args.group, args.seed, args.train, args.out_dir)
