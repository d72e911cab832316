"""Prompt templates: one text file per stage and mode, in a prompt directory chosen by config.

A prompt directory holds (placeholders are `{name}`; any other brace,
such as LaTeX's `\boxed{}`, is kept as written):
  solve_math.txt, solve_code.txt, solve_choice.txt   solo answer (Idea Sharing uses these too)
  option_item.txt                                    one multiple-choice option: {letter}, {text}
  peer_item.txt                                      one peer's text: {k}, {text}
  analysis_cooperation.txt, analysis_competition.txt Idea Analysis: {question}, {own}, {peers}
  fusion_cooperation.txt, fusion_competition.txt     Idea Fusion: {question}, {own}, {peers}, {analysis}
  debate_revise.txt                                  Debate round 2: {question}, {own}, {peers}
  rate_difficulty.txt                                self-ranking of difficulty: {question}
  agent_verify.txt, agent_knowledge.txt,             AIPO's three agents on the helper model (METHOD.md
  agent_reasoning.txt                                "AIPO"): {question}, {partial} (the policy's own text
                                                     so far), {request} (what it asked; empty for `stuck`)
  consult_request.txt                                AIPO's policy prompt with trigger `request`: {solve}
                                                     (the rendered solo prompt), {max_consults}
  guidance.txt                                       how an agent's reply is inserted: {guidance}
`{question}` in the Idea3 and debate templates is the rendered solo prompt's question part, i.e. the
record's question with its options (for choice records).

The text is sent as is to a tokenizer without a chat template (the tiny models) and wrapped as one
user message for a tokenizer that has one (the paper's Instruct models); `encode_prompt` is the one
place where prompts become token ids.
"""

from __future__ import annotations

import functools
import re
import string
from pathlib import Path

PACKAGE_PROMPTS = Path(__file__).parent / "prompts"
TEMPLATES = (
    "solve_math", "solve_code", "solve_choice", "option_item", "peer_item",
    "analysis_cooperation", "analysis_competition", "fusion_cooperation", "fusion_competition",
    "debate_revise", "rate_difficulty",
    "agent_verify", "agent_knowledge", "agent_reasoning", "consult_request", "guidance",   # AIPO
)
MODES = ("cooperation", "competition")
LETTERS = string.ascii_uppercase
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_dir(prompt_dir: str | Path) -> Path:
    """A prompt directory given as a path, or as the name of one shipped with the package ("tiny", "paper")."""
    p = Path(prompt_dir)
    if p.is_dir():
        return p
    if (PACKAGE_PROMPTS / str(prompt_dir)).is_dir():
        return PACKAGE_PROMPTS / str(prompt_dir)
    raise FileNotFoundError(
        f"prompt directory {prompt_dir!r} not found (expected a directory with "
        f"{', '.join(t + '.txt' for t in TEMPLATES)}, or one of: "
        f"{', '.join(sorted(d.name for d in PACKAGE_PROMPTS.iterdir() if d.is_dir()))})")


class PromptSet:
    def __init__(self, prompt_dir: str | Path):
        self.dir = resolve_dir(prompt_dir)
        self.templates = {}
        for name in TEMPLATES:
            path = self.dir / f"{name}.txt"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing prompt template '{name}'")
            # A template file's trailing newline is the editor's, not the prompt's.
            self.templates[name] = path.read_text(encoding="utf-8").removesuffix("\n")

    def _fill(self, name: str, **fields) -> str:
        def substitute(m: re.Match) -> str:
            if m.group(1) not in fields:
                raise KeyError(f"{self.dir / (name + '.txt')}: unknown placeholder {m.group(0)}; "
                               f"available: {sorted(fields)}")
            return str(fields[m.group(1)])
        return PLACEHOLDER.sub(substitute, self.templates[name])

    def question_text(self, record: dict) -> str:
        """The question as a model sees it: with the lettered options for a choice record."""
        if record.get("kind") == "choice":
            options = "\n".join(self._fill("option_item", letter=LETTERS[i], text=t)
                                for i, t in enumerate(record["options"]))
            return f"{record['question']}\n{options}"
        return record["question"]

    def solve(self, record: dict) -> str:
        kind = record.get("kind", "math")
        return self._fill(f"solve_{kind}", question=self.question_text(record))

    def peers(self, texts: list[str]) -> str:
        return "\n".join(self._fill("peer_item", k=k, text=t) for k, t in enumerate(texts, 1))

    def analysis(self, mode: str, record: dict, own: str, peers: list[str]) -> str:
        assert mode in MODES, mode
        return self._fill(f"analysis_{mode}", question=self.question_text(record), own=own,
                          peers=self.peers(peers))

    def fusion(self, mode: str, record: dict, own: str, peers: list[str], analysis: str) -> str:
        assert mode in MODES, mode
        return self._fill(f"fusion_{mode}", question=self.question_text(record), own=own,
                          peers=self.peers(peers), analysis=analysis)

    def debate_revise(self, record: dict, own: str, peers: list[str]) -> str:
        return self._fill("debate_revise", question=self.question_text(record), own=own, peers=self.peers(peers))

    def rate_difficulty(self, record: dict) -> str:
        return self._fill("rate_difficulty", question=self.question_text(record))

    # -- AIPO (ilr/train/aipo.py) -----------------------------------------------------------------
    def consult_request(self, record: dict, max_consults: int) -> str:
        """The policy's prompt with trigger `request`: the solo prompt and how to consult the agents."""
        return self._fill("consult_request", solve=self.solve(record), max_consults=max_consults)

    def agent(self, name: str, record: dict, partial: str, request: str | None) -> str:
        """What the helper model is asked as agent `name` (verify, knowledge, reasoning)."""
        return self._fill(f"agent_{name}", question=self.question_text(record), partial=partial,
                          request=request or "")

    def guidance(self, text: str) -> str:
        """An agent's reply as inserted into the policy's rollout (and shown in the tiny warm-up)."""
        return self._fill("guidance", guidance=text)


@functools.lru_cache(maxsize=8)
def load(prompt_dir: str) -> PromptSet:
    return PromptSet(prompt_dir)


def chat(text: str) -> list[dict]:
    """The prompt as a one-turn conversation, for a tokenizer with a chat template."""
    return [{"role": "user", "content": text}]


def encode_prompt(tokenizer, text: str) -> list[int]:
    """The token ids a model is prompted with: the one place where prompts are tokenized.

    A chat model's chat template writes the whole prompt, its BOS included (Llama-3's
    `<|begin_of_text|>`), so nothing is added to it; a tokenizer without one (a base model, the tiny
    models) adds its own special tokens, as its post-processor says. Either way exactly one BOS: the
    trap is rendering the template to text and tokenizing that text with special tokens (two BOS).
    """
    if getattr(tokenizer, "chat_template", None):
        ids = list(tokenizer.apply_chat_template(chat(text), add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"])
    else:
        ids = list(tokenizer(text)["input_ids"])
    bos = tokenizer.bos_token_id
    if bos is not None and ids[:2] == [bos, bos]:
        raise ValueError(f"the prompt starts with two BOS tokens ({tokenizer.bos_token!r}): check the tokenizer's "
                         "chat template and post-processor")
    return ids


def trl_prompt(tokenizer, text: str):
    """The prompt as handed to TRL's GRPOTrainer, which tokenizes it itself: a conversation for a chat model
    (TRL applies the chat template with tokenize=True), else the text (TRL calls the tokenizer with its
    special tokens). Either way the ids are `encode_prompt`'s (tests/test_tokenization.py)."""
    return chat(text) if getattr(tokenizer, "chat_template", None) else text


def completion_text(completion) -> str:
    """A completion as TRL hands it to a reward function: text, or for a conversation the assistant message."""
    return completion if isinstance(completion, str) else completion[-1]["content"]
