"""The `ppo` baseline: GAE, the clipped losses (hand-computed), minibatches under N processes, a tiny run,
kill-and-resume (its TensorBoard curves too), and the value warm-up (the critic learns, the actor does not move)."""

from __future__ import annotations

import json

import pytest
import torch

from ilr.train import ppo, rl

# ----------------------------------------------------------------------------- the maths


def test_token_rewards_and_gae_against_hand_values():
    # One sequence of 3 completion tokens (+1 pad), score 1, beta 0.1.
    logp = torch.tensor([[-1.0, -2.0, -0.5, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    rewards, kl = rl.token_rewards(torch.tensor([1.0]), logp, ref, mask, beta=0.1)
    # kl = [0.5, -1.0, 0.0]; rewards = -0.1 kl, + 1 on the last token
    assert torch.allclose(kl, torch.tensor([[0.5, -1.0, 0.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.1, 1.0, 0.0]]))

    values = torch.tensor([[0.2, 0.4, 0.6, 9.9]])   # the pad's value must be ignored
    adv, ret = rl.gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # deltas: d2 = 1.0 + 0 - 0.6 = 0.4 ; d1 = 0.1 + 0.6 - 0.4 = 0.3 ; d0 = -0.05 + 0.4 - 0.2 = 0.15
    a2 = 0.4
    a1 = 0.3 + 0.95 * a2          # 0.68
    a0 = 0.15 + 0.95 * a1         # 0.796
    assert torch.allclose(adv, torch.tensor([[a0, a1, a2, 0.0]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[a0 + 0.2, a1 + 0.4, a2 + 0.6, 0.0]]), atol=1e-6)

    # gamma < 1 changes the bootstrap: d1 = 0.1 + 0.5 * 0.6 - 0.4 = 0.0, a1 = 0 + 0.5*0.5*0.4
    adv, _ = rl.gae(rewards, values, mask, gamma=0.5, lam=0.5)
    assert torch.allclose(adv[0, 1], torch.tensor(0.1), atol=1e-6)

    # Whitening: zero mean, unit (unbiased) std over the masked tokens; the pad stays 0.
    w = rl.masked_whiten(adv, mask)
    assert abs(w[0, :3].mean().item()) < 1e-6 and abs(w[0, :3].std().item() - 1) < 1e-4 and w[0, 3] == 0


def test_clipped_policy_and_value_losses_against_hand_values():
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1, 2.0]]))   # ratios 1.5, 0.5, 1.1, 2.0 (last is a pad)
    adv = torch.tensor([[1.0, 1.0, -2.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    # eps 0.2: token0 max(-1.5, -1.2) = -1.2 (clipped); token1 max(-0.5, -0.8) = -0.5;
    # token2 max(2.2, 2.2) = 2.2  -> mean (-1.2 - 0.5 + 2.2) / 3
    loss = rl.policy_loss(new, old, adv, mask, epsilon=0.2)
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 2.2) / 3, abs=1e-6)

    v = torch.tensor([[1.0, 0.0, 0.5, 7.0]])
    v_old = torch.tensor([[0.5, 0.5, 0.5, 0.0]])
    ret = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    # clip 0.2: token0 clipped 0.7 -> max(1.0, 0.49) = 1.0 ; token1 clipped 0.3 -> max(1.0, 0.49) = 1.0 ;
    # token2 unclipped 0.25 ; 0.5 * mean(1.0, 1.0, 0.25)
    assert rl.value_loss(v, v_old, ret, mask, clip=0.2).item() == pytest.approx(0.5 * 2.25 / 3, abs=1e-6)
    # A case where the clipped term wins: V moved toward the return beyond the clip range.
    v2 = torch.tensor([[0.1, 0.0, 0.0, 0.0]])
    v2_old = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    r2 = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    m2 = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    # unclipped (0.1)^2 = 0.01 ; clipped V = 0.8 -> 0.64 ; 0.5 * 0.64
    assert rl.value_loss(v2, v2_old, r2, m2, clip=0.2).item() == pytest.approx(0.32, abs=1e-6)


def test_minibatches_are_the_same_sequences_under_any_number_of_processes():
    # A step of 4 questions x G 4 = 16 sequences in 4 minibatches; each process holds a contiguous block.
    n_seq, k = 16, 4
    def global_minibatches(n_proc):
        block = n_seq // n_proc
        return [sorted(r * block + i for r in range(n_proc) for i in rl.minibatch_rows(block, k)[j].tolist())
                for j in range(k)]
    one = global_minibatches(1)
    assert one == [[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15]]
    assert global_minibatches(2) == one and global_minibatches(4) == one
    with pytest.raises(ValueError):
        rl.minibatch_rows(6, 4)


# ----------------------------------------------------------------------------- a tiny run

CHARS = list("0123456789+-*=()?:. \nQAabcdefghijklmnopqrstuvwxyz\\{}")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("tiny-llama")
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>"] + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                      pad_token_id=0, eos_token_id=1, bos_token_id=1)
    LlamaForCausalLM(cfg).save_pretrained(d)
    fast.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("data") / "train.jsonl"
    rows = [{"id": f"q{i}", "question": f"{i}+{i}=?", "answer": str(2 * i), "kind": "math",
             "benchmark": "tiny_arith", "tests": [], "options": [], "metadata": {}} for i in range(6)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _config(model_dir, steps=4, save_steps=2, beta=0.05, **ppo_keys):
    """The tiny study's config with one model and a ppo method, validated (the schema fills ppo's defaults):
    2 passes of 2 minibatches per step, one critic-only step first, unless `ppo_keys` say otherwise."""
    import yaml

    from conftest import REPO
    from ilr import study

    c = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    c["models"] = {"tiny": {"path": str(model_dir), "size": "small"}}
    c["groups"] = {"g": ["tiny", "tiny2"]}
    c["models"]["tiny2"] = {"path": str(model_dir), "size": "small"}
    c["training"].update(steps=steps, questions_per_step=2, num_generations=2, learning_rate=1e-3, beta=beta,
                         epsilon=0.2, temperature=1.0, max_new_tokens=6, save_steps=save_steps)
    c["methods"] = {"ppo": {"trainer": "ppo", "vf_coef": 0.5, "gae_lambda": 0.95, "gae_gamma": 1.0,
                            "micro_batch_size": 3, "critic_learning_rate": 1e-2, "ppo_epochs": 2,
                            "num_mini_batches": 2, "value_warmup_steps": 1, **ppo_keys}}
    c["tables"] = {"main": {"benchmarks": ["arith"]}}
    c.pop("multi_agent")
    return study.validate(c)


def _reward(record, completion):   # has variance on a random tiny model; independent of ilr.grading
    return 1.0 if any(c.isdigit() for c in completion) else 0.0


def _weights(path):
    from safetensors.torch import load_file
    return load_file(str(path / "model.safetensors"))


def test_tiny_run_writes_final_and_metrics(tiny_model, train_file, tmp_path):
    # beta 0: no reference model is loaded and the KL column is null (the resume test covers beta > 0).
    ppo.train_ppo(_config(tiny_model, steps=3, save_steps=2, beta=0.0, report_to=[]), "ppo", "tiny", 0,
                  str(train_file), str(tmp_path), reward_fn=_reward)
    run = tmp_path / "tiny"
    assert not list(tmp_path.rglob("events.out.tfevents.*"))   # report_to []: no curves
    assert (run / "final" / "model.safetensors").is_file() and (run / "final" / "tokenizer.json").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        for k in ("reward_mean", "value_loss", "policy_loss", "completion_length", "ppo_kl"):
            assert isinstance(r[k], float), (k, r)
        assert r["kl"] is None
    assert [r["value_warmup"] for r in rows] == [True, False, False]
    # 4 updates per step: after the first, the actor has moved from the sampling policy (log pi_old - log pi != 0)
    assert all(r["ppo_kl"] != 0.0 for r in rows[1:])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-3"]
    # The actor moved away from the base model.
    base, final = _weights(tiny_model), _weights(run / "final")
    assert any(not torch.equal(base[k], final[k]) for k in base)


def test_kill_and_resume_gives_identical_weights(tiny_model, train_file, tmp_path):
    cfg = _config(tiny_model, steps=4, save_steps=2)
    ppo.train_ppo(cfg, "ppo", "tiny", 0, str(train_file), str(tmp_path / "a"), reward_fn=_reward)
    # "Killed" after step 3: checkpoint-2 exists, step 3's metrics row was written but not checkpointed.
    ppo.train_ppo(cfg, "ppo", "tiny", 0, str(train_file), str(tmp_path / "b"), reward_fn=_reward, stop_after=3)
    b = tmp_path / "b" / "tiny"
    assert not (b / "final").exists() and (b / "checkpoints" / "checkpoint-2").is_dir()
    ppo.train_ppo(cfg, "ppo", "tiny", 0, str(train_file), str(tmp_path / "b"), reward_fn=_reward)
    wa, wb = _weights(tmp_path / "a" / "tiny" / "final"), _weights(b / "final")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ma = (tmp_path / "a" / "tiny" / "metrics.jsonl").read_text().splitlines()
    mb = (b / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in mb] == [1, 2, 3, 4]
    assert all(isinstance(json.loads(x)["kl"], float) for x in mb)
    assert [json.loads(x)["reward_mean"] for x in ma] == [json.loads(x)["reward_mean"] for x in mb]
    # the curves (training.report_to's default, tensorboard): step 3 of the killed run was purged on resume
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(b / "tensorboard"))
    acc.Reload()
    for key in ("reward_mean", "policy_loss", "value_loss"):
        events = acc.Scalars(f"train/{key}")
        assert [e.step for e in events] == [1, 2, 3, 4]
        assert [e.value for e in events] == pytest.approx([json.loads(x)[key] for x in mb], rel=1e-6)
    assert "train/kl" in acc.Tags()["scalars"] and "train/value_warmup" in acc.Tags()["scalars"]


def test_value_warmup_trains_the_critic_only(tiny_model, train_file, tmp_path):
    """Every step a warm-up step, with returns fixed by construction: reward 1 for every completion, no KL
    (beta 0), gamma = lambda = 1, so the return at every completion token is 1 whatever was sampled. The critic
    regresses onto that constant, so its loss falls; the actor's weights do not move (weight decay would move
    them at a learning rate > 0) and its Adam moments stay 0 (its loss would move them)."""
    cfg = _config(tiny_model, steps=6, save_steps=6, beta=0.0, gae_lambda=1.0, value_warmup_steps=6, weight_decay=0.1)
    ppo.train_ppo(cfg, "ppo", "tiny", 0, str(train_file), str(tmp_path), reward_fn=lambda record, text: 1.0)
    run = tmp_path / "tiny"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["value_warmup"] for r in rows] == [True] * 6
    assert all(r["return_mean"] == pytest.approx(1.0) for r in rows)          # the premise
    losses = [r["value_loss"] for r in rows]
    assert losses[-1] < 0.5 * losses[0], losses
    assert rows[-1]["value_mean"] != rows[0]["value_mean"]
    base, final = _weights(tiny_model), _weights(run / "final")
    assert base.keys() == final.keys() and all(torch.equal(base[k], final[k]) for k in base)
    opt = torch.load(run / "checkpoints" / "checkpoint-6" / "state" / "optimizer.bin", weights_only=False)
    actor, critic = (g["params"] for g in opt["param_groups"])    # the optimizer's groups: actor, critic
    assert all(not opt["state"][i]["exp_avg"].any() and not opt["state"][i]["exp_avg_sq"].any() for i in actor)
    assert all(opt["state"][i]["exp_avg"].any() for i in critic)


# The trainer under N processes, with a sampler that gives a question the same completions wherever it is
# sampled, so that 1 and 2 processes train on the same samples: completion k is the prompt's last 2 + k + (sum of
# its ids mod 3) ids and EOS, so the processes' token counts differ.
TWO_PROCESS_RUN = """
import json, sys
from ilr import generation
from ilr.train import dist, ppo

def sample(self, prompts, n=1, **kwargs):
    eos = self.tokenizer.eos_token_id
    return [[generation.Sample(p, p[-(2 + k + sum(p) % 3):] + [eos], str(k), False) for k in range(n)] for p in prompts]

generation.TransformersEngine.sample = sample
dist.init()
config, train, out = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
ppo.train_ppo(config, "ppo", "tiny", 0, train, out, reward_fn=lambda record, text: float(record["id"] in ("q0", "q3")))
"""


@pytest.mark.slow
def test_two_processes_make_the_updates_of_one(tiny_model, train_file, tmp_path):
    """2 passes of 2 minibatches per step: each process holds half of every minibatch (rl.minibatch_rows)
    and each update's loss is the token mean over the whole minibatch, so 2 processes (DDP over gloo) end
    with the weights of 1, up to float rounding (a split into each process's contiguous halves differs by 0.1)."""
    import subprocess
    import sys

    from conftest import REPO
    from ilr.train import dist

    cfg = _config(tiny_model, steps=3, save_steps=3, beta=0.05)
    cfg["training"].update(questions_per_step=4)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "run.py").write_text(TWO_PROCESS_RUN)
    args = [str(tmp_path / "run.py"), str(tmp_path / "config.json"), str(train_file)]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(REPO / "config" / "accelerate" / "multi_gpu.yaml"), "--mixed_precision", "no",
              "--num_processes", "2", "--main_process_port", str(dist.free_port())]
    for cmd, out in (([sys.executable], "one"), (launch, "two")):
        r = subprocess.run([*cmd, *args, str(tmp_path / out)], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    one, two = (torch.load(tmp_path / out / "tiny" / "checkpoints" / "checkpoint-3" / "state" / "pytorch_model.bin")
                for out in ("one", "two"))
    assert one.keys() == two.keys() and any(k.startswith("critic.") for k in one)
    assert max((one[k] - two[k]).abs().max().item() for k in one) < 1e-4
    base = _weights(tiny_model)
    assert max((one["actor." + k] - base[k]).abs().max().item() for k in base) > 1e-3   # the actor did learn
