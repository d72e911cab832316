"""The tiny world: generators, character tokenizer, build-model stage (ilr/tiny/)."""

from __future__ import annotations

import copy
import json
import random

import pytest

from ilr.tiny.task import SOURCES, generate


@pytest.mark.parametrize("source", SOURCES)
def test_generate_deterministic_and_well_formed(source):
    a = generate(source, 40, 5, min_steps=1, max_steps=3, max_operand=9)
    assert a == generate(source, 40, 5, min_steps=1, max_steps=3, max_operand=9)
    assert a != generate(source, 40, 6, min_steps=1, max_steps=3, max_operand=9)
    assert len({r["id"] for r in a}) == 40
    kind = {"tiny_arith": "math", "tiny_code": "code", "tiny_choice": "choice"}[source]
    for r in a:
        assert r["benchmark"] == source and r["kind"] == kind
        assert isinstance(r["question"], str) and isinstance(r["answer"], str) and r["answer"]
        assert 1 <= r["metadata"]["steps"] <= 3
        sol = r["metadata"]["solution"]
        if kind == "math":
            assert sol.endswith(f"\\boxed{{{r['answer']}}}")
        if kind == "choice":
            assert len(r["options"]) == 4 and len(set(r["options"])) == 4
            assert r["answer"] in "ABCD" and sol.endswith(f"\\boxed{{{r['answer']}}}")
            assert r["options"]["ABCD".index(r["answer"])] == r["metadata"]["value"]
        if kind == "code":
            assert r["tests"] and r["test_setup"] == "" and sol.startswith("def f(x):")
            for program in (sol, r["answer"]):   # the solution and the reference pass the tests
                scope = {}
                exec(program + "\n" + "\n".join(r["tests"]), scope)


def test_difficulty_knob():
    hard = generate("tiny_arith", 30, 1, min_steps=4, max_steps=5, max_operand=9)
    assert all(r["metadata"]["steps"] in (4, 5) and r["metadata"]["solution"].count("=") == r["metadata"]["steps"]
               for r in hard)
    with pytest.raises(ValueError):
        generate("tiny_arith", 1, 0, min_steps=3, max_steps=2)
    with pytest.raises(ValueError):
        generate("tiny_nope", 1, 0)


def test_solutions_and_synthetic_peers_grade():
    grading = pytest.importorskip("ilr.grading")
    from ilr.tiny.build import noisy

    rng = random.Random(0)
    for source in SOURCES:
        for r in generate(source, 15, 2):
            assert grading.grade(r, r["metadata"]["solution"]).correct, r
            assert not grading.grade(r, noisy(r, rng, p_wrong=1.0)).correct, r


def test_tokenizer_round_trip(tmp_path):
    from transformers import AutoTokenizer

    from ilr.tiny.tokenizer import build_tokenizer

    tok = build_tokenizer()
    text = "Q: 3+4-2\nA: 3+4=7,7-2=5 \\boxed{5}\ndef f(x):\n return x+1 ~{}|"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tok.decode(ids) == text
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text, add_special_tokens=False)["input_ids"] == ids
    assert again.decode(ids + [again.eos_token_id], skip_special_tokens=True) == text
    assert again.padding_side == "left" and not getattr(again, "chat_template", None)
    assert {again.pad_token, again.bos_token, again.eos_token, again.unk_token} == {"<pad>", "<bos>", "<eos>", "<unk>"}
    assert again.decode(again("é", add_special_tokens=False)["input_ids"]) == "<unk>"


def test_build_small_model(tmp_path, tiny_config):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ilr.tiny.build import build_model

    cfg = copy.deepcopy(tiny_config)
    cfg["models"] = {"t": {"path": str(tmp_path / "t"),
                           "build": {"arch": "qwen2", "hidden": 16, "layers": 1, "heads": 2,
                                     "warmup_steps": 40, "seed": 0, "batch_size": 8}}}
    rec = build_model(cfg, "t", tmp_path / "t", log=lambda s: None)
    out = tmp_path / "t"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left
    info = json.loads((out / "build.json").read_text())
    assert info["model"] == "t" and info["time_s"] > 0
    curve = info["loss_curve"]
    assert curve[-1] < curve[0] - 0.5, curve
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    enc = tok(["Q: 1+2\nA:", "Q: 3+4-2\nA:"], add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        gen = model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert gen.shape[0] == 2
    assert rec["n_params"] == sum(p.numel() for p in model.parameters())


def test_op_families():
    """`families`: every question draws one op family and uses only its operators; without it, no family is
    recorded and nothing else changes."""
    recs = generate("tiny_arith", 200, 3, min_steps=1, max_steps=3, families=["+-", "*"])
    assert recs == generate("tiny_arith", 200, 3, min_steps=1, max_steps=3, families=["+-", "*"])
    assert {r["metadata"]["ops"] for r in recs} == {"+-", "*"}
    for r in recs:
        used = set(c for c in r["question"][1:] if c in "+-*")
        assert used <= set(r["metadata"]["ops"]), r
    for source in SOURCES:
        assert all("ops" not in r["metadata"] for r in generate(source, 20, 3))
    with pytest.raises(ValueError):
        generate("tiny_arith", 1, 0, ops="+-", families=["*"])
    with pytest.raises(ValueError):
        generate("tiny_arith", 1, 0, families="+-")


def _formats_setup():
    from ilr.prompts import load as load_prompts

    params = dict(min_steps=1, max_steps=3, max_operand=9, families=["+-", "*"])
    pools = {"math": generate("tiny_arith", 200, 9, **params), "code": generate("tiny_code", 50, 9, **params),
             "choice": generate("tiny_choice", 50, 9, **params),
             "math:*": generate("tiny_arith", 100, 9, min_steps=1, max_steps=3, families=["*"])}
    return load_prompts("tiny"), pools


def test_skills_pick_the_solo_questions():
    from ilr.tiny.build import example

    prompts, pools = _formats_setup()
    rng = random.Random(0)
    for _ in range(50):
        prompt, target = example("solve_math", prompts, pools, rng, skills={"*": 1.0})
        assert "*" in prompt and "+" not in prompt.split("Q:")[1] and target.endswith("}")


def test_fusion_reads_only_resolvable_questions_and_states_the_right_answer():
    """Fusion and Debate examples show a right idea (own or peer) and ask for its answer alone; an own answer
    that is always wrong (a model without the skill) makes every example's right idea a peer's."""
    from ilr.grading import grade
    from ilr.tiny.build import agreement_target, answer_of, example, fusion_target, noisy

    prompts, pools = _formats_setup()
    rng = random.Random(1)
    wrong_own = [(r, noisy(r, rng, p_wrong=1.0)) for r in pools["math"]]
    for fmt in ("fusion_cooperation", "fusion_competition", "debate_revise"):
        for _ in range(40):
            prompt, target = example(fmt, prompts, pools, rng, own=wrong_own, p_wrong=0.6)
            rec = next(r for r, _ in wrong_own if prompt.startswith(f"Q: {r['question']}\n"))
            peer = prompt.split("\nP1: ")[1].split("\n")[0]
            assert answer_of(rec, peer) == rec["answer"], prompt       # the right idea is the peer's
            assert target == fusion_target(rec) == f"\\boxed{{{rec['answer']}}}"
            assert grade(rec, target).correct
    rec = pools["math"][0]
    right, wrong = rec["metadata"]["solution"], noisy(rec, rng, p_wrong=1.0)
    assert agreement_target("cooperation", rec, right, [right]) == "P1"
    assert agreement_target("cooperation", rec, right, [wrong]) == "none"
    assert agreement_target("competition", rec, right, [wrong]) == "P1"
    assert agreement_target("competition", rec, right, [right, wrong]) == "P2"
    assert fusion_target(pools["code"][0]) == pools["code"][0]["metadata"]["solution"]


def test_warm_up_shows_the_models_own_answers(monkeypatch):
    """The Idea3 formats come after the solo phase, and their "Me:" is the model's own greedy answer."""
    import torch

    from ilr.prompts import load as load_prompts
    from ilr.tiny import build
    from ilr.tiny.tokenizer import build_tokenizer

    tok = build_tokenizer()
    spec = {"arch": "llama", "hidden": 16, "layers": 1, "heads": 2, "warmup_steps": 30, "seed": 0,
            "batch_size": 4, "own_pool": 8, "solo_share": 0.5}
    model = build.make_model(spec, tok)
    seen, drawn = [], []
    real_example, real_answers = build.example, build.own_answers

    def spy_example(fmt, *a, **k):
        seen.append((fmt, k.get("own")))
        return real_example(fmt, *a, **k)

    def spy_answers(*a, **k):
        out = real_answers(*a, **k)
        drawn.append(out)
        return out

    monkeypatch.setattr(build, "example", spy_example)
    monkeypatch.setattr(build, "own_answers", spy_answers)
    torch.manual_seed(0)
    build.warm_up(model, tok, load_prompts("tiny"), spec, {"families": ["+-", "*"]})
    solo = seen[:15 * 4]
    assert all(f.startswith("solve_") for f, _ in solo)            # phase 1: solo answers only
    inter = [(f, own) for f, own in seen if f in build.INTERACTION]
    assert inter and len(drawn) == 1 and len(drawn[0]) == 8
    assert all([t for _, t in own] == drawn[0] for _, own in inter)  # "Me:" = the model's own answers
