"""The context budget: the longest sequence (prompt + completion) of every stage, from the config's token
limits, against `generation.max_model_len` (checked by ilr.config.check, so by `python -m ilr check-config`
and the Snakefile before any job).

`generation.max_model_len` is vLLM's context: the offline engine's, and TRL's colocated one's
(`vllm_max_model_length`); TRL 1.16's GRPOConfig has no prompt limit of its own. A prompt longer than it is an
error, and a completion that runs into it stops there, short of its `max_new_tokens`: silently truncated.
The memory plan (ilr/plan.py) takes a training run's sequence length from here (`run_tokens`).

Without the models' tokenizers every count is a bound from the config (`context_budget:`):
  question   `max_question_tokens` (Q): the question as the model sees it (with a choice record's options);
             prepare-data drops a longer training question (counted and logged) and refuses a benchmark
             holding one (`question_tokens`, ilr/data_prep.py)
  quoted     a model's text that a prompt quotes (its own or a peer's solution, an analysis, an agent's
             reply) counts the max_new_tokens it was generated with
  template   each template's fixed text (placeholders removed): ceil(UTF-8 bytes / `chars_per_token`), + 1 per
             placeholder (a token may straddle it); a peer item + 1 for the newline between peers
  chat       `chat_tokens` per prompt: a chat model's template (system prompt, role markers, BOS)
Stages (C: the stage's max_new_tokens; m: the largest group of an ILR method, or multi-agent pair):
  solo       ability, difficulty (self_rank: the rating prompt), evaluation, GRPO/PPO rollouts, ILR's Sharing:
             chat + solve template + Q -> C (the longest solve_<kind> template)
  Idea3      Analysis: chat + template + Q + own C + (m - 1) x (peer item + C) -> C;
             Fusion: the same + the analysis C -> C (cooperation or competition, whichever is longer)
  debate     round 2 (multi_agent): chat + template + Q + own answer + (m - 1) peers' answers -> C
  AIPO       rollout: chat + prompt (consult_request around the solve prompt, or the solve prompt for trigger
             stuck) + Q -> C policy tokens + k x (guidance markup + guidance_max_new_tokens) agent tokens, k =
             max_consults (1 for stuck); agent: chat + agent template + Q + the policy's text (<= C) ->
             guidance_max_new_tokens
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KEYS = ("max_question_tokens", "chars_per_token", "chat_tokens")
KINDS = ("math", "code", "choice")
AGENTS = ("verify", "knowledge", "reasoning")
OPTION_BYTES = 5     # a choice option's letter markup as the model sees it: "(A) " and the newline


@dataclass(frozen=True)
class Stage:
    name: str                 # e.g. "methods.ilr: ILR Fusion (group trio, m = 3)"
    prompt: int               # prompt tokens at most
    completion: int           # completion tokens at most (agent tokens included for AIPO)
    parts: str                # the prompt's (and completion's) arithmetic
    completion_key: str       # where the completion's max_new_tokens is set
    method: str | None = None  # the `methods:` entry of a training stage

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def settings(config: dict) -> dict:
    """`context_budget:` with the schema's defaults (a config not loaded through ilr.config has none filled)."""
    from ilr.config.schema import _schema_cached

    props = _schema_cached()["properties"]["context_budget"]["properties"]
    return {k: config.get("context_budget", {}).get(k, props[k]["default"]) for k in KEYS}


def estimate(text: str, chars_per_token: float) -> int:
    return math.ceil(len(text.encode("utf-8")) / chars_per_token)


def question_tokens(record: dict, chars_per_token: float) -> int:
    """A record's question as the model sees it (with its options), by the budget's rule (prepare-data)."""
    options = record.get("options") or []
    return estimate(record["question"], chars_per_token) + sum(
        estimate(o, chars_per_token) for o in options) + math.ceil(OPTION_BYTES * len(options) / chars_per_token)


class Budget:
    def __init__(self, config: dict):
        from ilr.prompts import load

        s = settings(config)
        self.Q, self.cpt, self.chat = s["max_question_tokens"], s["chars_per_token"], s["chat_tokens"]
        self.templates = load(config["prompts"]).templates

    def fixed(self, *names: str) -> int:
        """The longest fixed text of these templates, + 1 token per placeholder."""
        from ilr.prompts import PLACEHOLDER

        return max(estimate(PLACEHOLDER.sub("", self.templates[n]), self.cpt)
                   + len(PLACEHOLDER.findall(self.templates[n])) for n in names)

    def stage(self, name, key, completion, terms, method=None, completion_parts=None) -> Stage:
        """A stage whose prompt is the chat template + `terms`, (label, tokens) each."""
        terms = [t for t in [("chat", self.chat)] + terms if t[1]]
        parts = " + ".join(f"{n} {label}" for label, n in terms)
        return Stage(name, sum(n for _, n in terms), completion,
                     f"prompt {parts} -> completion {completion_parts or completion}", key, method)

    def solo(self, name, key, C, template=None, method=None) -> Stage:
        t = self.fixed(template) if template else self.fixed(*(f"solve_{k}" for k in KINDS))
        return self.stage(name, key, C, [("template", t), ("question", self.Q)], method)

    def idea3(self, where, what, key, C, m, modes, method=None) -> list[Stage]:
        """Analysis and Fusion prompts of a group of m, each quoting its own and m - 1 peers' texts of C."""
        peer = self.fixed("peer_item") + 1
        quoted = [("question", self.Q), ("own solution", C),
                  (f"peers' solutions ({m - 1} x ({peer} markup + {C}))", (m - 1) * (peer + C))]
        analysis = self.fixed(*(f"analysis_{x}" for x in modes))
        fusion = self.fixed(*(f"fusion_{x}" for x in modes))
        return [self.stage(f"{where}: {what[0]} Analysis {what[1]}", key, C, [("template", analysis)] + quoted, method),
                self.stage(f"{where}: {what[0]} Fusion {what[1]}", key, C,
                           [("template", fusion)] + quoted + [("analysis", C)], method)]

    def aipo(self, name, key, m: dict, C: int) -> list[Stage]:
        where, request = f"methods.{name}", m["trigger"] == "request"
        k, g = (m["max_consults"] if request else 1), m["guidance_max_new_tokens"]
        markup = self.fixed("guidance")
        prompt = [("template", self.fixed(*(f"solve_{x}" for x in KINDS)))] + [("question", self.Q)]
        if request:
            prompt.insert(0, ("consult template", self.fixed("consult_request")))
        rollout = self.stage(f"{where}: AIPO rollout (trigger {m['trigger']}, {k} consultation(s))", key,
                             C + k * (markup + g), prompt, name,
                             f"{C} policy + {k} x ({markup} markup + {g} guidance)")
        agent = self.stage(f"{where}: AIPO agent (helper {m['helper']})", f"{where}.guidance_max_new_tokens", g,
                           [("template", self.fixed(*(f"agent_{a}" for a in AGENTS))), ("question", self.Q),
                            ("policy text", C)], name)
        return [rollout, agent]


def stages(config: dict) -> list[Stage]:
    """Every stage's longest sequence, for this config."""
    from ilr.config import runs as cfg
    from ilr.prompts import MODES

    b = Budget(config)
    ab, df, ev = config["ability"], config["difficulty"], config["evaluation"]
    out = [b.solo("ability", "ability.max_new_tokens", ab["max_new_tokens"])]
    if df["method"] != "level":
        out.append(b.solo(f"difficulty ({df['method']})", "difficulty.max_new_tokens", df["max_new_tokens"],
                          "rate_difficulty" if df["method"] == "self_rank" else None))
    out.append(b.solo("evaluation", "evaluation.max_new_tokens", ev["max_new_tokens"]))
    for name, m in config["methods"].items():
        C = cfg.training_args(config, cfg.method_runs(config, name)[0]).max_new_tokens
        where = f"methods.{name}"
        key = f"{where}.max_new_tokens" if "max_new_tokens" in m else "training.max_new_tokens"
        if m["trainer"] == "aipo":
            out += b.aipo(name, key, m, C)
            continue
        label = {"grpo": "GRPO rollout", "ppo": "PPO rollout", "ilr": "ILR Sharing"}[m["trainer"]]
        out.append(b.solo(f"{where}: {label}", key, C, method=name))
        if m["trainer"] == "ilr" and m["interaction"] != "none":
            group = max(m["groups"], key=lambda g: len(config["groups"][g]))
            size = len(config["groups"][group])
            out += b.idea3(where, ("ILR", f"(group {group}, m = {size})"), key, C, size, MODES, name)
    ma = config.get("multi_agent")
    if ma:
        m, E = max(len(p) for p in ma["pairs"]), ev["max_new_tokens"]
        peer = b.fixed("peer_item") + 1
        out.append(b.stage(f"multi_agent: Debate round 2 ({m} agents)", "evaluation.max_new_tokens", E,
                           [("template", b.fixed("debate_revise")), ("question", b.Q), ("own answer", E),
                            (f"peers' answers ({m - 1} x ({peer} markup + {E}))", (m - 1) * (peer + E))]))
        out += b.idea3("multi_agent", ("Idea3", f"({m} agents, {ma['mode']})"), "evaluation.max_new_tokens", E, m,
                       [ma["mode"]])
    return out


def run_tokens(config: dict, run: str) -> int:
    """The longest sequence of a training run (its method's stages): the memory plan's sequence length."""
    from ilr.config import runs as cfg

    method = cfg.method_of_run(config, run)
    return max(s.total for s in stages(config) if s.method == method)


def describe(s: Stage) -> str:
    return f"{s.name}: {s.total:,} = {s.parts} ({s.completion_key})"


def check(config: dict, fail) -> None:
    """Fail at `generation.max_model_len` when a stage's longest prompt plus its completion exceeds it."""
    limit = config["generation"]["max_model_len"]
    over = sorted((s for s in stages(config) if s.total > limit), key=lambda s: -s.total)
    if over:
        others = "; ".join(f"{s.name}: {s.prompt:,} + {s.completion:,} = {s.total:,}" for s in over[1:6])
        others += f"; and {len(over) - 6} more (`check-config --budget` lists every stage)" if len(over) > 6 else ""
        fail("generation.max_model_len",
             f"{limit:,} tokens cannot hold the longest prompt plus its completion of {len(over)} stage(s); "
             f"expected at least {over[0].total:,}: {describe(over[0])}" + (f"; also {others}" if others else "")
             + ". Raise it, or lower the max_new_tokens or context_budget.max_question_tokens named "
             "(ilr/config/budget.py; docs/config.md \"Context budget\")")


def summary(config: dict) -> str:
    top = max(stages(config), key=lambda s: s.total)
    return (f"context budget: longest sequence {top.total:,} of generation.max_model_len "
            f"{config['generation']['max_model_len']:,} tokens ({top.name})")
