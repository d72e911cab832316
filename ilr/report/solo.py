"""What the solo-evaluation tables share (main, ablation, coop_ratio): a row per (model, method run, group),
a column per `tables.<name>.benchmarks` entry and Avg, cells read from the evaluation files.

Evaluation files: `<eval-dir>/<method>/<group>/<model>/seed<S>/<benchmark>.json` (ilr/evaluate.py), read
once each. A trained row is evaluated at every seed of `seeds:` (Base at the first: ilr.config.row_seeds).

A cell is an accuracy in percent with a 95% CI. One benchmark and one seed: the evaluation file's accuracy
and CI. A merged column (`{name: AIME, merge: [aime24, aime25]}`: the questions pooled), several seeds
(per-question accuracy averaged over seeds; the cell shows the mean of the per-seed accuracies ± their
sd) and the Avg column (mean of the columns named in `average`, default all): bootstrapped over questions
here (ilr/report/stats.py bootstrap_ci: `evaluation.bootstrap` resamples, seed 0, each column's questions
resampled independently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ilr import config as cfg
from ilr import trainers
from ilr.io import DataError, read_json
from ilr.layout import Layout
from ilr.report import stats
from ilr.report.render import Blocks, fmt_cell

SOLO = ("Evaluation is solo: each model answers every question alone, with no peer, no Idea3 exchange and no "
        "interaction at test time.")


class EvalStore:
    """Evaluation files, read once each."""

    def __init__(self, eval_dir: str | Path):
        self.eval_dir = Path(eval_dir)
        self.cache: dict[Path, dict] = {}

    def path(self, method: str, group: str, model: str, seed: int, bench: str) -> Path:
        return Path(Layout(str(self.eval_dir.parent)).eval_file(method, group, model, seed, bench))

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


# --------------------------------------------------------------------------------------------------
# columns and config checks


def column_defs(cols: list) -> list[tuple[str, list[str]]]:
    """(header, benchmarks) per column: a benchmark's name, or a merged column's `name` and `merge`."""
    return [(c, [c]) if isinstance(c, str) else (c["name"], list(c["merge"])) for c in cols]


def column_names(cols: list) -> list[str]:
    return [name for name, _ in column_defs(cols)]


def column_benchmarks(cols: list) -> list[str]:
    """Every benchmark the columns read, once each, in order."""
    return list(dict.fromkeys(b for _, benches in column_defs(cols) for b in benches))


def check_columns(config: dict, name: str, fail) -> None:
    """tables.<name>: columns of known benchmarks with distinct names; `average` names columns."""
    spec, benches = config["tables"][name], config["benchmarks"]
    cols = column_names(spec["benchmarks"])
    if len(set(cols)) != len(cols):
        fail(f"tables.{name}.benchmarks", f"two columns share a name: {cols}")
    for i, c in enumerate(spec.get("average", [])):
        if c not in cols:
            fail(f"tables.{name}.average[{i}]", f"{c!r} is not a column of tables.{name}.benchmarks {cols}")
    for i, (_, merged) in enumerate(column_defs(spec["benchmarks"])):
        for b in merged:
            if b not in benches:
                fail(f"tables.{name}.benchmarks[{i}]", f"unknown benchmark {b!r} (benchmarks: {', '.join(benches)})")


def check_group_method(config: dict, key: str, mname: str, fail) -> None:
    """`mname` is an ILR-family method of `methods:`."""
    methods = config["methods"]
    if mname not in methods:
        fail(key, f"unknown method {mname!r} (methods: {', '.join(methods)})")
    if methods[mname]["trainer"] not in trainers.group():
        fail(key, f"method {mname!r} has trainer {methods[mname]['trainer']!r}; expected an ILR-family method")


def row(model: str, label: str, method: str, group: str, spec: dict, **extra) -> dict:
    """A row of a solo table, reading the benchmarks of `spec` (a tables.<name> entry)."""
    return dict(model=model, label=label, method=method, group=group,
                benchmarks=column_benchmarks(spec["benchmarks"]), **extra)


# --------------------------------------------------------------------------------------------------
# cells


def cell(store: EvalStore, row: dict, seeds: list[int], benches: list[str], resamples: int) -> dict:
    """Accuracy (fraction), CI and n of one table cell, plus its per-question vector for averages.

    `keys` are the (benchmark, question id) pairs of `vector` (per-question accuracy, mean over seeds);
    `per_seed` is each seed's accuracy over the pooled questions; `sd` their standard deviation (None
    with one seed); `per_seed_q` each seed's per-question vector (aligned with `keys`) for paired tests.
    """
    vecs: dict[tuple[str, str], list[float]] = {}
    objs = []
    per_seed_q: list[dict] = []
    for s in seeds:
        q: dict[tuple[str, str], float] = {}
        for b in benches:
            obj = store.get(row["method"], row["group"], row["model"], s, b)
            objs.append(obj)
            for qid, acc in stats.per_question(obj["records"]).items():
                q[(b, qid)] = acc
                vecs.setdefault((b, qid), []).append(acc)
        per_seed_q.append(q)
    keys = list(vecs)
    vector = np.array([np.mean(vecs[k]) for k in keys], dtype=float)
    per_seed = [float(np.mean(list(q.values()))) if q else float("nan") for q in per_seed_q]
    extra = {"vector": vector, "keys": keys, "per_seed": per_seed, "sd": _sd(per_seed), "seeds": list(seeds),
             "per_seed_q": [np.array([q.get(k, np.nan) for k in keys]) for q in per_seed_q]}
    if len(objs) == 1:
        s = objs[0]["summary"]
        return {"acc": float(s["accuracy"]), "lo": float(s["ci_low"]), "hi": float(s["ci_high"]), "n": int(s["n"]),
                **extra}
    lo, hi = stats.bootstrap_ci(vector, resamples=resamples)
    return {"acc": float(np.mean(per_seed)) if len(vector) else float("nan"), "lo": lo, "hi": hi, "n": len(vector),
            **extra}


def _sd(per_seed: list[float]) -> float | None:
    return float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None


def average(cells: dict, avg_cols: list[str], seeds: list[int], resamples: int) -> dict:
    """The Avg cell: the mean of the `avg_cols` cells, its CI over their questions (each column resampled)."""
    if len(avg_cols) == 1:  # the average of one column is that column
        return dict(cells[avg_cols[0]])
    vectors = [cells[name]["vector"] for name in avg_cols]
    lo, hi = stats.bootstrap_ci(*vectors, resamples=resamples)
    per_seed = [float(np.mean([cells[name]["per_seed"][k] for name in avg_cols])) for k in range(len(seeds))]
    return {"acc": float(np.mean([cells[name]["acc"] for name in avg_cols])), "lo": lo, "hi": hi,
            "n": int(sum(len(v) for v in vectors)), "vector": None, "per_seed": per_seed, "seeds": list(seeds),
            "sd": _sd(per_seed)}


def build(config: dict, store: EvalStore, name: str, rows: list[dict]) -> list[dict]:
    """`rows` (a table's eval_rows) with their cells: one per column of tables.<name>, and Avg."""
    spec = config["tables"][name]
    cols = column_defs(spec["benchmarks"])
    avg_cols = spec.get("average", [c for c, _ in cols])
    resamples = int(config["evaluation"]["bootstrap"])
    out = []
    for r in rows:
        seeds = cfg.row_seeds(config, r["method"])
        cells = {c: cell(store, r, seeds, benches, resamples) for c, benches in cols}
        cells["Avg"] = average(cells, avg_cols, seeds, resamples)
        # what each seed's training run says of itself (ilr/train/common.py SUMMARY, copied by evaluate)
        training = [store.get(r["method"], r["group"], r["model"], s, cols[0][1][0])["summary"].get("training")
                    for s in seeds]
        out.append({**r, "seeds": seeds, "cells": cells, "columns": [c for c, _ in cols] + ["Avg"],
                    "avg_cols": list(avg_cols), "training": training})
    return out


def paper_cells(rows: list[dict], model: str, column: str, match: Callable[[dict], bool]) -> list[tuple[str, str, dict]]:
    """(row label, column, cell) of each row of `model` that `match`es, in its column named `column`
    (case-insensitively: paper_numbers.yaml writes `avg`)."""
    out = []
    for r in rows:
        col = next((c for c in r["columns"] if c.lower() == str(column).lower()), None)
        if r["model"] == model and col is not None and match(r):
            out.append((r["label"], col, r["cells"][col]))
    return out


# --------------------------------------------------------------------------------------------------
# caption, layout, frame


def decoding_text(config: dict) -> str:
    ev = config["evaluation"]
    decoding = ("greedy decoding (temperature 0)" if float(ev["temperature"]) == 0
                else f"sampling at temperature {ev['temperature']}")
    return (f"{decoding}, {ev['samples']} sample(s) per question, at most {ev['max_new_tokens']} new tokens, "
            f"{config['prompts']} prompts")


def seeds_text(config: dict) -> str:
    seeds = config["seeds"]
    if len(seeds) == 1:
        text = f"Trained rows: one seed ({seeds[0]}), a single training run each, so the CIs show question noise only"
    else:
        text = (f"Trained rows: mean over seeds {', '.join(map(str, seeds))} ± standard deviation over seeds, then "
                "the 95% CI of the seed-averaged per-question accuracy")
    return text + f"; Base: seed {seeds[0]} (untrained)."


ESTIMATOR_KEYS = ("reward_format", "advantages", "scale_rewards")   # what every compared row must share


def estimator_of(config: dict, method: str) -> tuple:
    """The reward and advantage estimator a method trains with (its effective training keys)."""
    args = cfg.training_args(config, method)
    return tuple(getattr(args, k) for k in ESTIMATOR_KEYS)


def describe_estimator(estimator: tuple) -> str:
    reward_format, advantages, scale = estimator
    reward = "R = 1 for a correct final answer, else 0" + (
        f", + {reward_format:g} when the completion states a final answer the grader finds" if reward_format else "")
    over = "each model's own G completions of the question" if advantages == "member" else \
        "the group's m x G completions of the question (pooled)"
    how = {"group": "(R - mean) / std", "batch": "(R - mean) / the step's std", "none": "R - mean"}[scale]
    return f"reward {reward}; GRPO advantages {how} over {over}"


def estimator_text(config: dict, methods: dict[str, str]) -> str:
    """The caption's sentence on what the rows trained with (label -> method; Base rows have none): the
    estimator most rows share, then every row that differs, by label."""
    trained = {label: estimator_of(config, m) for label, m in methods.items() if m != cfg.BASE}
    if not trained:
        return ""
    counts: dict[tuple, int] = {}
    for e in trained.values():
        counts[e] = counts.get(e, 0) + 1
    primary = max(counts, key=counts.get)
    text = f" Training: {describe_estimator(primary)} (PPO: the same reward, GAE advantages)."
    for e in counts:
        if e != primary:
            labels = ", ".join(lab for lab, x in trained.items() if x == e)
            text += f" Rows {labels}: {describe_estimator(e)}."
    return text


def caption(config: dict, name: str, title: str) -> str:
    """The protocol statement every solo table's caption opens with."""
    spec = config["tables"][name]
    cols = column_defs(spec["benchmarks"])
    merged = "; ".join(f"{c} pools {' + '.join(b)}" for c, b in cols if len(b) > 1)
    avg = spec.get("average", [c for c, _ in cols])
    text = (
        f"{title}. Accuracy (%) with its 95% bootstrap confidence interval [low, high] over questions "
        f"({config['evaluation']['bootstrap']} resamples). {SOLO} Decoding: {decoding_text(config)}. "
        f"{seeds_text(config)} Avg = mean of {', '.join(avg)}."
    )
    if merged:
        text += f" {merged} (one column, as in the paper)."
    return text


Extra = Callable[[list[dict]], list[tuple[str, Callable[[dict], str]]]]


def layout(rows: list[dict], block: Callable[[dict], str] = lambda r: r["model"],
           extra_columns: Extra = lambda rs: []) -> Blocks:
    """A block per `block(row)` (default: the model): Method, the columns and Avg, then the block's
    `extra_columns(rows of the block)`: (header, row -> cell string) each."""
    blocks: dict[str, list[dict]] = {}
    for r in rows:
        blocks.setdefault(block(r), []).append(r)
    out = []
    for key, rs in blocks.items():
        cols, extra = rs[0]["columns"], extra_columns(rs)
        body = [[r["label"]] + [fmt_cell(r["cells"][c]) for c in cols] + [f(r) for _, f in extra] for r in rs]
        out.append((key, ["Method"] + cols + [h for h, _ in extra], body))
    return out


def frame(rows: list[dict], lead: Callable[[dict], dict] = lambda r: {},
          tail: Callable[[dict], dict] = lambda r: {}):
    """The CSV: a line per row; per column its value, CI, n, sd and per-seed values (percent); a table's own
    fields `lead(row)` after the row's ids and `tail(row)` at the end."""
    import pandas as pd

    records = []
    for r in rows:
        rec = {"model": r["model"], "row": r["label"], "method": r["method"], "group": r["group"],
               "seeds": " ".join(map(str, r["seeds"])), **lead(r)}
        for c in r["columns"]:
            x = r["cells"][c]
            rec[c] = round(100 * x["acc"], 4)
            rec[f"{c}_ci_low"] = round(100 * x["lo"], 4)
            rec[f"{c}_ci_high"] = round(100 * x["hi"], 4)
            rec[f"{c}_n"] = x["n"]
            rec[f"{c}_sd"] = round(100 * x["sd"], 4) if x.get("sd") is not None else None
            rec[f"{c}_per_seed"] = " ".join(f"{100 * v:.4f}" for v in x.get("per_seed", []))
        records.append({**rec, **tail(r)})
    return pd.DataFrame.from_records(records)


def figures(config: dict, rows: list[dict], figures_dir: Path) -> list[Path]:
    """No figure (coop_ratio has its own)."""
    return []
