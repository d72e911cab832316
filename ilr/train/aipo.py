"""AIPO (METHOD.md "AIPO"; seeds/003): GRPO whose rollouts consult three agents, trained with a clipped
importance-sampling coefficient, on TRL's GRPOTrainer seam.

The policy is trained exactly as `grpo` is (same question schedule, G rollouts per question, TRL's loss,
reference model, checkpoints), with two pieces of its own:

- `rollout_func` (TRL's seam for custom rollouts): `RolloutBuilder` samples the G rollouts of each of this
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
import re
from dataclasses import dataclass, field
from pathlib import Path

from ilr.seeding import stable_seed
from ilr.train import dist, preempt
from ilr.train.common import (grpo_config, load_for_training, question_schedule, quiet, records_dataset,
                              rule_reward, train_and_save, write_log)

AGENTS = ("verify", "knowledge", "reasoning")
CALL = re.compile(r'<consult agent="([A-Za-z_]+)">(.*?)</consult>', re.S)


# ------------------------------------------------------------------------------------------ one rollout

@dataclass
class Consult:
    agent: str
    request: str | None           # what the policy asked (trigger request); None for stuck
    guidance: str                 # the agent's reply, as inserted
    call_ids: list[int]           # the policy's own tokens of the call (empty for stuck)
    guidance_ids: list[int]       # the inserted guidance markup: agent tokens, never trained


@dataclass
class Rollout:
    """One of a question's G rollouts: the policy's tokens `chunks[i]` come before `consults[i]`."""

    prompt_ids: list[int]
    chunks: list[list[int]]
    consults: list[Consult] = field(default_factory=list)
    reward: float = 0.0

    def after(self) -> list[tuple[Consult, list[int]]]:
        """Each consultation with the policy's tokens after it (none yet while the rollout is being built)."""
        return [(c, self.chunks[i + 1] if i + 1 < len(self.chunks) else []) for i, c in enumerate(self.consults)]

    def guided(self) -> list[int]:
        """The completion as sampled: calls and guidance in context."""
        return self.trained("keep")[0]

    def stripped(self) -> list[int]:
        """The policy's own text without the calls and guidance (what it must learn to write alone)."""
        return [t for chunk in self.chunks for t in chunk]

    def policy_tokens(self) -> int:
        return sum(map(len, self.chunks)) + sum(len(c.call_ids) for c in self.consults)

    def at_tokens(self) -> list[int]:
        """Where each consultation sits in the stripped completion (its number of tokens before it)."""
        return [sum(map(len, self.chunks[:i + 1])) for i in range(len(self.consults))]

    def trained(self, context: str) -> tuple[list[int], list[int]]:
        """The completion TRL trains and its env_mask (1: the policy's token, 0: an agent's token)."""
        if context == "strip":
            ids = self.stripped()
            return ids, [1] * len(ids)
        ids, mask = list(self.chunks[0]), [1] * len(self.chunks[0])
        for c, chunk in self.after():
            ids += c.call_ids + c.guidance_ids + chunk
            mask += [1] * len(c.call_ids) + [0] * len(c.guidance_ids) + [1] * len(chunk)
        return ids, mask

    def post_guidance(self) -> tuple[list[int], list[int]]:
        """The post-guidance tokens: their positions in the stripped completion and in the guided one."""
        stripped, guided = [], []
        s = g = len(self.chunks[0])
        for c, chunk in self.after():
            g += len(c.call_ids) + len(c.guidance_ids)
            stripped += range(s, s + len(chunk))
            guided += range(g, g + len(chunk))
            s, g = s + len(chunk), g + len(chunk)
        return stripped, guided


def find_call(tokenizer, ids: list[int], agents) -> tuple[int, int, str, str] | None:
    """The policy's first complete call to one of `agents` in `ids`: (first token, end token, agent, request).

    Token bounds from the text: the call ends with the first token whose prefix text holds `</consult>`, and
    starts at the token holding its `<` (a token that also holds text before the call goes with the call).
    Calls naming no agent of `agents` are the policy's text like any other."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    match = next((m for m in CALL.finditer(text) if m.group(1) in agents), None)
    if match is None:
        return None

    def length(k: int) -> int:
        return len(tokenizer.decode(ids[:k], skip_special_tokens=True))

    lo, hi = 1, len(ids)                 # smallest k with length(k) >= end of the call
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if length(mid) >= match.end() else (mid + 1, hi)
    end = lo
    lo, hi = 0, end                      # largest j with length(j) <= start of the call
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if length(mid) <= match.start() else (lo, mid - 1)
    return lo, end, match.group(1), match.group(2).strip()


def generated(outs: list[list]) -> int:
    """The tokens an engine generated for these samples."""
    return sum(len(s.completion_ids) for o in outs for s in o)


def synced_sample(engine, prompts: list[list[int]], filler: list[int], **kwargs) -> list:
    """engine.sample(prompts) on every process of the job with as many prompts as the busiest process, so that
    its collectives (ZeRO-3's gathered weights and synced generate(), vLLM's weight sync) match; a process
    with fewer pads with `filler` and drops what it generates. No process samples when none has a prompt."""
    most = max(dist.gather(len(prompts)))
    if most == 0:
        return []
    padded = list(prompts) + [filler] * (most - len(prompts))
    return engine.sample(padded, **kwargs)[:len(prompts)]


# ------------------------------------------------------------------------------------------ the agents

class Agents:
    """The three agents: prompt templates on the frozen helper model's engine (greedy by default:
    `aipo.helper_temperature`; replies at most `aipo.guidance_max_new_tokens` tokens)."""

    def __init__(self, engine, prompts, temperature: float, max_new_tokens: int):
        self.engine, self.prompts = engine, prompts
        self.temperature, self.max_new_tokens = temperature, max_new_tokens
        self.generated = 0      # tokens the agents generated (this process, since the last reset)

    def ask(self, questions: list[tuple[str, dict, str, str | None]], filler_record: dict) -> list[str]:
        """The replies to (agent, record, partial solution, request) questions, in order."""
        from ilr.prompts import encode_prompt

        tok = self.engine.tokenizer
        ids = [encode_prompt(tok, self.prompts.agent(a, r, partial, req)) for a, r, partial, req in questions]
        filler = encode_prompt(tok, self.prompts.agent(AGENTS[0], filler_record, "", None))
        outs = synced_sample(self.engine, ids, filler, n=1, temperature=self.temperature,
                             max_new_tokens=self.max_new_tokens)
        self.generated += generated(outs)
        return [o[0].text.strip() for o in outs]


def load_helper(config: dict, method: dict):
    """The helper model's engine: its base checkpoint, for inference only (bf16 on this process's GPU)."""
    import os

    import torch

    from ilr.generation import TransformersEngine, load_model

    path = config["models"][method["helper"]]["path"]
    if torch.cuda.is_available():
        gpu = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))   # this process's GPU
        model, tok = load_model(path, dtype=torch.bfloat16, on=gpu)
    else:
        model, tok = load_model(path, on="cpu")
    model.eval()
    model.requires_grad_(False)
    return TransformersEngine(model, tok, batch_size=method["helper_batch_size"])


# ------------------------------------------------------------------------------------------ rollouts

class RolloutBuilder:
    """G rollouts per question with their consultations (`aipo.trigger`), from token-id engines."""

    def __init__(self, method: dict, args: dict, prompts, tokenizer, agents: Agents):
        self.method, self.prompts, self.tokenizer, self.agents = method, prompts, tokenizer, agents
        self.G, self.C, self.T = args["num_generations"], args["max_new_tokens"], args["temperature"]
        self.format_weight = args["reward_format"]   # the study's reward (ilr.train.common.rule_reward)
        self.allowed = tuple(method["agents"])
        self.generated = 0      # tokens the policy generated (this process, since the last reset), discarded ones too

    def prompt_text(self, record: dict) -> str:
        if self.method["trigger"] == "request":
            return self.prompts.consult_request(record, self.method["max_consults"])
        return self.prompts.solve(record)

    def text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def guidance_ids(self, reply: str) -> list[int]:
        return list(self.tokenizer(self.prompts.guidance(reply), add_special_tokens=False)["input_ids"])

    def score(self, record: dict, r: Rollout) -> float:
        """Correctness of the policy's own text, minus the consultations' cost."""
        return (rule_reward(record, self.text(r.stripped()), self.format_weight)
                - self.method["consult_cost"] * len(r.consults))

    def build(self, records: list[dict], positions: list[int], policy) -> tuple[list[list[Rollout]], list[dict]]:
        """Rollouts per question, and per question what decided its consultations (`stuck` and the plain
        rewards for trigger stuck, else {})."""
        from ilr.prompts import encode_prompt

        prompt_ids = [encode_prompt(self.tokenizer, self.prompt_text(r)) for r in records]
        outs = policy.sample(prompt_ids, n=self.G, max_new_tokens=self.C, temperature=self.T)
        self.generated += generated(outs)
        groups = [[Rollout(p, [list(s.completion_ids)]) for s in o] for p, o in zip(prompt_ids, outs)]
        if self.method["trigger"] == "stuck":
            notes = self.stuck(records, positions, groups, policy)
        else:
            self.request(records, groups, policy)
            notes = [{} for _ in records]
        for record, group in zip(records, groups):
            for r in group:
                r.reward = self.score(record, r)
        return groups, notes

    def stuck(self, records, positions, groups, policy) -> list[dict]:
        """Trigger `stuck`: a question no plain rollout solves gets G continuations of its first rollout cut at
        `aipo.cut`, after one agent's guidance (`aipo.agents` in turn over the schedule's positions)."""
        plain = [[rule_reward(rec, self.text(r.stripped())) for r in g] for rec, g in zip(records, groups)]
        stuck = [q for q, rewards in enumerate(plain) if not any(rewards)]
        questions, cuts = [], []
        for q in stuck:
            ids = groups[q][0].chunks[0]
            prefix = ids[:int(self.method["cut"] * len(ids))]
            agent = self.allowed[positions[q] % len(self.allowed)]
            questions.append((agent, records[q], self.text(prefix), None))
            cuts.append(prefix)
        replies = self.agents.ask(questions, records[0])
        conts = synced_sample(policy, [groups[q][0].prompt_ids + prefix + self.guidance_ids(reply)
                                       for q, prefix, reply in zip(stuck, cuts, replies)],
                              groups[0][0].prompt_ids, n=self.G, temperature=self.T,
                              max_new_tokens=max([self.C - len(p) for p in cuts], default=1) or 1)
        self.generated += generated(conts)
        for q, prefix, reply, (agent, *_), samples in zip(stuck, cuts, replies, questions, conts):
            budget = self.C - len(prefix)
            groups[q] = [Rollout(groups[q][0].prompt_ids, [list(prefix), list(s.completion_ids)[:budget]],
                                 [Consult(agent, None, reply, [], self.guidance_ids(reply))]) for s in samples]
        return [{"stuck": q in stuck, "plain_rewards": plain[q]} for q in range(len(records))]

    def request(self, records, groups, policy) -> None:
        """Trigger `request`: rounds of (find each rollout's first call, ask its agent, continue after the
        guidance), at most `aipo.max_consults` per rollout; calls beyond that stay unanswered text."""
        flat = [(q, r) for q, g in enumerate(groups) for r in g]
        for _ in range(self.method["max_consults"]):
            pending = []
            for q, r in flat:
                call = find_call(self.tokenizer, r.chunks[-1], self.allowed)
                if call is not None:
                    pending.append((q, r, call))
            if not dist.any_rank(bool(pending)):
                break
            questions = []
            for q, r, (start, end, agent, request) in pending:
                tail = r.chunks[-1]
                r.chunks[-1] = tail[:start]                       # what follows the call is resampled
                r.consults.append(Consult(agent, request, "", tail[start:end], []))
                questions.append((agent, records[q], self.text(r.stripped()), request))
            replies = self.agents.ask(questions, records[0])
            for (q, r, _), reply in zip(pending, replies):
                r.consults[-1].guidance, r.consults[-1].guidance_ids = reply, self.guidance_ids(reply)
            budgets = [self.C - r.policy_tokens() for _, r, _ in pending]
            conts = synced_sample(policy, [r.prompt_ids + r.guided() for _, r, _ in pending], groups[0][0].prompt_ids,
                                  n=1, temperature=self.T, max_new_tokens=max(max(budgets, default=1), 1))
            self.generated += generated(conts)
            for (q, r, _), budget, samples in zip(pending, budgets, conts):
                r.chunks.append(list(samples[0].completion_ids)[:max(budget, 0)])


# ------------------------------------------------------------------------------------------ the TRL seam

class Seam:
    """What AIPO adds to TRL's GRPOTrainer: the rollout (rollout_func) and, once TRL has scored it, the
    importance weights, the rollout log and the metrics (`finish`)."""

    def __init__(self, method: dict, args: dict, seed: int, schedule: list[dict], run_dir: Path, builder,
                 use_vllm: bool):
        self.method, self.args, self.seed, self.schedule = method, args, seed, schedule
        self.run_dir, self.builder, self.use_vllm = run_dir, builder, use_vllm
        self.batch: list[Rollout] = []
        self.notes: list[dict] = []
        self.records: list[dict] = []

    def my_questions(self, step: int) -> tuple[list[dict], list[int]]:
        """This process's questions of the step and their positions in the schedule."""
        n = self.args["questions_per_step"]
        positions = dist.my_slice(list(range(step * n, (step + 1) * n)))
        return [self.schedule[i] for i in positions], positions

    def engine(self, trainer):
        """How the policy samples: TRL's colocated vLLM engine, or generate() on its (gathered) weights."""
        from trl.models.utils import unwrap_model_for_generation

        from ilr.generation import TransformersEngine
        from ilr.vllm_engine import TrainerVLLMEngine

        if self.use_vllm:
            return TrainerVLLMEngine(trainer)
        return TransformersEngine(trainer.model, trainer.processing_class, gather=lambda: unwrap_model_for_generation(
            trainer.model_wrapped, trainer.accelerator, gather_deepspeed3_params=True))

    def rollout_func(self, prompts: list, trainer) -> dict:
        import torch

        from ilr.prompts import trl_prompt

        step = trainer.state.global_step                     # the update this rollout feeds is step + 1
        records, positions = self.my_questions(step)
        G = self.args["num_generations"]
        expected = [trl_prompt(trainer.processing_class, self.builder.prompt_text(r)) for r in records]
        if list(prompts[::G]) != expected:
            raise RuntimeError(f"aipo: TRL handed step {step} other questions than the schedule's share of process "
                               f"{dist.rank()} (is shuffle_dataset off and the batch questions_per_step / processes "
                               "* G?)")
        torch.manual_seed(stable_seed(self.seed, "aipo-rollout", step, dist.rank()))   # independent of resumes
        groups, self.notes = self.builder.build(records, positions, self.engine(trainer))
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
        write_log(self.run_dir / "rollouts.jsonl", rows)
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
            raw = torch.exp(stripped_lp[b, s_pos] - guided_lp[b, g_pos])
            clipped = raw.clamp(lo, hi)
            w[b, s_pos] = clipped
            stats.append({"mean": clipped.mean().item(), "min": clipped.min().item(), "max": clipped.max().item(),
                          "clipped_fraction": ((raw < lo) | (raw > hi)).float().mean().item()})
        return w, stats

    def log_rows(self, step: int, stats: list) -> list[dict]:
        G = self.args["num_generations"]
        rows = []
        for q, (record, note) in enumerate(zip(self.records, self.notes)):
            rollouts = []
            for r, s in zip(self.batch[q * G:(q + 1) * G], stats[q * G:(q + 1) * G]):
                rollouts.append({
                    "completion": self.builder.text(r.stripped()),
                    "consults": [{"agent": c.agent, "request": c.request, "guidance": c.guidance, "at_token": at}
                                 for c, at in zip(r.consults, r.at_tokens())],
                    "reward": r.reward, "is_weight": s})
            rows.append({"step": step, "question_id": record["id"], "trigger": self.method["trigger"], **note,
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


def aipo_reward(prompts, completions, aipo_reward, **_):
    """The reward the rollout computed on the policy's own text (TRL's reward function interface)."""
    return list(aipo_reward)


# ------------------------------------------------------------------------------------------ the run

def train_aipo(config: dict, method_name: str, model_name: str, seed: int, train_path: str, out_dir: str) -> None:
    from ilr import config as cfg
    from ilr.prompts import load as load_prompts, trl_prompt
    from ilr.vllm_engine import trl_vllm_args

    method = cfg.method_config(config, method_name)
    args = cfg.training_args(config, method_name)
    run_dir = Path(out_dir) / model_name
    run_dir.mkdir(parents=True, exist_ok=True)
    prompts = load_prompts(config["prompts"])
    # the helper before the GRPOConfig: under DeepSpeed ZeRO-3 the config makes from_pretrained shard what it
    # loads (zero.Init), and the helper must be whole on every process
    helper = load_helper(config, method)
    vllm = trl_vllm_args(config["generation"], config["models"][model_name]["size"], own_rollouts=True)
    trl_args = grpo_config(args, seed, run_dir / "checkpoints", disable_tqdm=not dist.is_main(), **vllm)
    model, tokenizer = load_for_training(config["models"][model_name]["path"])
    agents = Agents(helper, prompts, method["helper_temperature"], method["guidance_max_new_tokens"])
    builder = RolloutBuilder(method, args, prompts, tokenizer, agents)
    schedule = question_schedule(train_path, args["steps"], args["questions_per_step"], seed)
    seam = Seam(method, args, seed, schedule, run_dir, builder, vllm["use_vllm"])
    dataset = records_dataset(schedule, lambda r: trl_prompt(tokenizer, builder.prompt_text(r)))
    trainer = quiet(trainer_class()(model=model, reward_funcs=aipo_reward, train_dataset=dataset,
                                    processing_class=tokenizer, args=trl_args, rollout_func=seam.rollout_func))
    trainer.seam = seam
    trainer.add_callback(preempt.stop_callback())
    train_and_save(trainer, run_dir, args["steps"])


def train(config: dict, args) -> None:
    train_aipo(config, args.method, args.group, args.seed, args.train, args.out_dir)
