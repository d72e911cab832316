"""Perception Calibration (METHOD.md section 5).

    Rbar_{i,k} = R_{i,k} + sum_{l != i} clip((R_{i,k} - mean(R_l)) / max(max(R_l) - min(R_l), eps),
                                             -1/(m-1), 1/(m-1))

With eps = 1e-6 (choice): when a peer's rewards are all equal, the term is +-1/(m-1) if R_{i,k}
differs from them and 0 if equal.
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
