"""AIPO (METHOD.md "AIPO"; seeds/003): GRPO whose rollouts consult three agents, trained with a clipped
importance-sampling coefficient, on TRL's GRPOTrainer seam.

The policy is trained exactly as `grpo` is (same question schedule, G rollouts per question, TRL's loss,
reference model, checkpoints), with two pieces of its own:

- `rollout_func` (TRL's seam for custom rollouts): `RolloutBuilder` (ilr/train/aipo_rollout.py) samples the G rollouts of each of this
  process's questions and lets them consult the agents, which are three prompt templates
  (prompts/<dir>/agent_{verify,knowledge,reasoning}.txt) on a frozen helper model (`aipo.helper`, a model of
  `models:`, loaded from its base checkpoint for inference only: where the policy is the helper, its own
  frozen base copy helps). When it consults is `aipo.trigger`:
    request  the policy's prompt (consult_request.txt) describes the agents and the call
             `<consult agent="verify|knowledge|reasoning">what it asks</consult>`; the rollout is cut after
             the first call, the agent's reply is inserted as prompts/<dir>/guidance.txt
             (`<guidance>...</guidance>`) and the policy continues; at most `aipo.max_consults` per rollout.
    stuck    for a question none of whose G plain rollouts is right, the first rollout is cut at `aipo.cut`
             of its tokens, an agent is consulted there (`aipo.agents` in turn, by the question's position
             in the schedule) and G guided continuations replace the G plain rollouts.
  The policy's token budget (`max_new_tokens`) counts its own tokens only; agent tokens come on top.
- the loss. Agent tokens are never trained. `aipo.context: keep` trains the rollout as sampled, guidance
  in context, its tokens masked (TRL's `env_mask`). `aipo.context: strip` (default) trains the policy's
  tokens without the consult calls and guidance, the tokens after the first guidance weighted by
      w_t = clip(pi_theta(y_t | stripped context) / pi_old(y_t | guided context), is_clip[0], is_clip[1]),
  without gradient through w. With one optimizer step per generation (TRL's default), pi_old is the policy
  of this step, so both terms come from forward passes of the current weights (`_get_per_token_logps_and_
  entropies`, TRL's own, under no_grad), made right after TRL scored the rollouts. w enters the loss as a
  per-token advantage A_t = w_t A: TRL's `_compute_loss` takes (B, T) advantages as they are, and for
  w > 0 PPO's min(r A_t, clip(r) A_t) = w_t min(r A, clip(r) A), the clipped objective weighted by w_t.
  That is the whole override: `_generate_and_score_completions` calls TRL's, then reweights the advantages.
  Under either context the prompt is the one the rollout was sampled under: for trigger `request` the prompt
  that describes the agents (consult_request.txt), so the stripped sequence trains as an answer the policy
  wrote without asking, under the same instructions; for `stuck` the plain solve prompt.

Reward: the rule-based correctness of the policy's own text (calls and guidance stripped), minus
`aipo.consult_cost` per consultation; advantages over the question's G rollouts as in GRPO.

Logs, written once per step by the main process from every process's share: `<model>/rollouts.jsonl` (one line
per (step, question): step, question_id, trigger, rollouts: [{completion, consults: [{agent, request,
guidance, at_token}], reward, is_weight: {mean, min, max, clipped_fraction}}]; `at_token` counts the
policy's tokens of `completion` before the consultation; `is_weight` is over the post-guidance tokens, null
when there are none or with `keep`; trigger `stuck` adds `stuck` and the G `plain_rewards` that decided it),
and TRL's log history in `<model>/metrics.jsonl` with `aipo/*` metrics per step: the consultation rate per
agent, the reward with and without a consultation, the mean weight and the fraction of clipped weights, and
the tokens the policy and the agents generated.

N processes (ilr/train/dist.py): each process rolls out its slice of the step's questions. Everything that
may be a collective (a generate() under DeepSpeed ZeRO-3 syncs the processes at every token, gathering the
policy's weights, vLLM's weight sync) is called the same number of times on every process, with the same
number of prompts: a process with fewer consultations than the busiest pads its batch (`synced_sample`).
"""

from __future__ import annotations

import math
from pathlib import Path

from ilr.config import TrainingArgs
from ilr.io import read_jsonl
from ilr.layout import RunPaths
from ilr.train import dist, preempt
from ilr.train.aipo_rollout import AGENTS, Agents, Rollout, RolloutBuilder, load_helper
from ilr.train.common import (check_handed, grpo_trainer, load_for_training, model_grpo_config, question_schedule,
                              records_dataset, rollout_engine, rollout_reward, seed_rollout, train_and_save,
                              write_log)


# ------------------------------------------------------------------------------------------ the TRL seam

class Seam:
    """What AIPO adds to TRL's GRPOTrainer: the rollout (rollout_func) and, once TRL has scored it, the
    importance weights, the rollout log and the metrics (`finish`)."""

    def __init__(self, method: dict, args: TrainingArgs, seed: int, schedule: list[dict], run_dir: Path, builder,
                 use_vllm: bool):
        self.method, self.args, self.seed, self.schedule = method, args, seed, schedule
        self.run_dir, self.builder, self.use_vllm = run_dir, builder, use_vllm
        self.batch: list[Rollout] = []
        self.notes: list[dict] = []
        self.records: list[dict] = []

    def my_questions(self, step: int) -> tuple[list[dict], list[int]]:
        """This process's questions of the step and their positions in the schedule."""
        n = self.args.questions_per_step
        positions = dist.my_slice(list(range(step * n, (step + 1) * n)))
        return [self.schedule[i] for i in positions], positions

    def rollout_func(self, prompts: list, trainer) -> dict:
        from ilr.prompts import trl_prompt

        step = trainer.state.global_step                     # the update this rollout feeds is step + 1
        records, positions = self.my_questions(step)
        check_handed("aipo", step, prompts, [trl_prompt(trainer.processing_class, self.builder.prompt_text(r))
                                             for r in records], self.args.num_generations)
        seed_rollout(self.seed, "aipo-rollout", step)
        groups, self.notes = self.builder.build(records, positions, rollout_engine(trainer, self.use_vllm))
        self.records = records
        self.batch = [r for g in groups for r in g]
        context = self.method["context"]
        trained = [r.trained(context) for r in self.batch]
        return {"prompt_ids": [r.prompt_ids for r in self.batch], "completion_ids": [ids for ids, _ in trained],
                "logprobs": None, "env_mask": [mask for _, mask in trained],
                "aipo_reward": [r.reward for r in self.batch]}

    # -- after TRL scored the rollouts ------------------------------------------------------------
    def finish(self, trainer, out: dict) -> dict:
        import torch

        weights, stats = self.weights(trainer, out)
        if weights is not None:   # the coefficient, as a per-token advantage (see the module docstring)
            out["advantages"] = out["advantages"].unsqueeze(1) * weights
        out["aipo_weight"] = weights if weights is not None else torch.ones_like(out["completion_mask"],
                                                                                dtype=torch.float32)
        step = trainer.state.global_step + 1
        rows = [row for share in dist.gather(self.log_rows(step, stats)) for row in share]
        write_log(RunPaths(self.run_dir).rollouts, rows)
        # the tokens generated this step, every process's: the cost side of the consultations
        policy, helper = dist.sum_all([self.builder.generated, self.builder.agents.generated])
        self.builder.generated = self.builder.agents.generated = 0
        metrics = {**self.metrics(rows), "aipo/policy_tokens": policy, "aipo/helper_tokens": helper}
        for key, value in metrics.items():
            trainer._metrics["train"][key].append(value)
        return out

    def weights(self, trainer, out: dict):
        """w_t per trained token (1 before the first guidance) and its statistics per rollout; None with
        `context: keep`, or when no process consulted this step."""
        import torch

        from ilr.train.rl import importance_weight

        if self.method["context"] == "keep" or not dist.any_rank(any(r.consults for r in self.batch)):
            return None, [None] * len(self.batch)
        pad = trainer.processing_class.pad_token_id
        guided = [torch.tensor(r.guided(), dtype=torch.long) for r in self.batch]
        width = max(1, max(map(len, guided)))
        device = out["completion_ids"].device
        g_ids = torch.full((len(guided), width), pad, dtype=torch.long, device=device)
        g_mask = torch.zeros_like(g_ids)
        for b, ids in enumerate(guided):
            g_ids[b, :len(ids)], g_mask[b, :len(ids)] = ids.to(device), 1
        stripped_lp = per_token_logps(trainer, out["prompt_ids"], out["prompt_mask"], out["completion_ids"],
                                      out["completion_mask"])
        guided_lp = per_token_logps(trainer, out["prompt_ids"], out["prompt_mask"], g_ids, g_mask)
        lo, hi = self.method["is_clip"]
        w = torch.ones_like(stripped_lp)
        stats = []
        for b, r in enumerate(self.batch):
            s_pos, g_pos = r.post_guidance()
            if not s_pos:
                stats.append(None)
                continue
            clipped, raw = importance_weight(stripped_lp[b, s_pos], guided_lp[b, g_pos], lo, hi)
            w[b, s_pos] = clipped
            stats.append({"mean": clipped.mean().item(), "min": clipped.min().item(), "max": clipped.max().item(),
                          "clipped_fraction": ((raw < lo) | (raw > hi)).float().mean().item()})
        return w, stats

    def log_rows(self, step: int, stats: list) -> list[dict]:
        G = self.args.num_generations
        rows = []
        for q, (record, note) in enumerate(zip(self.records, self.notes)):
            rollouts = []
            for r, s in zip(self.batch[q * G:(q + 1) * G], stats[q * G:(q + 1) * G]):
                rollouts.append({
                    "completion": self.builder.text(r.stripped()),
                    "consults": [{"agent": c.agent, "request": c.request, "guidance": c.guidance, "at_token": at}
                                 for c, at in zip(r.consults, r.at_tokens())],
                    "reward": r.reward, "is_weight": s})
            # completions and rewards top-level too: the row shape every single-model trainer logs (grpo, ppo)
            rows.append({"step": step, "question_id": record["id"], "trigger": self.method["trigger"], **note,
                         "completions": [r["completion"] for r in rollouts], "rewards": [r["reward"] for r in rollouts],
                         "rollouts": rollouts})
        return rows

    def metrics(self, rows: list[dict]) -> dict[str, float]:
        """The step's consultation rate per agent, reward with and without a consultation, weights (NaN where
        undefined: TRL logs it as null)."""
        rollouts = [r for row in rows for r in row["rollouts"]]
        consulted = [r for r in rollouts if r["consults"]]
        plain = [r for r in rollouts if not r["consults"]]
        mean = lambda xs: sum(xs) / len(xs) if xs else math.nan   # noqa: E731
        out = {"aipo/consult_rate": len(consulted) / len(rollouts)}
        for a in AGENTS:
            asked = sum(any(c["agent"] == a for c in r["consults"]) for r in rollouts)
            out[f"aipo/consult_rate/{a}"] = asked / len(rollouts)
        out["aipo/reward_consulted"] = mean([r["reward"] for r in consulted])
        out["aipo/reward_plain"] = mean([r["reward"] for r in plain])
        weighted = [r["is_weight"] for r in rollouts if r["is_weight"]]
        out["aipo/is_weight_mean"] = mean([w["mean"] for w in weighted])
        out["aipo/is_clipped_fraction"] = mean([w["clipped_fraction"] for w in weighted])
        if self.method["trigger"] == "stuck":
            out["aipo/stuck_fraction"] = mean([float(row["stuck"]) for row in rows])
        return out


def per_token_logps(trainer, prompt_ids, prompt_mask, completion_ids, completion_mask):
    """log pi(completion token | everything before it) under the trainer's current weights, as TRL computes it
    for the loss (its own forward), without gradient."""
    import torch
    from trl.models.utils import disable_gradient_checkpointing

    with torch.no_grad(), disable_gradient_checkpointing(trainer.model, trainer.args.gradient_checkpointing_kwargs):
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, torch.cat([prompt_ids, completion_ids], dim=1),
            torch.cat([prompt_mask, completion_mask], dim=1), completion_ids.size(1),
            batch_size=trainer.args.per_device_train_batch_size)
    return logps


def trainer_class():
    from trl import GRPOTrainer

    class AIPOTrainer(GRPOTrainer):
        """TRL's GRPOTrainer; after TRL scores a generation batch, the AIPO seam reweights its advantages."""

        seam: Seam

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            return self.seam.finish(self, out) if self.model.training else out

    return AIPOTrainer


# ------------------------------------------------------------------------------------------ the run

def train_aipo(config: dict, method_name: str, model_name: str, seed: int, train_path: str, out_dir: str) -> None:
    from ilr import config as cfg
    from ilr.prompts import load as load_prompts, trl_prompt

    method = cfg.method_config(config, method_name)
    args = cfg.training_args(config, method_name)
    paths = RunPaths(out_dir).member(model_name)
    run_dir = paths.root
    run_dir.mkdir(parents=True, exist_ok=True)
    prompts = load_prompts(config["prompts"])
    # the helper before the GRPOConfig: under DeepSpeed ZeRO-3 the config makes from_pretrained shard what it
    # loads (zero.Init), and the helper must be whole on every process
    helper = load_helper(config, method)
    trl_args = model_grpo_config(config, args, seed, model_name, run_dir,
                                 disable_tqdm=not dist.is_main())
    model, tokenizer = load_for_training(config["models"][model_name]["path"])
    agents = Agents(helper, prompts, method["helper_temperature"], method["guidance_max_new_tokens"])
    builder = RolloutBuilder(method, args, prompts, tokenizer, agents)
    schedule = question_schedule(train_path, args.steps, args.questions_per_step, seed)
    seam = Seam(method, args, seed, schedule, run_dir, builder, trl_args.use_vllm)
    dataset = records_dataset(schedule, lambda r: trl_prompt(tokenizer, builder.prompt_text(r)))
    trainer = grpo_trainer(trainer_class(), model, tokenizer, dataset, rollout_reward("aipo_reward"), trl_args,
                           preempt.stop_callback(), rollout_func=seam.rollout_func,
                           shared_prefix=args.shared_prefix)
    trainer.seam = seam
    train_and_save(trainer, run_dir, args.steps, summary=lambda: consult_summary(paths.rollouts))


def consult_summary(rollouts: Path) -> dict:
    """How often the run consulted (training_summary.json; the main table's AIPO rows show it): the share of
    rollouts with a consultation, in all and per agent, over the whole run."""
    rows = [r for row in read_jsonl(rollouts) for r in row["rollouts"]]
    n = max(len(rows), 1)
    return {"consult_rate": sum(bool(r["consults"]) for r in rows) / n,
            "consult_rate_per_agent": {a: sum(any(c["agent"] == a for c in r["consults"]) for r in rows) / n
                                       for a in AGENTS}}


def train(config: dict, args) -> None:
    train_aipo(config, args.method, args.group, args.seed, args.train, args.out_dir)
