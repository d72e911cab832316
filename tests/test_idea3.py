"""Idea3 (ilr/idea3.py, METHOD.md section 4) on its own: Sharing, Analysis and Fusion prompts in both modes,
the m - 1 peers each model reads (m = 2 and m = 3), solo answers where a question has no mode, what a model's
final answers were conditioned on, and how they are graded.

Most tests drive `run_idea3` with scripted engines (ilr.generation.Engine whose completions name the model,
the call and the prompt, so every text can be traced into the next stage's prompt); the last one runs it on
real transformers models (random init, the tiny tokenizer) and checks the token ids each answer was sampled
from. Questions are real: MATH-500 records (paper prompts, ../shared/data) and the tiny arithmetic task.
"""

from __future__ import annotations

import pytest

from ilr.generation import Engine, Sample
from ilr.idea3 import run_idea3
from ilr.prompts import MODES, PromptSet


class Scripted(Engine):
    """An engine that answers every prompt with a text naming the model, the call and the prompt's index
    (`<name>#<call>.<index>.<sample>`), then `answer` boxed; records the prompts of each call."""

    def __init__(self, name: str, answer: str = "0"):
        self.name, self.answer, self.calls = name, answer, []

    def sample_texts(self, texts: list[str], n: int = 1, max_new_tokens: int = 64, temperature: float = 0.0,
                     **kwargs) -> list[list[Sample]]:
        call = len(self.calls)
        self.calls.append(list(texts))
        return [[Sample([], [], f"{self.name}#{call}.{i}.{k} \\boxed{{{self.answer}}}", False) for k in range(n)]
                for i in range(len(texts))]


def tiny_records(n: int = 3) -> list[dict]:
    from ilr.benchmarks import load_records

    return load_records({"source": "tiny_arith", "n": n, "seed": 0})


def math_records(shared_data, n: int = 3) -> list[dict]:
    from ilr.benchmarks import load_records

    return load_records({"source": "math500", "path": str(shared_data / "math500" / "test.jsonl")})[:n]


def idea3(names: list[str], prompts: PromptSet, records: list[dict], modes, n_fusion: int = 2, n_sharing: int = 1,
          answers: dict | None = None):
    engines = {n: Scripted(n, (answers or {}).get(n, "0")) for n in names}
    out = run_idea3(engines, prompts, records, modes, n_fusion=n_fusion, temperature=1.0, max_new_tokens=16,
                    n_sharing=n_sharing)
    return engines, out


@pytest.mark.parametrize("prompt_dir", ["tiny", "paper"])
@pytest.mark.parametrize("mode", MODES)
def test_stages_follow_the_mode(mode, prompt_dir, shared_data):
    """Each stage's prompt is the mode's template filled with the earlier stages' texts: Analysis reads the
    model's own idea and its peer's, Fusion adds the model's analysis; the other mode's template gives a
    different prompt. Sharing's idea is the first of its samples; Fusion gives n_fusion answers."""
    prompts = PromptSet(prompt_dir)
    records = tiny_records() if prompt_dir == "tiny" else math_records(shared_data)
    names = ["a", "b"]
    engines, out = idea3(names, prompts, records, [mode] * len(records), n_fusion=3)
    other = next(m for m in MODES if m != mode)
    for name in names:
        peer = next(p for p in names if p != name)
        sharing, analysis, fusion = engines[name].calls   # one batched call per stage
        assert sharing == [prompts.solve(r) for r in records]
        for q, rec in enumerate(records):
            o = out[name][q]
            assert o.sharing == f"{name}#0.{q}.0 \\boxed{{0}}" and [s.text for s in o.sharing_samples] == [o.sharing]
            peer_idea = out[peer][q].sharing
            assert analysis[q] == prompts.analysis(mode, rec, o.sharing, [peer_idea])
            assert analysis[q] != prompts.analysis(other, rec, o.sharing, [peer_idea])
            assert o.sharing in analysis[q] and peer_idea in analysis[q] and rec["question"] in analysis[q]
            assert o.analysis == f"{name}#1.{q}.0 \\boxed{{0}}"
            assert fusion[q] == o.fusion_prompt == prompts.fusion(mode, rec, o.sharing, [peer_idea], o.analysis)
            assert o.fusion_prompt != prompts.fusion(other, rec, o.sharing, [peer_idea], o.analysis)
            assert all(t in o.fusion_prompt for t in (o.sharing, peer_idea, o.analysis))
            assert out[peer][q].analysis not in o.fusion_prompt   # a model reads its own analysis, not its peer's
            assert [s.text for s in o.fusion] == [f"{name}#2.{q}.{k} \\boxed{{0}}" for k in range(3)]


@pytest.mark.parametrize("m", [2, 3])
def test_each_model_reads_its_m_minus_1_peers(m):
    """With m models every model's Analysis and Fusion prompts hold the m - 1 other models' ideas, in the
    group's order, once each, and never its own idea as a peer's (the tiny peer_item numbers them P1, P2)."""
    prompts = PromptSet("tiny")
    records = tiny_records(2)
    names = ["llama", "qwen-s", "qwen-l"][:m]
    engines, out = idea3(names, prompts, records, ["competition", "cooperation"])
    for name in names:
        peers = [p for p in names if p != name]
        for q, rec in enumerate(records):
            o = out[name][q]
            ideas = [out[p][q].sharing for p in peers]
            listed = prompts.peers(ideas)
            assert listed.splitlines() == [f"P{k}: {t}" for k, t in enumerate(ideas, 1)]
            for prompt in (engines[name].calls[1][q], o.fusion_prompt):
                assert listed in prompt and f"P{m}:" not in prompt   # m - 1 items: P1 .. P(m-1)
                assert all(prompt.count(t) == 1 for t in ideas)
                assert prompt.count(o.sharing) == 1                  # as its own idea only
            assert o.fusion_prompt == prompts.fusion(["competition", "cooperation"][q], rec, o.sharing, ideas,
                                                     o.analysis)


def test_question_without_mode_is_answered_alone():
    """A question whose mode is None (PC-only, single-agent) gets no Sharing or Analysis and its answers are
    sampled from the solo prompt; with n_sharing > 1 (train_stages [sharing, fusion]) every question draws
    n_sharing solo answers, the first of which is the idea the peers of an interacting question read."""
    prompts = PromptSet("tiny")
    records = tiny_records(3)
    modes = [None, "cooperation", None]
    engines, out = idea3(["a", "b"], prompts, records, modes)
    for name, e in engines.items():
        sharing, analysis, fusion = e.calls
        assert sharing == [prompts.solve(records[1])] and len(analysis) == 1   # only the interacting question
        assert fusion == [prompts.solve(records[0]), out[name][1].fusion_prompt, prompts.solve(records[2])]
        for q in (0, 2):
            assert out[name][q].sharing is None and out[name][q].analysis is None and len(out[name][q].fusion) == 2
    engines, out = idea3(["a", "b"], prompts, records, modes, n_sharing=3)
    for name, e in engines.items():
        assert e.calls[0] == [prompts.solve(r) for r in records]
        for q in range(3):
            o = out[name][q]
            assert len(o.sharing_samples) == 3 and o.sharing == o.sharing_samples[0].text
        assert out[name][0].fusion_prompt == prompts.solve(records[0])
        peer = "b" if name == "a" else "a"
        assert out[peer][1].sharing_samples[0].text in out[name][1].fusion_prompt
        assert out[peer][1].sharing_samples[1].text not in out[name][1].fusion_prompt


def test_no_question_interacts():
    """All modes None: one call per model, the solo answers, nothing shared."""
    prompts = PromptSet("tiny")
    records = tiny_records(2)
    engines, out = idea3(["a", "b"], prompts, records, [None, None])
    assert all(len(e.calls) == 1 for e in engines.values())
    assert all(o.sharing is None and o.fusion_prompt == prompts.solve(r)
               for outs in out.values() for o, r in zip(outs, records))


def test_final_answers_are_graded_on_their_own_text(shared_data):
    """The Fusion answers are what a model is rewarded for (ilr/train/ilr.py): each is graded on its own
    boxed answer, whatever its peers answered in the prompt it read. One model boxes the gold, the other a
    wrong number; the right one is read as right even though the wrong answer sits in its prompt."""
    from ilr.train.common import rule_reward

    prompts = PromptSet("paper")
    records = math_records(shared_data, 2)
    records = [r for r in records if r["answer"] not in ("0", "17")] or pytest.skip("premise: golds differ")
    for rec in records:
        engines, out = idea3(["right", "wrong"], prompts, [rec], ["competition"], n_fusion=2,
                             answers={"right": rec["answer"], "wrong": "17"})
        assert "\\boxed{17}" in out["right"][0].fusion_prompt   # the peer's wrong idea was read
        assert [rule_reward(rec, s.text) for s in out["right"][0].fusion] == [1.0, 1.0]
        assert [rule_reward(rec, s.text) for s in out["wrong"][0].fusion] == [0.0, 0.0]


def test_real_engines_sample_from_the_fusion_prompt(random_models):
    """Three real models (random init, transformers' generate): each Fusion answer was sampled from the
    token ids of the model's own fusion prompt (the text `fusion_prompt` records), n_fusion per question."""
    from ilr.generation import TransformersEngine, load_model
    from ilr.prompts import encode_prompt

    prompts = PromptSet("tiny")
    records = tiny_records(2)
    engines = {}
    for name, path in random_models.items():
        model, tok = load_model(path)
        engines[name] = TransformersEngine(model, tok)
    out = run_idea3(engines, prompts, records, ["cooperation", "competition"], n_fusion=2, temperature=1.0,
                    max_new_tokens=6)
    for name, e in engines.items():
        peers = [p for p in engines if p != name]
        for q, rec in enumerate(records):
            o = out[name][q]
            assert o.fusion_prompt == prompts.fusion(["cooperation", "competition"][q], rec, o.sharing,
                                                     [out[p][q].sharing for p in peers], o.analysis)
            assert len(o.fusion) == 2
            assert all(s.prompt_ids == encode_prompt(e.tokenizer, o.fusion_prompt) for s in o.fusion)
            assert all(len(s.completion_ids) <= 6 for s in o.fusion)
