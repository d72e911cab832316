"""The RL maths of every trainer, as plain functions, each tested by hand values (tests/test_rl.py,
tests/test_ppo.py, tests/test_calibration.py):

- GRPO advantages of one question's completions, by estimator name (`ESTIMATORS`, config
  `training.advantages`): `member` (each model's own G completions, GRPO as usual) or `pooled` (the group's
  m x G), with TRL's `scale_rewards` (group | batch | none) and its unbiased std;
- PPO (ilr/train/ppo.py): per-token rewards (score + KL penalty), GAE, advantage whitening (over one
  process's tokens or every process's), the clipped policy and value losses, the split of a step's batch
  into minibatches;
- AIPO (ilr/train/aipo.py): the clipped importance weight w_t of a token sampled in one context and trained
  in another.

Perception Calibration, which maps rewards before any of this, is ILR's own: ilr/calibration.py.
Tensors are [B, T] over the completion tokens, right-padded; `mask` is 1 on completion tokens, 0 on padding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ilr.train import dist

# ------------------------------------------------------------------------------------ GRPO advantages


def unbiased_std(xs: Sequence[float]) -> float:
    """The std TRL's GRPO divides by (torch.std: unbiased); 0 for a single value."""
    mu = sum(xs) / len(xs)
    return (sum((x - mu) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0


def member_baseline(rewards: Mapping[str, Sequence[float]], name: str) -> list[float]:
    """GRPO as usual: a model's completions are compared with its own G completions of the question."""
    return list(rewards[name])


def pooled_baseline(rewards: Mapping[str, Sequence[float]], name: str) -> list[float]:
    """Every model's completions are compared with all m x G completions of the group on the question."""
    return [x for r in rewards.values() for x in r]


ESTIMATORS = {"member": member_baseline, "pooled": pooled_baseline}   # config training.advantages


def baseline_pool(rewards: Mapping[str, Sequence[float]], estimator: str) -> dict[str, list[float]]:
    """For each model, the rewards its advantages are normalised over (the estimator's baseline group)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {estimator!r} (known: {', '.join(ESTIMATORS)})")
    return {n: ESTIMATORS[estimator](rewards, n) for n in rewards}


def advantages(rewards: Mapping[str, Sequence[float]], estimator: str, scale: str,
               batch_std: Mapping[str, float] | None = None, eps: float = 1e-4) -> dict[str, list[float]]:
    """GRPO advantages of each model's completions of one question (TRL's formula: (R - mean) / (std + 1e-4),
    std unbiased), mean and std over the estimator's baseline group. `scale`: TRL's scale_rewards: `group`
    divides by that group's std, `batch` by `batch_std[model]` (the std of the rewards of the step that model
    trains on), `none` by nothing."""
    pools = baseline_pool(rewards, estimator)
    out = {}
    for name, r in rewards.items():
        group = pools[name]
        if scale == "group":
            divisor = unbiased_std(group) + eps
        elif scale == "batch":
            divisor = batch_std[name] + eps
        elif scale == "none":
            divisor = 1.0
        else:
            raise ValueError(f"unknown scale_rewards {scale!r} (group, batch or none)")
        mean = sum(group) / len(group)
        out[name] = [(x - mean) / divisor for x in r]
    return out


# ------------------------------------------------------------------------------------------------ PPO


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries (unbiased variance, as TRL's former masked_whiten)."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = (((x - mean) ** 2) * mask).sum() / (n - 1).clamp(min=1)
    return ((x - mean) * torch.rsqrt(var + eps)) * mask


def token_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor | None,
                  mask: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: -beta * (logp - ref_logp) on each completion token, plus the sequence's score
    on its last token. Returns (rewards [B, T], per-token KL [B, T]); mask is right-padded."""
    mask = mask.to(logprobs.dtype)
    if ref_logprobs is None:
        kl = torch.zeros_like(logprobs)
    else:
        kl = (logprobs - ref_logprobs) * mask
    rewards = -beta * kl
    last = mask.sum(1).long() - 1
    rows = torch.arange(len(scores), device=rewards.device)
    rewards[rows, last.clamp(min=0)] += scores.to(rewards.dtype) * (last >= 0)
    return rewards * mask, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over right-padded sequences; V after the last token is 0.

    delta_t = r_t + gamma V_{t+1} - V_t ; A_t = delta_t + gamma lam A_{t+1} ; returns R_t = A_t + V_t.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_v = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    adv = adv * mask
    return adv, (adv + values) * mask


def policy_loss_terms(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                      epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO clipped loss max(-A r, -A clip(r, 1-eps, 1+eps)) and whether clipping was active."""
    ratio = torch.exp(logprobs - old_logprobs)
    loss1 = -advantages * ratio
    loss2 = -advantages * torch.clamp(ratio, 1.0 - epsilon, 1.0 + epsilon)
    return torch.max(loss1, loss2), (loss2 > loss1).float()


def value_loss_terms(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                     clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clipped value loss 0.5 max((V - R)^2, (clip(V, V_old -+ c) - R)^2), and clip activity."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    l1 = (values - returns) ** 2
    l2 = (clipped - returns) ** 2
    return 0.5 * torch.max(l1, l2), (l2 > l1).float()


def policy_loss(logprobs, old_logprobs, advantages, mask, epsilon) -> torch.Tensor:
    return masked_mean(policy_loss_terms(logprobs, old_logprobs, advantages, epsilon)[0], mask)


def value_loss(values, old_values, returns, mask, clip) -> torch.Tensor:
    return masked_mean(value_loss_terms(values, old_values, returns, clip)[0], mask)


def global_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """masked_whiten with the mean and (unbiased) variance over every process's tokens."""
    n, s1, s2 = dist.sum_all([mask.sum().item(), (x * mask).sum().item(), (x * x * mask).sum().item()])
    mean = s1 / max(n, 1)
    var = max(s2 - n * mean * mean, 0.0) / max(n - 1, 1)
    return ((x - mean) * (var + eps) ** -0.5) * mask


def minibatch_rows(n_rows: int, n_mini: int, device=None) -> list[torch.Tensor]:
    """The row indices of each of `n_mini` minibatches of one process's `n_rows` sequences: row i goes to
    minibatch i mod n_mini.

    Why strided: every process holds a contiguous block of the step's sequences (dist.my_slice, G per question)
    whose length is a multiple of n_mini, so sequence s of the step is in minibatch s mod n_mini whatever the
    number of processes: minibatch k is the same set of sequences under 1 or N processes, and N processes make
    the updates one process would make from the same samples. Each minibatch also holds some of every
    question's G completions."""
    if n_mini < 1 or n_rows % n_mini:
        raise ValueError(f"{n_rows} sequences per process cannot be split into {n_mini} equal minibatches")
    return [torch.arange(k, n_rows, n_mini, device=device) for k in range(n_mini)]


# ----------------------------------------------------------------------------------------------- AIPO


def importance_weight(target_logps: torch.Tensor, behaviour_logps: torch.Tensor, lo: float, hi: float
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """AIPO's w_t = clip(pi(y_t | trained context) / pi_old(y_t | sampled context), lo, hi) per token, and the
    raw ratio (for the clipped fraction). The context a token was sampled in (with the agent's guidance) is
    not the one it trains in (stripped): w_t corrects the off-context sample (METHOD.md, AIPO)."""
    raw = torch.exp(target_logps - behaviour_logps)
    return raw.clamp(lo, hi), raw
