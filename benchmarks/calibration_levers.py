"""Which advantage estimator lets Perception Calibration act, measured on the rollouts of real ILR runs.

For each run's rollout log (`rollouts.jsonl` of an ILR-family run), the logged rewards are re-scored under
each candidate of METHOD.md section 5 and the advantages recomputed with and without calibration; the
figure is `calibration_effect` (ilr/train/ilr.py: the largest change calibration makes to an advantage,
after the best uniform rescale; below 1e-3 calibration changes no update) and the share of
(question, model) pairs where it changes anything:

  member, 0/1            GRPO as usual, correctness only            (inert by construction)
  member, format         GRPO as usual, + reward_format x well-formed (three levels)
  pooled, 0/1            over the group's m x G completions
  pooled, format
  member none, 0/1       R - mean, no std (inert for m = 2: a uniform x2)

    python benchmarks/calibration_levers.py results/runs/ilr/*/seed0 [--format 0.2]

The 0/1 rewards are read back from the logged ones (correct: R >= 1), so a run logged with a format reward
serves every candidate. Last line: the headline, the primary estimator's effect over all runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CANDIDATES = {  # name -> (pooled, scale_rewards, keep the format reward)
    "member, 0/1": (False, "group", False),
    "member, format": (False, "group", True),
    "pooled, 0/1": (True, "group", False),
    "pooled, format": (True, "group", True),
    "member none, 0/1": (False, "none", False),
}
PRIMARY = "member, format"


def rescored(rewards: list[float], keep_format: bool, weight: float) -> list[float]:
    """Correctness alone (R >= 1: right), or the logged reward; a 0/1 log gets `weight` for every
    well-formed answer it cannot see, so `keep_format` needs a run logged with a format reward."""
    return list(rewards) if keep_format else [1.0 if r >= 1.0 else 0.0 for r in rewards]


def effect(rows: list[dict], pooled: bool, scale: str, keep_format: bool, weight: float, eps: float) -> tuple[float, float]:
    from ilr.calibration import calibrate
    from ilr.train.rl import advantages
    from ilr.train.ilr import calibration_effect

    recomputed, moved, pairs = [], 0, 0
    for row in rows:
        raw = {n: rescored(m["rewards"], keep_format, weight) for n, m in row["models"].items()}
        cal = calibrate(raw, eps)
        a = advantages(cal, "pooled" if pooled else "member", scale)
        b = advantages(raw, "pooled" if pooled else "member", scale)
        one = {"models": {n: {"advantages": a[n], "advantages_uncalibrated": b[n]} for n in raw}}
        recomputed.append(one)
        for n in raw:
            pairs += 1
            moved += calibration_effect([{"models": {n: one["models"][n]}}]) > 1e-3
    return calibration_effect(recomputed), moved / max(pairs, 1)


def main() -> None:
    from ilr.io import read_jsonl
    from ilr.layout import RunPaths

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="ILR run directories (holding rollouts.jsonl)")
    ap.add_argument("--format", type=float, default=0.2, help="the format reward the runs were logged with")
    ap.add_argument("--eps", type=float, default=1e-6, help="calibration eps (training.calibration_eps)")
    a = ap.parse_args()
    logs = {p: RunPaths(p).rollouts for p in a.runs}
    runs = {p: read_jsonl(log) for p, log in logs.items() if log.is_file()}
    if not runs:
        sys.exit(f"no rollouts.jsonl under {[str(p) for p in a.runs]}")
    width = max(len(str(p)) for p in runs)
    print(f"{'run':<{width}}  " + "  ".join(f"{c:>18}" for c in CANDIDATES))
    everything = []
    for p, rows in runs.items():
        everything += rows
        cells = [effect(rows, *CANDIDATES[c], a.format, a.eps) for c in CANDIDATES]
        print(f"{str(p):<{width}}  " + "  ".join(f"{e:8.3f} ({100 * s:4.1f}%)" for e, s in cells))
    e, share = effect(everything, *CANDIDATES[PRIMARY], a.format, a.eps)
    print(f"calibration_effect ({PRIMARY}) {e:.3f}, calibration moves {100 * share:.1f}% of (question, model) pairs "
          f"over {len(runs)} runs")


if __name__ == "__main__":
    main()
