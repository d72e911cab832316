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
    names = list(members)
    out = {n: [Idea3Output() for _ in records] for n in names}

    def mode(q: int, name: str) -> str | None:
        return modes[q][name] if isinstance(modes[q], Mapping) else modes[q]

    interacting = [q for q, m in enumerate(modes) if m is not None]
    shared = range(len(records)) if n_sharing > 1 else interacting

    def generate(name: str, texts: list[str], n: int) -> list[list[Sample]]:
        return members[name].sample_texts(texts, n=n, max_new_tokens=max_new_tokens, temperature=temperature)

    def peers_of(name: str, q: int, stage: str) -> list[str]:
        return [getattr(out[o][q], stage) for o in names if o != name]

    if shared:
        for name in names:  # 1. Sharing
            for q, s in zip(shared, generate(name, [prompt_set.solve(records[q]) for q in shared], n_sharing)):
                out[name][q].sharing_samples = s
                out[name][q].sharing = s[0].text
    if interacting:
        for name in names:  # 2. Analysis
            texts = [prompt_set.analysis(mode(q, name), records[q], out[name][q].sharing, peers_of(name, q, "sharing"))
                     for q in interacting]
            for q, s in zip(interacting, generate(name, texts, 1)):
                out[name][q].analysis = s[0].text
    for name in names:  # 3. Fusion (or the solo answer where there is no interaction)
        for q, rec in enumerate(records):
            o = out[name][q]
            o.fusion_prompt = (prompt_set.solve(rec) if modes[q] is None else
                               prompt_set.fusion(mode(q, name), rec, o.sharing, peers_of(name, q, "sharing"), o.analysis))
        for q, s in zip(range(len(records)), generate(name, [o.fusion_prompt for o in out[name]], n_fusion)):
            out[name][q].fusion = s
    return out
