"""Perception Calibration (METHOD.md section 5): a group member's rewards calibrated against its peers'.
The advantages computed from them are GRPO's (ilr/train/rl.py, `advantages`).

    Rbar_{i,k} = R_{i,k} + sum_{l != i} clip((R_{i,k} - mean(R_l)) / max(max(R_l) - min(R_l), eps),
                                             -1/(m-1), 1/(m-1))

With eps = 1e-6 (choice): when a peer's rewards are all equal, the term is +-1/(m-1) if R_{i,k}
differs from them and 0 if equal.

Taken literally, calibration changes no GRPO update: with 0/1 rewards every per-completion function of
R (the peers' statistics fixed per question) is affine in R with a positive slope, and GRPO's (R - mean)
/ std within a model's G completions is invariant to it. Three (choice)s break the invariance, each a
config key (`training:`), measured by `calibration_effect` (how far calibration moved the advantages):
- `reward_format` > 0: R = correct + reward_format * well-formed (ilr.train.common.rule_reward): three
  reward levels, and the calibration map is no longer affine on them;
- `advantages: pooled`: advantages over the group's m x G completions of the question instead of each
  model's own G (`member`, GRPO as usual), so a model's calibrated rewards are compared with its peers';
- `scale_rewards: none` with m >= 3: the slope then differs from question to question.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def calibrate(rewards: Mapping[str, Sequence[float]], eps: float = 1e-6) -> dict[str, list[float]]:
    """Calibrated rewards of every model of a group, from each model's G raw rewards on one question."""
    m = len(rewards)
    if m < 2:
        raise ValueError(f"Perception Calibration needs m >= 2 models, got {m}")
    bound = 1.0 / (m - 1)
    stats = {name: (sum(r) / len(r), max(r) - min(r)) for name, r in rewards.items()}
    out = {}
    for i, own in rewards.items():
        out[i] = [
            r + sum(min(max((r - mean_l) / max(spread_l, eps), -bound), bound)
                    for l, (mean_l, spread_l) in stats.items() if l != i)
            for r in own
        ]
    return out
