"""The shared-prefix loss forward (ilr/train/shared_prefix.py, config training.shared_prefix): each prompt runs
once for its completions, and every completion token's log-probability, entropy and gradient is the one TRL's
per-row forward gives (the same maths, other rounding: compared at a tolerance far above fp32's rounding and far
below any real difference), on real models of both architectures and both mask formats; then in real ILR runs,
TRL's logged loss, entropy, KL and gradient norm on and off."""

from __future__ import annotations

import contextlib
import json
import random

import pytest
import torch
import yaml

from conftest import run_ilr, train_args
from factories import make_random_model
from ilr.io import read_jsonl
from ilr.train.shared_prefix import logps_and_entropies, pack, padded_as_trl_pads

PAD = 0


def trl_batch(groups: list[tuple[int, list[int]]], seed: int = 0):
    """TRL's layout of a step: per (prompt length, completion lengths), rows [left-padded prompt | right-padded
    completion], random tokens; returns input_ids, attention_mask and the completion width."""
    rng = random.Random(seed)
    rows = []
    for p, lengths in groups:
        prompt = [rng.randrange(3, 90) for _ in range(p)]
        rows += [(prompt, [rng.randrange(3, 90) for _ in range(n)]) for n in lengths]
    P, C = max(len(p) for p, _ in rows), max(len(c) for _, c in rows)
    ids = torch.tensor([[PAD] * (P - len(p)) + p + c + [PAD] * (C - len(c)) for p, c in rows])
    mask = torch.tensor([[0] * (P - len(p)) + [1] * (len(p) + len(c)) + [0] * (C - len(c)) for p, c in rows])
    return ids, mask, C


# three prompts with G = 4 completions of mixed lengths (one as long as the step's longest), a prompt alone,
# and a prompt whose four completions are all of the step's longest length
GROUPS = [(30, [5, 17, 1, 9]), (61, [12, 3, 25, 7]), (44, [25, 2, 11, 6]), (8, [14]), (12, [25, 25, 25, 25])]


@pytest.mark.parametrize("arch,attn", [("llama", "sdpa"), ("qwen2", "sdpa"), ("llama", "eager")])
def test_packed_forward_is_trls_forward(tmp_path, arch, attn):
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    path = make_random_model(tmp_path / arch, arch=arch, hidden=32, layers=2)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, attn_implementation=attn)
    add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))
    ids, mask, C = trl_batch(GROUPS)
    mask[6, -C:] = 0   # a completion TRL masks whole (mask_truncated_completions)
    completion_mask = mask[:, -C:].bool()

    # TRL's forward (GRPOTrainer._get_per_token_logps_and_entropies): every row whole, the completion scored
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-C] = -100
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    want_logps, want_entropy = out.log_probs[:, -C:], out.entropy[:, -C:]
    (want_logps * completion_mask).sum().backward()
    want_grad = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    logps, entropy = logps_and_entropies(model, attn, ids, mask, C, True, contextlib.nullcontext)
    (logps * completion_mask).sum().backward()
    assert logps.shape == entropy.shape == (ids.size(0), C)
    assert torch.allclose(logps[completion_mask], want_logps[completion_mask], atol=1e-4, rtol=0)
    assert torch.allclose(entropy[completion_mask], want_entropy[completion_mask], atol=1e-4, rtol=0)
    assert (logps[~completion_mask] == 0).all() and (entropy[~completion_mask] == 0).all()
    assert want_logps[completion_mask].abs().min() > 1e-3   # the premise: real, unequal log-probabilities
    for n, p in model.named_parameters():
        scale = want_grad[n].abs().max()
        assert scale > 0, n
        assert torch.allclose(p.grad, want_grad[n], atol=1e-4 * scale, rtol=0), n


def test_pack_runs_each_prompt_once_and_never_more_than_trl():
    ids, mask, C = trl_batch(GROUPS)
    packed = pack(ids, mask, C)
    R, L = packed.input_ids.shape
    B, width = ids.shape
    # five prompts, a row each: the longest the last one's (11 + 4 x 25), 5 x 111 positions and 5 x 111^2
    # attention scores against TRL's 17 x 86 and 17 x 86^2
    assert (R, L) == (5, 111)
    assert R * L <= B * width and R * L ** 2 <= B * width ** 2
    # every completion token is scored exactly once, predicted from the token before it
    scored = packed.source[packed.scored]
    completion_mask = mask[:, -C:].reshape(-1).bool()
    assert sorted(scored.tolist()) == torch.nonzero(completion_mask).flatten().tolist()
    assert torch.equal(packed.labels.reshape(-1)[packed.scored], ids[:, -C:].reshape(-1)[scored])
    # a completion sees its prompt, never a sibling
    allowed = packed.allowed[0, 0]
    first = [i for i in range(L) if packed.position_ids[0, i] == 29]   # every completion's first position
    assert len(first) == 4 and not allowed[first[1], first[0]] and allowed[first[1], 28]


def test_long_completions_split_a_prompt_where_one_row_would_cost_more():
    """A prompt with four completions of the step's longest length and one with four short ones: in one row
    each, the long one's row (9 + 4 x 40) would make 2 x 169^2 attention scores against TRL's 8 x 50^2; so a
    row per long completion (each as long as TRL's), and the short ones together."""
    ids, mask, C = trl_batch([(10, [40, 40, 40, 40]), (10, [1, 1, 1, 1])])
    packed = pack(ids, mask, C)
    assert tuple(packed.input_ids.shape) == (5, 49)
    assert packed.scored.sum() == mask[:, -C:].sum()


def test_only_trls_padding_is_packed():
    ids, mask, C = trl_batch(GROUPS)
    assert padded_as_trl_pads(mask, C)
    holed = mask.clone()
    holed[0, -C + 1] = 0          # a masked token inside a completion (row 0's is 5 long)
    assert not padded_as_trl_pads(holed, C)
    holed = mask.clone()
    holed[0, -C - 3] = 0          # a hole inside a prompt
    assert not padded_as_trl_pads(holed, C)


def test_empty_prompt_is_refused():
    ids = torch.tensor([[PAD, PAD, 5, 6]])
    mask = torch.tensor([[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="row 0: an empty prompt"):
        pack(ids, mask, 2)


def test_ilr_member_logs_the_same_step_with_and_without(warm_study):
    """A real ILR step (TRL's GRPOTrainer per member, a reference model at beta > 0) with the shared-prefix forward
    and with TRL's: the same rollouts, and TRL's logged loss, entropy, KL and gradient norm agree."""
    cfg, config_path, d = warm_study
    cfg["training"].update(steps=1, beta=0.04, save_steps=1)
    logs = {}
    for on in (True, False):
        cfg["training"]["shared_prefix"] = on
        path = d / f"config-{on}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        out = d / f"sp-{on}"
        proc = run_ilr(*train_args(d, path, "ilr", out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        first_step = {n: json.loads((out / n / "trainer_log.jsonl").read_text().splitlines()[0])
                      for n in cfg["groups"]["group1"]}
        logs[on] = first_step, read_jsonl(out / "rollouts.jsonl")
    assert logs[True][1] == logs[False][1]
    for n, on in logs[True][0].items():
        off = logs[False][0][n]
        for key in ("loss", "entropy", "kl", "grad_norm"):
            assert on[key] == pytest.approx(off[key], rel=1e-4, abs=1e-6), (n, key, on[key], off[key])
        assert off["grad_norm"] > 0 and off["kl"] >= 0


def test_grpo_trainer_scores_through_the_shared_prefix(study):
    """grpo_trainer with shared_prefix makes a TRL GRPOTrainer whose forward is the shared-prefix one, and it
    returns what TRL's own method returns in that trainer (its autocast, its unwrapped model); without it, TRL's."""
    from trl import GRPOTrainer

    from ilr import config as cfg
    from ilr.train import preempt
    from ilr.train.common import grpo_config, grpo_trainer, load_for_training, records_dataset

    config, _ = study
    path = config["models"]["tiny-llama"]["path"]
    args = cfg.training_args(config, "grpo")
    records = [{"id": f"q{i}", "question": f"{i} + 1", "answer": str(i + 1)} for i in range(4)]
    ids, mask, C = trl_batch(GROUPS[:3])
    trainers = {}
    for on in (True, False):
        model, tokenizer = load_for_training(path)
        trainers[on] = grpo_trainer(GRPOTrainer, model, tokenizer, records_dataset(records, lambda r: r["question"]),
                                    lambda completions, **_: [0.0] * len(completions),
                                    grpo_config(args, 0, study[1].parent / f"out-{on}"), preempt.stop_callback(),
                                    shared_prefix=on)
    assert isinstance(trainers[True], GRPOTrainer) and type(trainers[False]) is GRPOTrainer
    trainer = trainers[True]
    assert type(trainer)._get_per_token_logps_and_entropies is not GRPOTrainer._get_per_token_logps_and_entropies
    with torch.no_grad():
        got = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, C, batch_size=5,
                                                         compute_entropy=True)
        want = GRPOTrainer._get_per_token_logps_and_entropies(trainer, trainer.model, ids, mask, C, batch_size=5,
                                                              compute_entropy=True)
    completion_mask = mask[:, -C:].bool()
    for g, w in zip(got[:2], want[:2]):
        assert torch.allclose(g[completion_mask], w[completion_mask], atol=1e-4, rtol=0)
    assert got[2] is None
