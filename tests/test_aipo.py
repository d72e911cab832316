"""AIPO (ilr/train/aipo.py, METHOD.md "AIPO"): the consultations, the loss's mask and importance weights, the rollout
log, and multi-process runs.

Unit tests drive the rollout builder with scripted engines (the tiny models never write a `<consult>` call, so
trigger `request` is exercised here); real tiny runs (warm models, trigger `stuck`, as the tiny default) record
what TRL's loss was given (`_compute_loss`'s inputs) and check it against the rollout log recomputed from the
base model; a 2-process run through Snakemake trains the same (step, question)s as a 1-process one."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO
from ilr import config as cfg
from ilr import study as ilrstudy   # (the name `study` is a fixture here)
from ilr.generation import Sample
from ilr.io import read_jsonl, write_jsonl
from ilr.prompts import encode_prompt, load as load_prompts
from ilr.tiny.tokenizer import build_tokenizer
from ilr.train.aipo_rollout import AGENTS, Agents, RolloutBuilder, find_call
from ilr.train.common import rule_reward

PROMPTS = load_prompts("tiny")


# ------------------------------------------------------------------------------------------ scripted engines

class Scripted:
    """An engine that answers each prompt with `script(prompt text)` (ids cut at max_new_tokens, EOS if it fits),
    and remembers what it was asked."""

    def __init__(self, tokenizer, script):
        self.tokenizer, self.script, self.calls = tokenizer, script, []

    def sample(self, prompts, n=1, max_new_tokens=64, temperature=0.0, **_):
        self.calls.append({"prompts": [self.tokenizer.decode(p) for p in prompts], "n": n,
                           "max_new_tokens": max_new_tokens})
        out = []
        for p in prompts:
            text = self.script(self.tokenizer.decode(p, skip_special_tokens=True))
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            ids = ids[:max_new_tokens]
            out.append([Sample(list(p), ids, self.tokenizer.decode(ids, skip_special_tokens=True), False)] * n)
        return out


def method(**over) -> dict:
    m = {"trainer": "aipo", "helper": "h", "trigger": "request", "max_consults": 2, "cut": 0.5,
         "agents": list(AGENTS), "context": "strip", "is_clip": [0.2, 1.0], "consult_cost": 0.25,
         "helper_temperature": 0.0, "guidance_max_new_tokens": 40, "helper_batch_size": 8}
    m.update(over)
    return m


ARGS = cfg.args_class("aipo")(num_generations=2, max_new_tokens=160, temperature=1.0, reward_format=0.0)
Q_CALLS = {"id": "q0", "kind": "math", "question": "3+4-2", "answer": "5"}
Q_OTHER = {"id": "q1", "kind": "math", "question": "3+4", "answer": "7"}


def policy_script(text: str) -> str:
    """Question q0 consults three times (the third call stays unanswered: max_consults 2), and writes text after each
    call that must be discarded; q1 names an unknown agent, which is no consultation."""
    if text.endswith("Q: 3+4\nA:"):
        return '<consult agent="oracle">answer?</consult>3+4=7 \\boxed{7}'
    guided = text.count("<guidance>")
    if guided == 0:
        return '3+4=7,<consult agent="verify">is 7 right?</consult>JUNK'
    if guided == 1:
        return '7-2=5 <consult agent="knowledge">minus?</consult>JUNK'
    return '<consult agent="reasoning">next?</consult> \\boxed{5}'


def helper_script(text: str) -> str:
    return {"Error?": "V-OK", "A:": "K-FACTS"}.get(text.splitlines()[-1], "R-STEP")


def builder_for(m: dict, policy_fn=policy_script):
    tok = build_tokenizer()
    helper = Scripted(tok, helper_script)
    return RolloutBuilder(m, ARGS, PROMPTS, tok, Agents(helper, PROMPTS, 0.0, 40)), Scripted(tok, policy_fn), helper


def test_request_trigger_consults_inserts_guidance_and_strips_it():
    builder, policy, helper = builder_for(method())
    tok = builder.tokenizer
    groups, notes = builder.build([Q_CALLS, Q_OTHER], [0, 1], policy)
    assert notes == [{}, {}]
    r = groups[0][0]
    assert [(c.agent, c.request, c.guidance) for c in r.consults] == [("verify", "is 7 right?", "V-OK"),
                                                                       ("knowledge", "minus?", "K-FACTS")]
    text = lambda ids: tok.decode(ids, skip_special_tokens=True)   # noqa: E731
    # what follows a call is resampled after the guidance; the third call (max_consults 2) is the policy's text
    assert text(r.stripped()) == '3+4=7,7-2=5 <consult agent="reasoning">next?</consult> \\boxed{5}'
    assert text(r.guided()) == ('3+4=7,<consult agent="verify">is 7 right?</consult><guidance>V-OK</guidance>'
                                '7-2=5 <consult agent="knowledge">minus?</consult><guidance>K-FACTS</guidance>'
                                '<consult agent="reasoning">next?</consult> \\boxed{5}')
    assert r.at_tokens() == [len("3+4=7,"), len("3+4=7,7-2=5 ")]
    # the reward: the policy's own text, less the consultations' cost
    assert r.reward == rule_reward(Q_CALLS, text(r.stripped())) - 0.25 * 2 == 0.5
    # an unknown agent is no consultation
    assert all(not g.consults for g in groups[1]) and groups[1][0].reward == 1.0
    # the agents saw the question, the policy's text so far (calls and guidance stripped) and the request
    asked = [p for c in helper.calls for p in c["prompts"]]
    assert asked[0] == PROMPTS.agent("verify", Q_CALLS, "3+4=7,", "is 7 right?")
    assert PROMPTS.agent("knowledge", Q_CALLS, "3+4=7,7-2=5 ", "minus?") in asked
    # the policy's token budget counts its own tokens (calls included), not the agents'
    continuation = policy.calls[1]
    first_call = '3+4=7,<consult agent="verify">is 7 right?</consult>'
    assert continuation["max_new_tokens"] == ARGS.max_new_tokens - len(first_call)
    assert r.policy_tokens() <= ARGS.max_new_tokens
    # the prompt every rollout is sampled and trained under, stripped or not: consult_request.txt, the one that
    # describes the agents (the paper set's differs from its solve prompt; the tiny set's is the solve prompt)
    from ilr.prompts import encode_prompt, load
    request_prompt = encode_prompt(tok, PROMPTS.consult_request(Q_CALLS, method()["max_consults"]))
    assert all(g.prompt_ids == request_prompt for g in groups[0])
    paper = load("paper")
    paper_builder = RolloutBuilder(method(), ARGS, paper, tok, Agents(helper, paper, 0.0, 40))
    assert paper_builder.prompt_text(Q_CALLS) == paper.consult_request(Q_CALLS, 2) != paper.solve(Q_CALLS)


def test_trained_sequences_mask_agent_tokens_and_map_post_guidance_tokens():
    builder, policy, _ = builder_for(method())
    groups, _ = builder.build([Q_CALLS], [0], policy)
    r = groups[0][0]
    guidance = [t for c in r.consults for t in c.guidance_ids]
    ids, mask = r.trained("keep")
    assert ids == r.guided()
    assert [t for t, m in zip(ids, mask) if m == 0] == guidance             # exactly the guidance is masked
    assert [t for t, m in zip(ids, mask) if m] == [t for c, k in zip([None] + r.consults, r.chunks)
                                                   for t in (c.call_ids if c else []) + k]
    ids, mask = r.trained("strip")
    assert ids == r.stripped() and set(mask) == {1}
    assert "<guidance>" not in builder.tokenizer.decode(ids)
    s_pos, g_pos = r.post_guidance()
    assert s_pos == list(range(r.at_tokens()[0], len(r.stripped())))
    assert [r.stripped()[s] for s in s_pos] == [r.guided()[g] for g in g_pos]


def test_stuck_trigger_continues_the_first_rollout_after_guidance():
    def policy_fn(text):
        if "<guidance>" in text:
            return "+4=7 \\boxed{7}"
        return "3+4=8 \\boxed{8}" if "3+4" in text.splitlines()[0] else "1+1=2 \\boxed{2}"

    q_easy = {"id": "e", "kind": "math", "question": "1+1", "answer": "2"}
    builder, policy, helper = builder_for(method(trigger="stuck", cut=0.5), policy_fn)
    groups, notes = builder.build([Q_OTHER, q_easy], [4, 5], policy)
    assert notes == [{"stuck": True, "plain_rewards": [0.0, 0.0]}, {"stuck": False, "plain_rewards": [1.0, 1.0]}]
    stuck = groups[0]
    tok = builder.tokenizer
    full = tok("3+4=8 \\boxed{8}", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    prefix = full[:len(full) // 2]
    assert all(r.chunks[0] == prefix and len(r.consults) == 1 for r in stuck)
    c = stuck[0].consults[0]
    assert c.agent == AGENTS[4 % 3] and c.request is None and c.call_ids == []   # agents in turn by position
    assert helper.calls[0]["prompts"] == [PROMPTS.agent(c.agent, Q_OTHER, builder.tokenizer.decode(prefix), None)]
    cont = policy.calls[1]
    assert cont["n"] == ARGS.num_generations and cont["max_new_tokens"] == ARGS.max_new_tokens - len(prefix)
    assert cont["prompts"][0].endswith(PROMPTS.guidance(c.guidance))
    assert all(not r.consults for r in groups[1])


class StubTrainer:
    """What Seam.finish uses of TRL's trainer, with log-probabilities chosen by the test: the stripped completion
    log(0.5) everywhere, the guided one such that pi(y|stripped) / pi(y|guided) is RATIOS[guided position % 3]."""

    RATIOS = (0.1, 0.5, 2.0)

    def __init__(self, tok):
        from collections import defaultdict
        from types import SimpleNamespace

        self.processing_class = tok
        self.args = SimpleNamespace(per_device_train_batch_size=4, gradient_checkpointing_kwargs=None)
        self.model = SimpleNamespace(is_gradient_checkpointing=False)
        self.state = SimpleNamespace(global_step=0)
        self._metrics = {"train": defaultdict(list)}
        self.calls = 0

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None):
        self.calls += 1
        B, half = input_ids.shape[0], torch.log(torch.tensor(0.5))
        if self.calls % 2:      # the stripped sequences (TRL's trained batch) come first
            return torch.full((B, logits_to_keep), half.item()), None, None
        ratio = torch.tensor([self.RATIOS[j % 3] for j in range(logits_to_keep)])
        return (half - torch.log(ratio)).expand(B, -1).clone(), None, None


def test_finish_weights_each_post_guidance_token_clips_and_logs(tmp_path):
    """The loss override: the advantage of every post-guidance token is A * clip(w_t), of every other token A."""
    from ilr.train.aipo import Seam

    m = method()
    builder, policy, _ = builder_for(m)
    tok = builder.tokenizer
    schedule = [Q_CALLS, Q_OTHER]
    seam = Seam(m, ARGS.replace(questions_per_step=2), 0, schedule, tmp_path, builder, use_vllm=False)
    groups, seam.notes = builder.build(schedule, [0, 1], policy)
    seam.records, seam.batch = schedule, [r for g in groups for r in g]
    pad = tok.pad_token_id

    def padded(seqs, left=False):
        width = max(map(len, seqs))
        ids = [([pad] * (width - len(x)) + x) if left else (x + [pad] * (width - len(x))) for x in seqs]
        mask = [([0] * (width - len(x)) + [1] * len(x)) if left else ([1] * len(x) + [0] * (width - len(x)))
                for x in seqs]
        return torch.tensor(ids), torch.tensor(mask)

    prompt_ids, prompt_mask = padded([r.prompt_ids for r in seam.batch], left=True)
    completion_ids, completion_mask = padded([r.trained("strip")[0] for r in seam.batch])
    A = torch.tensor([1.0, -2.0, 3.0, -4.0])
    out = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
           "completion_mask": completion_mask, "advantages": A.clone()}
    trainer = StubTrainer(tok)
    out = seam.finish(trainer, out)
    lo, hi = m["is_clip"]
    log = read_jsonl(tmp_path / "rollouts.jsonl")
    for b, r in enumerate(seam.batch):
        expected = torch.ones(completion_ids.shape[1])
        for s_pos, g_pos in zip(*r.post_guidance()):
            expected[s_pos] = min(max(StubTrainer.RATIOS[g_pos % 3], lo), hi)
        assert torch.allclose(out["aipo_weight"][b], expected)
        assert torch.allclose(out["advantages"][b], A[b] * expected)
        stats = log[b // 2]["rollouts"][b % 2]["is_weight"]
        if not r.consults:
            assert stats is None and (out["aipo_weight"][b] == 1).all()
            continue
        post = expected[r.post_guidance()[0]]
        raw = torch.tensor([StubTrainer.RATIOS[g % 3] for g in r.post_guidance()[1]])
        assert stats == pytest.approx({"mean": post.mean().item(), "min": post.min().item(), "max": post.max().item(),
                                       "clipped_fraction": ((raw < lo) | (raw > hi)).float().mean().item()})
        assert 0 < stats["clipped_fraction"] < 1
    assert trainer._metrics["train"]["aipo/consult_rate"] == [0.5]
    assert trainer._metrics["train"]["aipo/consult_rate/verify"] == [0.5]
    metrics = trainer._metrics["train"]
    assert metrics["aipo/reward_consulted"] == [0.5] and metrics["aipo/reward_plain"] == [1.0]

    seam.method = {**m, "context": "keep"}            # keep: w = 1, the advantages as TRL computed them
    out = seam.finish(StubTrainer(tok), {**out, "advantages": A.clone()})
    assert out["advantages"].dim() == 1 and (out["aipo_weight"] == 1).all()


def test_find_call_takes_the_first_call_to_an_allowed_agent():
    tok = build_tokenizer()
    text = 'ab<consult agent="oracle">x</consult>cd<consult agent="verify"> is it? </consult>ef'
    ids = tok(text, add_special_tokens=False)["input_ids"]
    start, end, agent, request = find_call(tok, ids, AGENTS)
    assert tok.decode(ids[start:end]) == '<consult agent="verify"> is it? </consult>'
    assert (agent, request) == ("verify", "is it?")
    assert find_call(tok, ids, ("knowledge",)) is None


# ------------------------------------------------------------------------------------------ config

def test_config_keys_defaults_and_checks(tiny_config):
    c = ilrstudy.validate(copy.deepcopy(tiny_config))
    m = c["methods"]["aipo"]
    assert (m["trigger"], m["context"], m["is_clip"], m["max_consults"], m["cut"]) == \
        ("stuck", "strip", [0.2, 1.0], 2, 0.5)
    assert c["methods"]["aipo_keep"]["context"] == "keep"
    assert ilrstudy.stage_spec(c, "train", method="aipo", group="tiny-llama", seed=0)["helper_path"] == \
        c["models"]["tiny-qwen-l"]["path"]
    for over, key in (({"helper": "nope"}, "methods.aipo.helper"), ({"is_clip": [1.0, 0.2]}, "methods.aipo.is_clip"),
                      ({"trigger": "always"}, "methods.aipo.trigger"), ({"agnets": ["verify"]}, "methods.aipo")):
        bad = copy.deepcopy(tiny_config)
        bad["methods"]["aipo"].update(over)
        with pytest.raises(cfg.ConfigError) as e:
            ilrstudy.validate(bad)
        assert key in str(e.value), str(e.value)


def test_paper_aipo_jobs_fit_with_the_helper():
    from ilr import plan

    c = ilrstudy.load(REPO / "config" / "paper.yaml")
    assert c["methods"]["aipo"]["helper"] == "qwen-14b" and c["methods"]["aipo"]["trigger"] == "request"
    c["tables"]["main"]["methods"] = ["grpo", "aipo", "aipo_keep"]
    rows = [r for r in plan.plan(c) if r["what"].startswith("aipo")]
    assert len(rows) == 6 and all(r["fits"] for r in rows), [(r["what"], r["need"] / 1e9) for r in rows]
    grpo = {r["what"].split("/")[1]: r["need"] for r in plan.plan(c) if r["what"].startswith("grpo/")}
    for r in rows:   # the helper's bf16 weights (and its KV cache) on every GPU on top of GRPO's need
        assert r["need"] - grpo[r["what"].split("/")[1]] >= 2 * 14.7e9 and "helper 29.5" in r["how"]


def test_train_job_takes_the_built_helper_as_input(tmp_path):
    """The tiny default's AIPO job for tiny-llama needs tiny-qwen-l built (its helper)."""
    snakemake = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    c = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    c["results"] = str(tmp_path / "results")
    c["tables"]["main"]["methods"] = ["aipo"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(c))
    target = f"{tmp_path}/results/runs/aipo/tiny-llama/seed0/tiny-llama/final"
    r = subprocess.run([snakemake, target, "-n", "--cores", "1", "--configfile", str(tmp_path / "c.yaml")], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert re.search(r"rule train_single:.*?input:[^\n]*models/tiny-qwen-l", out, re.S), out[-3000:]


# ------------------------------------------------------------------------------------------ real tiny runs

STEPS, QPS, G = 2, 4, 4


def hard_questions(n: int) -> list[dict]:
    """Questions far beyond the warm tiny models' warm-up (5-6 steps; it saw at most 3): nearly every one is
    stuck, so each agent is consulted (the stuck decision on mixed questions: the scripted tests above)."""
    from ilr.tiny.task import generate

    return generate("tiny_arith", n, 21, min_steps=5, max_steps=6, max_operand=9)


def run_in_process(root: Path, tiny_config: dict, warm_models: dict, context: str, records: list[dict]):
    """train_aipo in this process, stuck trigger, recording every input TRL's loss was given."""
    from trl import GRPOTrainer

    from ilr.train.aipo import train_aipo

    c = copy.deepcopy(tiny_config)
    c["results"] = str(root / "results")
    c["models"] = {n: {"path": str(p), "size": "small"} for n, p in warm_models.items()}
    c["groups"] = {"group1": list(warm_models)}
    for m in [m for m in c["methods"] if m.startswith("ilr")]:
        c["methods"][m]["groups"] = ["group1"]
    for m in ("aipo", "aipo_keep"):
        c["methods"][m]["helper"] = "tiny-qwen-s"
    c["methods"]["aipo"].update(context=context, consult_cost=0.1)
    c["multi_agent"]["pairs"] = [list(warm_models)]
    c["tables"]["ablation"]["rows"] = [["tiny-llama", "group1"]]
    c["tables"]["coop_ratio"]["group"] = "group1"
    c["training"].update(steps=STEPS, questions_per_step=QPS, num_generations=G, max_new_tokens=32, save_steps=100)
    c = ilrstudy.validate(c)
    write_jsonl(root / "train.jsonl", records)
    seen: list[dict] = []
    original = GRPOTrainer._compute_loss

    def recording(self, model, inputs):
        seen.append({"step": self.state.global_step + 1,
                     **{k: v.detach().clone() if torch.is_tensor(v) else v for k, v in inputs.items()}})
        return original(self, model, inputs)

    GRPOTrainer._compute_loss = recording
    try:
        train_aipo(c, "aipo", "tiny-llama", 0, str(root / "train.jsonl"), str(root / "out"))
    finally:
        GRPOTrainer._compute_loss = original
    return c, root / "out" / "tiny-llama", seen


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_config, warm_models):
    """The same study trained with `context: strip` and `context: keep` (same seeds, so the same first rollouts)."""
    records = hard_questions(STEPS * QPS)
    return {ctx: run_in_process(tmp_path_factory.mktemp(ctx), tiny_config, warm_models, ctx, records)
            for ctx in ("strip", "keep")}


def trained_rows(seen: list[dict], tok) -> list[dict]:
    """Every row TRL's loss saw: prompt text, completion ids, loss mask, the weight and the advantages."""
    rows = []
    for batch in seen:
        for b in range(batch["completion_ids"].shape[0]):
            keep = batch["completion_mask"][b].bool()
            prompt = batch["prompt_ids"][b][batch["prompt_mask"][b].bool()].tolist()
            mask = batch["completion_mask"][b] * batch.get("tool_mask", torch.ones_like(batch["completion_mask"]))[b]
            adv = batch["advantages"][b]
            rows.append({"step": batch["step"], "prompt": tok.decode(prompt, skip_special_tokens=True),
                         "ids": batch["completion_ids"][b][keep].tolist(), "mask": mask[keep].tolist(),
                         "w": batch["aipo_weight"][b][keep].tolist(),
                         "adv": adv[keep].tolist() if adv.dim() == 1 else adv.item()})
    return rows


def logged(run: Path) -> list[dict]:
    return read_jsonl(run / "rollouts.jsonl")


def match(rows: list[dict], log: list[dict], records: dict, tok) -> list[tuple[dict, dict, dict]]:
    """(trained row, its logged rollout, its question) for every trained row: by step, prompt and completion."""
    by_key = {}
    for line in log:
        record = records[line["question_id"]]
        for r in line["rollouts"]:
            by_key[(line["step"], PROMPTS.solve(record), r["completion"])] = (r, record)
    out = []
    for row in rows:
        text = tok.decode([t for t, m in zip(row["ids"], row["mask"]) if m], skip_special_tokens=True)
        r, record = by_key[(row["step"], row["prompt"], text)]
        out.append((row, r, record))
    return out


@pytest.mark.slow
def test_rollout_log_recomputes_every_reward_and_the_stuck_decision(runs):
    for ctx, (c, run, _) in runs.items():
        log = logged(run)
        records = {r["id"]: r for r in read_jsonl(run.parent.parent / "train.jsonl")}
        assert [(r["step"]) for r in log] == [s for s in range(1, STEPS + 1) for _ in range(QPS)]
        agents = set()
        for pos, line in enumerate(log):
            assert line["trigger"] == "stuck" and len(line["rollouts"]) == G
            record = records[line["question_id"]]
            assert line["stuck"] == (not any(line["plain_rewards"]))
            for r in line["rollouts"]:
                fmt = c["training"]["reward_format"]
                assert r["reward"] == pytest.approx(rule_reward(record, r["completion"], fmt) - 0.1 * len(r["consults"]))
                assert len(r["consults"]) == int(line["stuck"])
                for k in r["consults"]:
                    assert k["agent"] == AGENTS[pos % 3] and k["request"] is None and k["guidance"]
                    agents.add(k["agent"])
        assert agents == set(AGENTS), f"{ctx}: not every agent was consulted ({agents}): too few stuck questions"
        metrics = [m for m in read_jsonl(run / "metrics.jsonl") if "aipo/consult_rate" in m]
        assert [m["step"] for m in metrics] == list(range(1, STEPS + 1))
        for m, step in zip(metrics, range(1, STEPS + 1)):
            rollouts = [r for line in log if line["step"] == step for r in line["rollouts"]]
            assert m["aipo/consult_rate"] == pytest.approx(sum(bool(r["consults"]) for r in rollouts) / len(rollouts))


@pytest.mark.slow
def test_agent_tokens_never_enter_the_loss(runs):
    tok = build_tokenizer()
    for ctx, (c, run, seen) in runs.items():
        records = {r["id"]: r for r in read_jsonl(run.parent.parent / "train.jsonl")}
        rows = trained_rows(seen, tok)
        assert len(rows) == STEPS * QPS * G
        guided = 0
        for row, r, record in match(rows, logged(run), records, tok):
            full = tok.decode(row["ids"], skip_special_tokens=True)
            trained = tok.decode([t for t, m in zip(row["ids"], row["mask"]) if m], skip_special_tokens=True)
            assert trained == r["completion"] and "<guidance>" not in trained
            if ctx == "strip":
                assert full == r["completion"]                     # the guidance is not even in context
            elif r["consults"]:                                    # in context, every one of its tokens masked
                k = r["consults"][0]
                masked = [t for t, m in zip(row["ids"], row["mask"]) if not m]
                assert tok.decode(masked) == PROMPTS.guidance(k["guidance"])
                at = k["at_token"]
                assert full == r["completion"][:at] + PROMPTS.guidance(k["guidance"]) + r["completion"][at:]
                guided += 1
        assert ctx == "strip" or guided, "no consultation in the keep run: the test proves nothing"


def recomputed_weights(model, prompt_text: str, ids: list[int], consult: dict, tok, clip) -> torch.Tensor:
    """w_t for the tokens after the guidance, from the base model: pi(y | stripped) / pi(y | guided), clipped."""
    prompt = encode_prompt(tok, prompt_text)
    at = consult["at_token"]
    guidance = tok(PROMPTS.guidance(consult["guidance"]), add_special_tokens=False)["input_ids"]
    guided = ids[:at] + guidance + ids[at:]

    def logps(completion):
        x = torch.tensor([prompt + completion])
        with torch.no_grad():
            lp = torch.log_softmax(model(x).logits[0, :-1].float(), -1)
        return lp[torch.arange(len(prompt) - 1, x.shape[1] - 1), x[0, len(prompt):]]

    s, g = logps(ids), logps(guided)
    raw = torch.exp(s[at:] - g[at + len(guidance):])
    return raw, raw.clamp(*clip)


@pytest.mark.slow
def test_weights_recomputed_from_the_log_are_what_trained_and_stay_clipped(runs, warm_models):
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer()
    c, run, seen = runs["strip"]
    lo, hi = c["methods"]["aipo"]["is_clip"]
    records = {r["id"]: r for r in read_jsonl(run.parent.parent / "train.jsonl")}
    base = AutoModelForCausalLM.from_pretrained(warm_models["tiny-llama"]).eval()   # the policy of step 1
    checked = clipped = 0
    for row, r, record in match(trained_rows(seen, tok), logged(run), records, tok):
        w = torch.tensor(row["w"])
        assert ((w >= lo - 1e-6) & (w <= hi + 1e-6)).all()
        if not r["consults"]:
            assert (w == 1).all() and r["is_weight"] is None
            continue
        at = r["consults"][0]["at_token"]
        assert (w[:at] == 1).all()                               # tokens before the guidance: on-policy
        stats = r["is_weight"]
        if len(row["ids"]) == at:
            assert stats is None
            continue
        post = w[at:]
        assert stats == pytest.approx({"mean": post.mean().item(), "min": post.min().item(),
                                       "max": post.max().item(), "clipped_fraction": stats["clipped_fraction"]})
        eps = 1e-6   # the weights are float32
        assert lo - eps <= stats["min"] <= stats["mean"] + eps and stats["mean"] <= stats["max"] + eps <= hi + 2 * eps
        # the advantage TRL's loss used is the sequence's advantage times w_t
        adv = torch.tensor(row["adv"]) if isinstance(row["adv"], list) else None
        if adv is not None and adv.abs().max() > 0:
            assert torch.allclose(adv / w, (adv / w)[0].expand_as(adv), atol=1e-5)
        if row["step"] == 1:
            raw, expected = recomputed_weights(base, PROMPTS.solve(record), row["ids"], r["consults"][0], tok,
                                               (lo, hi))
            assert torch.allclose(post, expected, atol=1e-4), (post, expected)
            outside = ((raw < lo) | (raw > hi)).float().mean().item()
            assert stats["clipped_fraction"] == pytest.approx(outside, abs=1e-6)
            checked += 1
            clipped += stats["clipped_fraction"] > 0
    assert checked >= 4 and clipped, "too few guided rollouts at step 1 to check the weights"


@pytest.mark.slow
def test_strip_and_keep_differ(runs):
    (_, strip_run, strip_seen), (_, keep_run, keep_seen) = runs["strip"], runs["keep"]
    first = lambda run: [(l["question_id"], [(r["completion"], r["consults"]) for r in l["rollouts"]])   # noqa: E731
                         for l in logged(run) if l["step"] == 1]
    assert first(strip_run) == first(keep_run)      # the same rollouts of step 1 (same weights, same seeds) ...
    strip_w = torch.cat([b["aipo_weight"][b["completion_mask"].bool()] for b in strip_seen if b["step"] == 1])
    keep_w = torch.cat([b["aipo_weight"][b["completion_mask"].bool()] for b in keep_seen if b["step"] == 1])
    assert (keep_w == 1).all() and (strip_w < 1).any()          # ... weighted only by strip
    assert all(b["advantages"].dim() == 1 for b in keep_seen) and all(b["advantages"].dim() == 2 for b in strip_seen)
    width = lambda seen: sum(int(b["completion_mask"].sum()) for b in seen if b["step"] == 1)   # noqa: E731
    assert width(keep_seen) > width(strip_seen)                 # ... guidance in context only with keep
    # (whether the final weights then differ depends on a guided group's rewards varying, i.e. on the tiny
    # models' luck: the loss inputs above are what `context` decides, and they differ by construction)


# ------------------------------------------------------------------------------------------ N processes

SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"


def study(root: Path, tiny_config: dict, warm_models: dict, gpus: int, accelerate: str) -> tuple[Path, Path]:
    """A study whose AIPO job for tiny-llama (helper: tiny-qwen-s) runs on `gpus` processes (0: plain python)."""
    c = copy.deepcopy(tiny_config)
    c["results"] = str(root / "results")
    c["models"] = {n: {"path": str(p), "size": "small"} for n, p in warm_models.items()}
    c["groups"] = {"group1": list(warm_models)}
    c["data"]["train"].update(n=48, n_val=8, params={"min_steps": 3, "max_steps": 5, "max_operand": 9})
    c["benchmarks"] = {"arith": {"source": "tiny_arith", "n": 8, "seed": 101}}
    c["training"].update(steps=STEPS, questions_per_step=QPS, num_generations=2, max_new_tokens=24, save_steps=1,
                         accelerate_config=accelerate)
    c["methods"] = {"aipo": {"trainer": "aipo", "helper": "tiny-qwen-s", "trigger": "stuck",
                             "guidance_max_new_tokens": 24}}
    c["tables"] = {"main": {"benchmarks": ["arith"], "methods": ["aipo"]}}
    c.pop("multi_agent", None)
    c["resources"] = {"default": {"cpus": 1, "mem_mb": 16000, "runtime": 30, "gpus": 0},
                      "rules": {"train_single": {"gpus": gpus}}}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(c, sort_keys=False))
    return path, root / "results/runs/aipo/tiny-llama/seed0/tiny-llama"


def train_via_snakemake(root, tiny_config, warm_models, gpus, accelerate) -> Path:
    config, run = study(root, tiny_config, warm_models, gpus, accelerate)
    r = subprocess.run([SNAKEMAKE, str(run / "final"), "--cores", "2", "--configfile", str(config)], cwd=REPO,
                       capture_output=True, text=True, timeout=900)
    log = root / "results/logs/train/aipo/tiny-llama/seed0.log"
    assert r.returncode == 0, r.stderr[-3000:] + (log.read_text()[-3000:] if log.exists() else "")
    return run


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, tiny_config, warm_models):
    return train_via_snakemake(tmp_path_factory.mktemp("aipo1"), tiny_config, warm_models, 0, "multi_gpu")


@pytest.mark.slow
@pytest.mark.parametrize("accelerate", ["multi_gpu", "deepspeed_zero3"])
def test_two_processes_train_what_one_does(tmp_path, tiny_config, warm_models, one_process, accelerate):
    run = train_via_snakemake(tmp_path, tiny_config, warm_models, 2, accelerate)
    questions = lambda r: [(line["step"], line["question_id"]) for line in logged(r)]   # noqa: E731
    assert questions(run) == questions(one_process) and len(questions(run)) == STEPS * QPS
    assert any(r["consults"] for line in logged(run) for r in line["rollouts"]), "no consultation: proves nothing"
    assert any(p.name.startswith("rng_state_1") or "rank_1" in p.name or "_1." in p.name
               for p in (run / "checkpoints" / f"checkpoint-{STEPS}").rglob("*")), "the second process left no state"
    metrics = [m for m in read_jsonl(run / "metrics.jsonl") if "aipo/consult_rate" in m]
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1))
    assert (run / "final" / "model.safetensors").is_file()


def _two_process_worker(rank: int, port: int, trigger: str, out: str) -> None:
    """One of two gloo processes building rollouts: only process 0's policy consults (see the test below)."""
    import json
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    from ilr.train import dist

    class Collective(Scripted):
        """generate() under ZeRO-3 syncs every process at every call: so does this engine (a gather)."""

        def sample(self, prompts, **kw):
            self.sizes = getattr(self, "sizes", []) + [dist.gather(len(prompts))]
            return super().sample(prompts, **kw)

    tok = build_tokenizer()
    if trigger == "request":
        script = policy_script if rank == 0 else (lambda text: "3+4=7 \\boxed{7}")
        records = [Q_CALLS] if rank == 0 else [Q_OTHER]
    else:   # process 0's question is never solved (stuck), process 1's always is
        script = lambda text: "3+4=7 \\boxed{7}"   # noqa: E731
        records = [Q_CALLS] if rank == 0 else [Q_OTHER]
    policy, helper = Collective(tok, script), Collective(tok, helper_script)
    builder = RolloutBuilder(method(trigger=trigger), ARGS, PROMPTS, tok, Agents(helper, PROMPTS, 0.0, 40))
    groups, _ = builder.build(records, [rank], policy)
    consults = sum(len(r.consults) for g in groups for r in g)
    Path(out, f"{rank}.json").write_text(json.dumps({"policy": policy.sizes, "helper": helper.sizes,
                                                     "consults": consults}))
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("trigger", ["request", "stuck"])
def test_processes_that_consult_unequally_call_the_engines_alike(tmp_path, trigger):
    """Process 0 consults, process 1 does not: both still call the policy's and the helper's engines the same
    number of times with as many prompts (padding), or a generate() under ZeRO-3 would wait forever."""
    import json

    import torch.multiprocessing as mp

    from ilr.train.dist import free_port

    ctx = mp.start_processes(_two_process_worker, args=(free_port(), trigger, str(tmp_path)), nprocs=2, join=False,
                             start_method="spawn")
    for _ in range(120):
        if ctx.join(timeout=1):
            break
    else:
        for p in ctx.processes:
            p.kill()
        pytest.fail("the two processes deadlocked")
    a, b = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert a["consults"] > 0 and b["consults"] == 0
    for engine in ("policy", "helper"):
        assert a[engine] == b[engine] and a[engine], engine
        assert all(n == m for n, m in a[engine]), a[engine]        # every call: as many prompts on both
