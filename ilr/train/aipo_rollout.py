"""AIPO's rollouts (METHOD.md "AIPO"): G rollouts per question that consult three agents on a frozen helper.

`RolloutBuilder` samples each question's G rollouts from the policy's engine and lets them consult the
`Agents` (prompt templates on the helper's engine) as `aipo.trigger` says: `request` (the policy writes a
`<consult agent="...">` call, found by `find_call`, and continues after the inserted guidance) or `stuck`
(the first rollout of a question that no plain rollout solves is cut and continued after guidance). A
`Rollout` keeps the policy's own tokens apart from the calls and the guidance, so that the trainer
(ilr/train/aipo.py) can train it as sampled (`keep`) or without them (`strip`). Every engine call that may be
a collective goes through `synced_sample`, so that the processes of a job call it alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ilr.config import TrainingArgs
from ilr.train import dist
from ilr.train.common import rule_reward

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

    def __init__(self, method: dict, args: TrainingArgs, prompts, tokenizer, agents: Agents):
        self.method, self.prompts, self.tokenizer, self.agents = method, prompts, tokenizer, agents
        self.G, self.C, self.T = args.num_generations, args.max_new_tokens, args.temperature
        self.format_weight = args.reward_format   # the study's reward (ilr.train.common.rule_reward)
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
