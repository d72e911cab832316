"""Idea3 (METHOD.md section 4): Idea Sharing, Idea Analysis, Idea Fusion for a group of m models.

For each question, in each model's interaction mode (cooperation or competition; one mode for the whole
group, or one per model with `interaction.irt_rule: per_model`):
1. Sharing: every model solves the question alone (one completion).
2. Analysis: every model reads the other models' Sharing outputs and writes an analysis.
3. Fusion: every model reads the question, its own idea, the peers' ideas and its analysis, and
   gives `n_fusion` final solutions.
A question whose mode is None gets no interaction: its "fusion" completions are solo answers to the
solve prompt (the PC-only ablation and single-agent inference).
With `n_sharing` > 1 (training with `train_stages: [sharing, fusion]`), Sharing draws that many
solo answers for every question, the first of which is the idea the peers read.
Each stage is one batched generation per model over all questions of the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ilr.generation import Engine, Sample
from ilr.prompts import PromptSet


@dataclass
class Idea3Output:
    sharing: str | None = None       # the idea shown to the peers
    sharing_samples: list[Sample] = field(default_factory=list)
    analysis: str | None = None
    fusion_prompt: str = ""          # the text the model was conditioned on for its final answers
    fusion: list[Sample] = field(default_factory=list)


Modes = str | None | Mapping[str, str]   # per question: one mode for every model, None, or name -> mode


def run_idea3(members: dict[str, Engine], prompt_set: PromptSet, records: list[dict], modes: list[Modes],
              n_fusion: int, temperature: float, max_new_tokens: int,
              n_sharing: int = 1) -> dict[str, list[Idea3Output]]:
    """members: name -> the engine that samples from it. modes: per record, the mode of every model (a str),
    no interaction (None) or each model's own mode (a mapping name -> mode). Returns, per model, one
    Idea3Output per record."""
    out = {n: [Idea3Output() for _ in records] for n in members}
    interacting = [q for q, m in enumerate(modes) if m is not None]
    shared = list(range(len(records))) if n_sharing > 1 else interacting
    stage = _Stage(members, prompt_set, records, modes, out, temperature, max_new_tokens)
    if shared:
        sharing(stage, shared, n_sharing)
    if interacting:
        analysis(stage, interacting)
    fusion(stage, n_fusion)
    return out


@dataclass
class _Stage:
    """What every stage reads: the engines, prompts, the step's records and modes, and the outputs so far."""
    members: dict[str, Engine]
    prompt_set: PromptSet
    records: list[dict]
    modes: list[Modes]
    out: dict[str, list[Idea3Output]]
    temperature: float
    max_new_tokens: int

    def mode(self, q: int, name: str) -> str | None:
        m = self.modes[q]
        return m[name] if isinstance(m, Mapping) else m

    def peers(self, name: str, q: int, attr: str) -> list[str]:
        return [getattr(self.out[o][q], attr) for o in self.members if o != name]

    def generate(self, name: str, texts: list[str], n: int) -> list[list[Sample]]:
        return self.members[name].sample_texts(texts, n=n, max_new_tokens=self.max_new_tokens,
                                               temperature=self.temperature)


# The stages are module functions so that benchmarks/ilr_step.py can time each.

def sharing(st: _Stage, questions: list[int], n: int) -> None:
    """1. Every model solves the questions alone; its first answer is the idea the peers read."""
    for name in st.members:
        for q, s in zip(questions, st.generate(name, [st.prompt_set.solve(st.records[q]) for q in questions], n)):
            st.out[name][q].sharing_samples = s
            st.out[name][q].sharing = s[0].text


def analysis(st: _Stage, questions: list[int]) -> None:
    """2. Every model reads its peers' ideas and writes an analysis (in its mode on the question)."""
    for name in st.members:
        texts = [st.prompt_set.analysis(st.mode(q, name), st.records[q], st.out[name][q].sharing,
                                        st.peers(name, q, "sharing")) for q in questions]
        for q, s in zip(questions, st.generate(name, texts, 1)):
            st.out[name][q].analysis = s[0].text


def fusion(st: _Stage, n: int) -> None:
    """3. Every model's final answers: from the Fusion prompt, or the solve prompt where there is no interaction."""
    for name in st.members:
        for q, rec in enumerate(st.records):
            o = st.out[name][q]
            o.fusion_prompt = (st.prompt_set.solve(rec) if st.modes[q] is None else
                               st.prompt_set.fusion(st.mode(q, name), rec, o.sharing, st.peers(name, q, "sharing"),
                                                    o.analysis))
        for o, s in zip(st.out[name], st.generate(name, [o.fusion_prompt for o in st.out[name]], n)):
            o.fusion = s
