"""Training curves: one PNG per training run, from the per-step metrics every trainer writes (the files'
names: ilr/layout.py RunPaths).

- grpo: `<model>/metrics.jsonl` (TRL's log history: reward, kl, completion length per step)
- ppo:  `<model>/metrics.jsonl` (reward_mean, kl, completion_length per step)
- ILR family: `metrics.jsonl` (per model raw and calibrated reward, cooperation fraction) and
  `<model>/trainer_log.jsonl` (TRL's log history of each member: kl, completion length)
Panels: reward (and calibrated reward), KL to the reference (where beta > 0), completion length,
and the cooperation fraction for ILR runs.
"""

from __future__ import annotations

from pathlib import Path

from ilr.io import atomic_path, read_jsonl
from ilr.layout import RunPaths


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None and "step" in r]
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def _rows(log: Path) -> list[dict]:
    return read_jsonl(log) if log.exists() else []


def load_curves(run_dir: str | Path) -> dict[str, dict[str, tuple[list, list]]]:
    """panel -> label -> (steps, values)."""
    run = RunPaths(run_dir)
    panels: dict[str, dict] = {"reward": {}, "KL": {}, "completion length": {}, "cooperation fraction": {}}
    group = _rows(run.metrics)
    for model in run.members():
        n = model.name
        if group:  # ILR family
            panels["reward"][n] = _series(group, f"{n}/reward")
            if any(f"{n}/calibrated_reward" in r for r in group):
                panels["reward"][f"{n} (calibrated)"] = _series(group, f"{n}/calibrated_reward")
            rows = _rows(model.trainer_log)
            length = "completions/mean_length"
        else:
            rows = _rows(model.metrics)
            reward = "reward_mean" if any("reward_mean" in r for r in rows) else "reward"
            panels["reward"][n] = _series(rows, reward)
            length = "completion_length" if any("completion_length" in r for r in rows) else "completions/mean_length"
        panels["KL"][n] = _series(rows, "kl")
        panels["completion length"][n] = _series(rows, length)
    if group:
        panels["cooperation fraction"]["group"] = _series(group, "cooperation_fraction")
    return {p: {k: v for k, v in s.items() if v[0]} for p, s in panels.items() if any(v[0] for v in s.values())}


def plot_training_curve(run_dir: str | Path, out: str | Path | None = None, title: str | None = None) -> Path | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = load_curves(run_dir)
    if not panels:
        return None
    out = Path(out) if out else RunPaths(run_dir).curve
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=110, squeeze=False)
    for ax, (panel, series) in zip(axes[0], panels.items()):
        for label, (x, y) in series.items():
            ax.plot(x, y, marker="." if len(x) < 40 else None, label=label,
                    linestyle="--" if "calibrated" in label else "-")
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(series) > 1 or panel == "reward":
            ax.legend(fontsize=7)
    fig.suptitle(title or str(run_dir), fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
