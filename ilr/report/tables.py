"""The `tables` stage: the paper's tables and the cooperation-ratio figure from the evaluation files.

Reads only the evaluation files the tables need (ilr.config.table_rows: the same list the Snakefile
gives the `tables` rule as inputs), `<eval-dir>/<method>/<group>/<model>/seed<S>/<benchmark>.json`,
and writes, in `--out-dir`:
  main.{md,csv}        paper Table 1: a block per model, rows Base, GRPO, PPO, ILR-<group> for every
                       group holding the model; a column per `tables.main.benchmarks` entry and Avg
  ablation.{md,csv}    Full ILR, DI-only, PC-only for each (model, group) of `tables.ablation.rows`
  coop_ratio.{md,csv}  p = 0.0 .. 1.0 and IRT for each model of `tables.coop_ratio.group`
and `--figures-dir`/coop_ratio.png (average accuracy against p, IRT in red).

Numbers are accuracies in percent with a 95% confidence interval. A cell of one benchmark and one
seed reports its evaluation file's accuracy and bootstrap CI. A merged column (AIME = aime24 +
aime25), several seeds (per-question accuracy averaged over seeds) and the Avg column (mean of the
columns named in `average`, default all) are bootstrapped over questions here: `evaluation.bootstrap`
resamples, each column's questions resampled independently, seed 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ilr.io import DataError, read_json, write_text

TABLES = ("main", "ablation", "coop_ratio")
TITLES = {
    "main": "Main results (paper Table 1), reproduced",
    "ablation": "Ablation: Full ILR, DI-only (no Perception Calibration), PC-only (no Dynamic Interaction)",
    "coop_ratio": "Cooperation ratio (paper Fig. 3): fixed cooperation probability p vs IRT",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--eval-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--figures-dir", required=True)


class EvalStore:
    """Evaluation files, read once each."""

    def __init__(self, eval_dir: str | Path):
        self.eval_dir = Path(eval_dir)
        self.cache: dict[Path, dict] = {}

    def path(self, method: str, group: str, model: str, seed: int, bench: str) -> Path:
        return self.eval_dir / method / group / model / f"seed{seed}" / f"{bench}.json"

    def get(self, method: str, group: str, model: str, seed: int, bench: str) -> dict:
        path = self.path(method, group, model, seed, bench)
        if path not in self.cache:
            if not path.exists():
                raise DataError(f"{path}: evaluation file missing (method {method}, group {group}, model {model}, "
                                f"seed {seed}, benchmark {bench}); run `snakemake {path}`")
            obj = read_json(path)
            for key in ("summary", "records"):
                if key not in obj:
                    raise DataError(f"{path}: no `{key}` key; expected {{'summary': ..., 'records': [...]}}")
            for key in ("accuracy", "ci_low", "ci_high", "n"):
                if key not in obj["summary"]:
                    raise DataError(f"{path}: summary has no `{key}`")
            self.cache[path] = obj
        return self.cache[path]


def per_question(records: list[dict]) -> dict[str, float]:
    """Question id -> mean correctness over its samples."""
    by_id: dict[str, list[float]] = {}
    for r in records:
        by_id.setdefault(str(r["id"]), []).append(float(bool(r["correct"])))
    return {k: sum(v) / len(v) for k, v in by_id.items()}


def bootstrap_mean_of_means(vectors: list[np.ndarray], resamples: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean over `vectors` of each vector's mean, resampled independently."""
    rng = np.random.default_rng(seed)
    stats = np.zeros(resamples)
    for v in vectors:
        if len(v) == 0:
            return float("nan"), float("nan")
        stats += v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    stats /= len(vectors)
    return float(np.quantile(stats, 0.025)), float(np.quantile(stats, 0.975))


def column_defs(cols: list) -> list[tuple[str, list[str]]]:
    return [(c, [c]) if isinstance(c, str) else (c["name"], list(c["merge"])) for c in cols]


def cell(store: EvalStore, row: dict, seeds: list[int], benches: list[str], resamples: int) -> dict:
    """Accuracy (fraction), CI and n of one table cell, plus its per-question vector for averages."""
    vecs: dict[str, dict[str, list[float]]] = {}
    objs = []
    for b in benches:
        for s in seeds:
            obj = store.get(row["method"], row["group"], row["model"], s, b)
            objs.append(obj)
            for qid, acc in per_question(obj["records"]).items():
                vecs.setdefault(b, {}).setdefault(qid, []).append(acc)
    vector = np.array([np.mean(v) for b in benches for v in vecs.get(b, {}).values()], dtype=float)
    if len(objs) == 1:
        s = objs[0]["summary"]
        return {"acc": float(s["accuracy"]), "lo": float(s["ci_low"]), "hi": float(s["ci_high"]), "n": int(s["n"]),
                "vector": vector}
    lo, hi = bootstrap_mean_of_means([vector], resamples)
    return {"acc": float(vector.mean()) if len(vector) else float("nan"), "lo": lo, "hi": hi, "n": len(vector),
            "vector": vector}


def fmt(c: dict) -> str:
    if c is None or np.isnan(c["acc"]):
        return "n/a"
    return f"{100 * c['acc']:.2f} [{100 * c['lo']:.2f}, {100 * c['hi']:.2f}]"


def build_table(config: dict, store: EvalStore, table: str) -> list[dict]:
    """Rows of one table: the row's ids and a cell per column (and Avg)."""
    from ilr import config as cfg

    spec = config["tables"][table]
    cols = column_defs(spec["benchmarks"])
    avg_cols = spec.get("average", [name for name, _ in cols])
    resamples = int(config["evaluation"]["bootstrap"])
    out = []
    for row in cfg.table_rows(config):
        if row["table"] != table:
            continue
        seeds = cfg.row_seeds(config, row["method"])
        cells = {name: cell(store, row, seeds, benches, resamples) for name, benches in cols}
        vectors = [cells[name]["vector"] for name in avg_cols]
        if len(avg_cols) == 1:  # the average of one column is that column
            cells["Avg"] = dict(cells[avg_cols[0]])
        else:
            acc = float(np.mean([cells[name]["acc"] for name in avg_cols]))
            lo, hi = bootstrap_mean_of_means(vectors, resamples)
            cells["Avg"] = {"acc": acc, "lo": lo, "hi": hi, "n": int(sum(len(v) for v in vectors)), "vector": None}
        out.append({**row, "seeds": seeds, "cells": cells, "columns": [name for name, _ in cols] + ["Avg"]})
    return out


def caption(config: dict, table: str) -> str:
    ev = config["evaluation"]
    spec = config["tables"][table]
    cols = column_defs(spec["benchmarks"])
    decoding = ("greedy decoding (temperature 0)" if float(ev["temperature"]) == 0
                else f"sampling at temperature {ev['temperature']}")
    merged = "; ".join(f"{name} pools {' + '.join(b)}" for name, b in cols if len(b) > 1)
    avg = spec.get("average", [name for name, _ in cols])
    seeds = config["seeds"]
    text = (
        f"{TITLES[table]}. Accuracy (%) with its 95% bootstrap confidence interval [low, high] over questions. "
        f"Evaluation is solo: each model answers every question alone, with no peer, no Idea3 exchange and no "
        f"interaction at test time. Decoding: {decoding}, {ev['samples']} sample(s) per question, at most "
        f"{ev['max_new_tokens']} new tokens, {config['prompts']} prompts. "
        f"Trained rows: mean over seed(s) {', '.join(map(str, seeds))}; Base: seed {seeds[0]}. "
        f"Avg = mean of {', '.join(avg)}."
    )
    if merged:
        text += f" {merged} (one column, as in the paper)."
    if table == "coop_ratio":
        text += (f" Group {spec['group']}; p = probability that a question is cooperative (p = 0 pure competition, "
                 f"p = 1 pure cooperation); IRT = interaction chosen per question by Dynamic Interaction.")
    return text


def markdown(config: dict, table: str, rows: list[dict]) -> str:
    lines = [f"# {table}", "", caption(config, table), ""]
    blocks: dict[str, list[dict]] = {}
    for r in rows:
        key = r["model"] if table != "ablation" else f"{r['model']} ({r['group']})"
        blocks.setdefault(key, []).append(r)
    for key, rs in blocks.items():
        cols = rs[0]["columns"]
        lines += [f"## {key}", "", "| Method | " + " | ".join(cols) + " |",
                  "| --- | " + " | ".join("---" for _ in cols) + " |"]
        for r in rs:
            lines.append(f"| {r['label']} | " + " | ".join(fmt(r["cells"][c]) for c in cols) + " |")
        lines.append("")
    return "\n".join(lines)


def frame(rows: list[dict]):
    import pandas as pd

    records = []
    for r in rows:
        rec = {"model": r["model"], "row": r["label"], "method": r["method"], "group": r["group"],
               "seeds": " ".join(map(str, r["seeds"]))}
        if "p" in r:
            rec["p"] = r["p"]
        for c in r["columns"]:
            x = r["cells"][c]
            rec[c] = round(100 * x["acc"], 4)
            rec[f"{c}_ci_low"] = round(100 * x["lo"], 4)
            rec[f"{c}_ci_high"] = round(100 * x["hi"], 4)
            rec[f"{c}_n"] = x["n"]
        records.append(rec)
    return pd.DataFrame.from_records(records)


def coop_figure(config: dict, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ilr.io import atomic_path

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        rs = [r for r in rows if r["model"] == model]
        labels = [r["label"].replace("p = ", "") for r in rs]
        acc = np.array([100 * r["cells"]["Avg"]["acc"] for r in rs])
        lo = np.array([100 * r["cells"]["Avg"]["lo"] for r in rs])
        hi = np.array([100 * r["cells"]["Avg"]["hi"] for r in rs])
        colors = ["tab:red" if r["label"] == "IRT" else "tab:blue" for r in rs]
        ax.bar(range(len(rs)), acc, color=colors, yerr=[acc - lo, hi - acc], capsize=3)
        ax.set_xticks(range(len(rs)), labels)
        ax.set_xlabel("cooperation ratio p")
        ax.set_title(model)
        ax.set_ylabel("average accuracy (%)")
    fig.suptitle(f"{config['tables']['coop_ratio']['group']}: fixed cooperation ratio vs IRT (red); "
                 "solo evaluation, 95% CI", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)


def write_tables(config: dict, eval_dir: str | Path, out_dir: str | Path, figures_dir: str | Path) -> list[Path]:
    store = EvalStore(eval_dir)
    out_dir, figures_dir = Path(out_dir), Path(figures_dir)
    written = []
    for table in TABLES:
        if table not in config["tables"]:
            continue
        rows = build_table(config, store, table)
        md = out_dir / f"{table}.md"
        write_text(md, markdown(config, table, rows))
        csv = out_dir / f"{table}.csv"
        write_text(csv, frame(rows).to_csv(index=False))
        written += [md, csv]
        if table == "coop_ratio":
            png = figures_dir / "coop_ratio.png"
            coop_figure(config, rows, png)
            written.append(png)
    return written


def main(args: argparse.Namespace) -> int:
    from ilr import config as cfg

    config = cfg.load(args.config)
    for path in write_tables(config, args.eval_dir, args.out_dir, args.figures_dir):
        print(path)
    return 0
