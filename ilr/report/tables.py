"""The `tables` stage: the paper's tables and the cooperation-ratio figure from the evaluation files.

Reads only the evaluation files the tables need (ilr.config.table_rows: the same list the Snakefile
gives the `tables` rule as inputs), `<eval-dir>/<method>/<group>/<model>/seed<S>/<benchmark>.json`,
and writes, in `--out-dir`:
  main.{md,csv}        paper Table 1: a block per model, rows Base, GRPO, PPO, ILR-<group> for every
                       group holding the model; a column per `tables.main.benchmarks` entry and Avg
  ablation.{md,csv}    Full ILR, DI-only, PC-only for each (model, group) of `tables.ablation.rows`
  coop_ratio.{md,csv}  p = 0.0 .. 1.0 and IRT for each model of `tables.coop_ratio.group`
  multi_agent.{md,csv} T4, the paper's multi-agent inference analysis: Single / Debate / Idea3 per model
                       of each `multi_agent.pairs` pair (from `--multi-agent-dir`); NOT solo (caption)
  paper_vs_reproduced.{md,csv}
                       every number of ilr/report/paper_numbers.yaml that this config's runs produce
                       (matched by the models' hub ids), reproduced vs paper and the difference
and `--figures-dir`/coop_ratio.png (average accuracy against p, IRT in red). Every table is also
written as LaTeX (`.tex`, booktabs, with its caption). Every caption states the decoding protocol
and that evaluation is solo (each model answers alone), except T4's, which says it is not.

Seeds: a trained row is evaluated for every seed of `seeds:`; its cells show the mean over seeds of
the per-seed accuracy and, with several seeds, their standard deviation (`± sd`) before the CI.
Paired test (main table): each ILR row against the best baseline of its model (the GRPO/PPO row with
the highest Avg; Base if there is none): Δ Avg and a two-sided p-value. One seed: paired bootstrap
over questions (the same resampled questions for both rows, each column resampled independently,
`evaluation.bootstrap` resamples, seed 0; p = the fraction of bootstrap differences at least as far
from the observed difference as the observed difference is from 0; the 95% CI of the difference is
the percentile interval of the same resamples). Several seeds: paired t-test over seeds (seed s of ILR
against seed s of the baseline, on the per-seed Avg). With `tables.main.vs_base: <column>`, every
trained row also gets the same test on that column against its model's Base row.

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
    "multi_agent": "Multi-agent inference (paper's analysis, T4): Single vs Debate vs Idea3",
    "paper_vs_reproduced": "The paper's numbers next to the reproduced ones",
}
PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")
MA_SETTINGS = (("single", "Single"), ("debate", "Debate"), ("idea3", "Idea3"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--eval-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--figures-dir", required=True)
    p.add_argument("--multi-agent-dir", help="multi-agent inference outputs (default: <eval-dir>/../multi_agent)")


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
            for qid, acc in per_question(obj["records"]).items():
                q[(b, qid)] = acc
                vecs.setdefault((b, qid), []).append(acc)
        per_seed_q.append(q)
    keys = list(vecs)
    vector = np.array([np.mean(vecs[k]) for k in keys], dtype=float)
    per_seed = [float(np.mean(list(q.values()))) if q else float("nan") for q in per_seed_q]
    sd = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None
    extra = {"vector": vector, "keys": keys, "per_seed": per_seed, "sd": sd, "seeds": list(seeds),
             "per_seed_q": [np.array([q.get(k, np.nan) for k in keys]) for q in per_seed_q]}
    if len(objs) == 1:
        s = objs[0]["summary"]
        return {"acc": float(s["accuracy"]), "lo": float(s["ci_low"]), "hi": float(s["ci_high"]), "n": int(s["n"]),
                **extra}
    lo, hi = bootstrap_mean_of_means([vector], resamples)
    return {"acc": float(np.mean(per_seed)) if len(vector) else float("nan"), "lo": lo, "hi": hi, "n": len(vector),
            **extra}


def fmt(c: dict | None) -> str:
    if c is None or np.isnan(c["acc"]):
        return "n/a"
    sd = f" ± {100 * c['sd']:.2f}" if c.get("sd") is not None else ""
    return f"{100 * c['acc']:.2f}{sd} [{100 * c['lo']:.2f}, {100 * c['hi']:.2f}]"


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
            per_seed = [float(np.mean([cells[name]["per_seed"][k] for name in avg_cols])) for k in range(len(seeds))]
            cells["Avg"] = {"acc": acc, "lo": lo, "hi": hi, "n": int(sum(len(v) for v in vectors)), "vector": None,
                            "per_seed": per_seed, "seeds": list(seeds),
                            "sd": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None}
        out.append({**row, "seeds": seeds, "cells": cells, "columns": [name for name, _ in cols] + ["Avg"],
                    "avg_cols": list(avg_cols)})
    if table == "main":
        add_paired_tests(config, out, resamples)
        if spec.get("vs_base"):
            add_base_tests(config, out, spec["vs_base"], resamples)
    return out


# --------------------------------------------------------------------------------------------------
# paired tests: ILR against the best baseline


def paired_bootstrap(pairs: list[tuple[np.ndarray, np.ndarray]], resamples: int,
                     seed: int = 0) -> tuple[float, float, float, float]:
    """Paired bootstrap over questions. `pairs`: per column, the two rows' per-question vectors (aligned).

    Statistic: mean over columns of mean(a - b). Each column's questions are resampled independently,
    with the same indices for a and b. Returns (observed difference, two-sided p, 95% CI low, high): p is
    the fraction of resampled differences at least as far from the observed one as the observed one is
    from 0; the CI is the percentile interval of the resampled differences.
    """
    rng = np.random.default_rng(seed)
    diffs = [np.asarray(a, float) - np.asarray(b, float) for a, b in pairs]
    observed = float(np.mean([d.mean() for d in diffs]))
    stats = np.zeros(resamples)
    for d in diffs:
        stats += d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    stats /= len(diffs)
    p = float(np.mean(np.abs(stats - observed) >= abs(observed) - 1e-12))
    return observed, p, float(np.quantile(stats, 0.025)), float(np.quantile(stats, 0.975))


def paired_seed_p(a: list[float], b: list[float]) -> tuple[float, float]:
    """Paired t-test over seeds (per-seed values of two rows, seed k against seed k). (difference, p)."""
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2:
        return float(d.mean()), float("nan")
    if np.allclose(d, d[0]):  # no spread over seeds: the t statistic is undefined (1 when every d is 0)
        return float(d.mean()), 1.0 if np.allclose(d, 0) else float("nan")
    return float(d.mean()), float(stats.ttest_rel(a, b).pvalue)


def compare(config: dict, row: dict, base: dict, resamples: int, cols: list[str] | None = None) -> dict:
    """Δ (row - base) on the mean of `cols` (default: the Avg columns) and the paired test's p-value
    (see the module docstring)."""
    cols = cols or row["avg_cols"]
    common = [s for s in row["seeds"] if s in base["seeds"]]
    if len(common) >= 2:
        def per_seed(r, seeds):
            return [float(np.mean([r["cells"][c]["per_seed"][r["seeds"].index(s)] for c in cols])) for s in seeds]
        d, p = paired_seed_p(per_seed(row, common), per_seed(base, common))
        return {"delta": d, "p": p, "test": f"paired t-test over seeds {' '.join(map(str, common))}"}
    sa, sb = (common[0], common[0]) if common else (row["seeds"][0], base["seeds"][0])
    pairs = []
    for name in cols:
        ca, cb = row["cells"][name], base["cells"][name]
        qa = dict(zip(ca["keys"], ca["per_seed_q"][ca["seeds"].index(sa)]))
        qb = dict(zip(cb["keys"], cb["per_seed_q"][cb["seeds"].index(sb)]))
        keys = [k for k in ca["keys"] if k in qb]
        pairs.append((np.array([qa[k] for k in keys]), np.array([qb[k] for k in keys])))
    d, p, lo, hi = paired_bootstrap(pairs, resamples)
    return {"delta": d, "p": p, "lo": lo, "hi": hi, "test": f"paired bootstrap over questions, seed {sa}"}


def add_paired_tests(config: dict, rows: list[dict], resamples: int) -> None:
    """Each ILR row of the main table gets `test`: Δ Avg against its model's best baseline and p."""
    from ilr import config as cfg

    singles = set(cfg.single_methods(config))
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        baselines = [r for r in rs if r["method"] in singles] or [r for r in rs if r["method"] == cfg.BASE]
        if not baselines:
            continue
        best = max(baselines, key=lambda r: r["cells"]["Avg"]["acc"])
        for r in rs:
            if r["label"].startswith("ILR-"):
                r["test"] = {"vs": best["label"], **compare(config, r, best, resamples)}


def add_base_tests(config: dict, rows: list[dict], column: str, resamples: int) -> None:
    """Each trained row of the main table gets `vs_base`: its Δ on `column` (tables.main.vs_base, the
    in-distribution benchmark) against its model's Base row, by the same paired test."""
    from ilr import config as cfg

    for r in rows:
        base = next((b for b in rows if b["model"] == r["model"] and b["method"] == cfg.BASE), None)
        if base is not None and r is not base:
            r["vs_base"] = {"column": column, **compare(config, r, base, resamples, [column])}


def fmt_p(p: float) -> str:
    if p is None or np.isnan(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else "< 0.001"


def fmt_test(t: dict | None) -> str:
    if not t:
        return ""
    ci = f" [{100 * t['lo']:+.2f}, {100 * t['hi']:+.2f}]" if "lo" in t else ""
    vs = f" vs {t['vs']}" if "vs" in t else ""
    return f"{100 * t['delta']:+.2f}{ci}{vs} (p {'= ' if not fmt_p(t['p']).startswith('<') else ''}{fmt_p(t['p'])})"


def decoding_text(config: dict) -> str:
    ev = config["evaluation"]
    decoding = ("greedy decoding (temperature 0)" if float(ev["temperature"]) == 0
                else f"sampling at temperature {ev['temperature']}")
    return (f"{decoding}, {ev['samples']} sample(s) per question, at most {ev['max_new_tokens']} new tokens, "
            f"{config['prompts']} prompts")


SOLO = ("Evaluation is solo: each model answers every question alone, with no peer, no Idea3 exchange and no "
        "interaction at test time.")


def seeds_text(config: dict) -> str:
    seeds = config["seeds"]
    text = f"Trained rows: mean over seed(s) {', '.join(map(str, seeds))}"
    if len(seeds) > 1:
        text += " ± standard deviation over seeds, then the 95% CI of the seed-averaged per-question accuracy"
    return text + f"; Base: seed {seeds[0]} (untrained)."


def caption(config: dict, table: str) -> str:
    if table == "multi_agent":
        return multi_agent_caption(config)
    if table == "paper_vs_reproduced":
        return paper_caption(config)
    ev = config["evaluation"]
    spec = config["tables"][table]
    cols = column_defs(spec["benchmarks"])
    merged = "; ".join(f"{name} pools {' + '.join(b)}" for name, b in cols if len(b) > 1)
    avg = spec.get("average", [name for name, _ in cols])
    text = (
        f"{TITLES[table]}. Accuracy (%) with its 95% bootstrap confidence interval [low, high] over questions "
        f"({ev['bootstrap']} resamples). {SOLO} Decoding: {decoding_text(config)}. {seeds_text(config)} "
        f"Avg = mean of {', '.join(avg)}."
    )
    if merged:
        text += f" {merged} (one column, as in the paper)."
    if table == "main":
        text += (" Last column: ILR's Avg minus that of the model's best baseline (the GRPO/PPO row with the highest "
                 "Avg) and a two-sided paired test's p-value (one seed: with the 95% percentile CI of the paired "
                 "difference): "
                 + ("a paired t-test over seeds (per-seed Avg)." if len(config["seeds"]) > 1 else
                    f"a paired bootstrap over questions (same questions resampled for both rows, "
                    f"{ev['bootstrap']} resamples)."))
        if spec.get("vs_base"):
            text += (f" Δ {spec['vs_base']} vs Base: each trained row against its model's untrained Base on "
                     f"{spec['vs_base']} (the in-distribution benchmark), the same paired test.")
    if table == "coop_ratio":
        text += (f" Group {spec['group']}; p = probability that a question is cooperative (p = 0 pure competition, "
                 f"p = 1 pure cooperation); IRT = interaction chosen per question by Dynamic Interaction.")
    return text


def layout(config: dict, table: str, rows: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Blocks of a results table: (block title, header, rows of cell strings)."""
    blocks: dict[str, list[dict]] = {}
    for r in rows:
        key = r["model"] if table != "ablation" else f"{r['model']} ({r['group']})"
        blocks.setdefault(key, []).append(r)
    out = []
    for key, rs in blocks.items():
        cols = rs[0]["columns"]
        header = ["Method"] + cols
        with_base = table == "main" and any("vs_base" in r for r in rs)
        with_test = table == "main" and any("test" in r for r in rs)
        if with_base:
            header.append(f"Δ {next(r for r in rs if 'vs_base' in r)['vs_base']['column']} vs Base [95% CI] (p)")
        if with_test:
            header.append("Δ Avg vs best baseline [95% CI] (p)")
        body = []
        for r in rs:
            line = [r["label"]] + [fmt(r["cells"][c]) for c in cols]
            if with_base:
                line.append(fmt_test(r.get("vs_base")) or "—")
            if with_test:
                line.append(fmt_test(r.get("test")) or "—")
            body.append(line)
        out.append((key, header, body))
    return out


def render_markdown(name: str, text: str, blocks: list[tuple[str, list[str], list[list[str]]]]) -> str:
    lines = [f"# {name}", "", text, ""]
    for title, header, body in blocks:
        if title:
            lines += [f"## {title}", ""]
        lines += ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        lines.append("")
    return "\n".join(lines)


_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
               "±": r"$\pm$", "Δ": r"$\Delta$", "—": "---", "<": r"$<$", ">": r"$>$", "γ": r"$\gamma$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))


def tex_cell(text: str) -> str:
    """A number with its CI, the CI in small type: "49.80 [45.10, 54.20]"."""
    if " [" in text and text.endswith("]"):
        head, ci = text.split(" [", 1)
        return tex_escape(head) + r" {\scriptsize [" + tex_escape(ci[:-1]) + "]}"
    return tex_escape(text)


def render_latex(name: str, text: str, blocks: list[tuple[str, list[str], list[list[str]]]]) -> str:
    """A booktabs table (\\usepackage{booktabs}); blocks become \\midrule-separated groups with a title row."""
    ncols = max(len(h) for _, h, _ in blocks) if blocks else 1
    lines = ["% written by `python -m ilr tables`; needs \\usepackage{booktabs}", r"\begin{table*}[t]",
             r"\centering", r"\small", r"\begin{tabular}{l" + "r" * (ncols - 1) + "}", r"\toprule"]
    last_header = None
    for i, (title, header, body) in enumerate(blocks):
        if header != last_header:
            if i:
                lines.append(r"\midrule")
            lines.append(" & ".join(tex_escape(h) for h in header) + r" \\")
            last_header = header
        lines.append(r"\midrule")
        if title:
            lines.append(rf"\multicolumn{{{ncols}}}{{l}}{{\textit{{{tex_escape(title)}}}}} \\")
        for row in body:
            row = row + [""] * (ncols - len(row))
            lines.append(" & ".join([tex_escape(row[0])] + [tex_cell(c) for c in row[1:]]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{tex_escape(text)}}}",
              rf"\label{{tab:{name.replace('_', '-')}}}", r"\end{table*}", ""]
    return "\n".join(lines)


def markdown(config: dict, table: str, rows: list[dict]) -> str:
    return render_markdown(table, caption(config, table), layout(config, table, rows))


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
            rec[f"{c}_sd"] = round(100 * x["sd"], 4) if x.get("sd") is not None else None
            rec[f"{c}_per_seed"] = " ".join(f"{100 * v:.4f}" for v in x.get("per_seed", []))
        if r["table"] == "main":
            b = r.get("vs_base")
            if b:
                rec.update({"vs_base_column": b["column"], "delta_vs_base": round(100 * b["delta"], 4),
                            "delta_vs_base_ci_low": round(100 * b["lo"], 4) if "lo" in b else None,
                            "delta_vs_base_ci_high": round(100 * b["hi"], 4) if "hi" in b else None,
                            "p_vs_base": round(b["p"], 6) if not np.isnan(b["p"]) else None})
            t = r.get("test")
            rec.update({"vs_baseline": t["vs"] if t else None,
                        "delta_avg": round(100 * t["delta"], 4) if t else None,
                        "delta_avg_ci_low": round(100 * t["lo"], 4) if t and "lo" in t else None,
                        "delta_avg_ci_high": round(100 * t["hi"], 4) if t and "hi" in t else None,
                        "p_value": round(t["p"], 6) if t and not np.isnan(t["p"]) else None,
                        "test": t["test"] if t else None})
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


# --------------------------------------------------------------------------------------------------
# T4: multi-agent inference


def multi_agent_rows(config: dict, ma_dir: str | Path) -> list[dict]:
    """One row per (pair, model): Single, Debate, Idea3 cells from <ma_dir>/<a>+<b>/<benchmark>.json."""
    from ilr import config as cfg

    rows = []
    for models, bench in cfg.multi_agent_jobs(config):
        path = Path(ma_dir) / cfg.pair_name(models) / f"{bench}.json"
        if not path.exists():
            raise DataError(f"{path}: multi-agent output missing (pair {' + '.join(models)}, benchmark {bench}); "
                            f"run `snakemake {path}`")
        obj = read_json(path)
        for model in models:
            cells = {}
            for key, label in MA_SETTINGS:
                try:
                    x = obj["settings"][key][model]
                except KeyError:
                    raise DataError(f"{path}: no settings.{key}.{model}") from None
                cells[label] = {"acc": float(x["accuracy"]), "lo": float(x["ci_low"]), "hi": float(x["ci_high"]),
                                "n": int(x["n"])}
            rows.append({"table": "multi_agent", "pair": cfg.pair_name(models), "pair_models": models,
                         "benchmark": bench, "model": model, "label": model, "cells": cells,
                         "columns": [label for _, label in MA_SETTINGS], "mode": obj.get("idea3_mode")})
    return rows


def multi_agent_caption(config: dict) -> str:
    ma = config.get("multi_agent") or {}
    ev = config["evaluation"]
    return (
        f"{TITLES['multi_agent']}, on {ma.get('benchmark')}, base models (untrained) answering in pairs. "
        f"Accuracy (%) of each model with its 95% bootstrap confidence interval over questions ({ev['bootstrap']} "
        f"resamples). Single: the model answers alone (solo). Debate: two rounds, each model answers, then reads its "
        f"peer's answer and revises. Idea3: Idea Sharing, Analysis and Fusion at inference "
        f"({ma.get('mode', 'cooperation')} mode). The scored answer is the model's own last answer. Unlike every "
        f"other table, Debate and Idea3 are NOT solo: each model reads its peer's answers at test time. "
        f"Decoding: greedy (temperature 0), one completion per stage, at most {ev['max_new_tokens']} new tokens, "
        f"{config['prompts']} prompts."
    )


def multi_agent_layout(rows: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    blocks: dict[str, list[dict]] = {}
    for r in rows:
        blocks.setdefault(f"{' + '.join(r['pair_models'])} ({r['benchmark']})", []).append(r)
    return [(title, ["Model"] + rs[0]["columns"], [[r["model"]] + [fmt(r["cells"][c]) for c in r["columns"]]
                                                   for r in rs]) for title, rs in blocks.items()]


def multi_agent_frame(rows: list[dict]):
    import pandas as pd

    records = []
    for r in rows:
        rec = {"pair": r["pair"], "benchmark": r["benchmark"], "model": r["model"], "idea3_mode": r["mode"]}
        for c in r["columns"]:
            x = r["cells"][c]
            rec.update({c: round(100 * x["acc"], 4), f"{c}_ci_low": round(100 * x["lo"], 4),
                        f"{c}_ci_high": round(100 * x["hi"], 4), f"{c}_n": x["n"]})
        records.append(rec)
    return pd.DataFrame.from_records(records, columns=None if records else ["pair", "benchmark", "model"])


# --------------------------------------------------------------------------------------------------
# the paper's numbers side by side


def paper_entries(paper: dict) -> list[dict]:
    """paper_numbers.yaml flattened: {table, hub, key, column, paper, approx, note}."""
    out = []
    for hub, rows in (paper.get("main") or {}).items():
        for key, cols in rows.items():
            for col, v in cols.items():
                out.append(dict(table="main", hub=hub, key=key, column=col, paper=float(v), approx=False, note=""))
    for hub, v in (paper.get("aime_ilr") or {}).items():
        out.append(dict(table="main", hub=hub, key="ilr/*", column="aime", paper=float(v), approx=False,
                        note="ILR's AIME; the paper does not name the group"))
    for e in paper.get("ablation") or []:
        for key in ("ilr", "ilr_di_only", "ilr_pc_only"):
            if key in e:
                out.append(dict(table="ablation", hub=e["model"], key=f"{key}/{e['group']}", column="avg",
                                paper=float(e[key]), approx=False, note=""))
    cr = dict(paper.get("coop_ratio") or {})
    approx = bool(cr.pop("approx", False))
    for hub, vals in cr.items():
        for key, v in vals.items():
            out.append(dict(table="coop_ratio", hub=hub, key=key, column="avg", paper=float(v), approx=approx,
                            note="read off the paper's Fig. 3" if approx else ""))
    ma = dict(paper.get("multi_agent") or {})
    bench = ma.pop("benchmark", None)
    for hub, vals in ma.items():
        for key, v in vals.items():
            out.append(dict(table="multi_agent", hub=hub, key=key, column=bench, paper=float(v), approx=False, note=""))
    return out


def _find_column(columns: list[str], name: str) -> str | None:
    return next((c for c in columns if c.lower() == str(name).lower()), None)


def paper_rows(config: dict, built: dict[str, list[dict]], paper: dict) -> list[dict]:
    """Every paper number that this config's runs produce, with the reproduced number beside it."""
    from ilr import config as cfg

    by_hub: dict[str, list[str]] = {}
    for name, m in config["models"].items():
        by_hub.setdefault(m["path"], []).append(name)
    ilr_m = config["tables"]["main"].get("ilr_method", "ilr")
    ab_labels = {m: label for label, m in config["tables"].get("ablation", {}).get("methods", cfg.DEFAULT_ABLATION).items()}
    out = []
    for e in paper_entries(paper):
        for model in by_hub.get(e["hub"], []):
            matches: list[tuple[dict, str]] = []
            for r in built.get(e["table"], []):
                if r["model"] != model:
                    continue
                if e["table"] == "main":
                    key = e["key"]
                    ok = ((key == "base" and r["method"] == cfg.BASE)
                          or (key == r["method"] and r["method"] in cfg.single_methods(config))
                          or (key == "ilr/*" and r["label"].startswith("ILR-"))
                          or (key.startswith("ilr/") and r["method"] == ilr_m and r["group"] == key[4:]))
                elif e["table"] == "ablation":
                    m, g = e["key"].split("/")
                    ok = r["group"] == g and r["label"] == ab_labels.get(m)
                elif e["table"] == "coop_ratio":
                    ok = (r["label"] == "IRT" if e["key"] == "irt"
                          else r.get("p") is not None and abs(float(r["p"]) - float(e["key"][1:])) < 1e-9)
                else:  # multi_agent
                    ok = r["benchmark"] == e["column"]
                col = ((_find_column(r["columns"], e["column"]) if e["table"] != "multi_agent"
                        else dict((k, lab) for k, lab in MA_SETTINGS).get(e["key"])))
                if ok and col is not None:
                    matches.append((r, col))
            for r, col in matches:
                c = r["cells"][col]
                rep = 100 * c["acc"]
                row_label, column = ((r["label"], col) if e["table"] != "multi_agent"
                                     else (f"pair {r['pair']}", f"{col} ({r['benchmark']})"))
                out.append({"table": e["table"], "model": model, "row": row_label, "column": column,
                            "paper": e["paper"], "reproduced": round(rep, 4), "ci_low": round(100 * c["lo"], 4),
                            "ci_high": round(100 * c["hi"], 4), "delta": round(rep - e["paper"], 4),
                            "paper_in_ci": bool(100 * c["lo"] <= e["paper"] <= 100 * c["hi"]),
                            "approx": e["approx"], "note": e["note"]})
    return out


def paper_caption(config: dict, rows: list[dict] | None = None) -> str:
    text = (f"{TITLES['paper_vs_reproduced']}: every number of ilr/report/paper_numbers.yaml (the paper's tables, "
            f"transcribed with their sources) that this study's runs produce, matched by model (the hub id of "
            f"`models.<name>.path`), row and column. Reproduced: accuracy (%) with its 95% bootstrap CI; "
            f"Δ = reproduced − paper, in points; ~ marks a paper number read off a figure. "
            f"{SOLO} (The multi-agent rows are not solo: see T4.) Decoding: {decoding_text(config)}. "
            f"{seeds_text(config)}")
    if rows is not None and not rows:
        models = ", ".join(f"{n} ({m['path']})" for n, m in config["models"].items())
        text += (f" No paper number maps to this study: its models are none of the paper's ({models}). "
                 f"The tiny study has no paper counterpart (toy models built locally, generated tasks); "
                 f"config/paper.yaml is the study whose numbers this table compares with the paper.")
    return text


def paper_layout(rows: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    header = ["Table", "Model", "Row", "Column", "Paper", "Reproduced [95% CI]", "Δ", "Note"]
    body = [[r["table"], r["model"], r["row"], r["column"], ("~" if r["approx"] else "") + f"{r['paper']:.2f}",
             f"{r['reproduced']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]", f"{r['delta']:+.2f}", r["note"]]
            for r in rows]
    return [("", header, body)] if body else []


def load_paper_numbers(path: str | Path = PAPER_NUMBERS) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


# --------------------------------------------------------------------------------------------------


def _write(out_dir: Path, name: str, text: str, blocks: list, df) -> list[Path]:
    paths = [out_dir / f"{name}.md", out_dir / f"{name}.csv", out_dir / f"{name}.tex"]
    write_text(paths[0], render_markdown(name, text, blocks))
    write_text(paths[1], df.to_csv(index=False))
    write_text(paths[2], render_latex(name, text, blocks or [("", ["(no rows)"], [])]))
    return paths


def write_tables(config: dict, eval_dir: str | Path, out_dir: str | Path, figures_dir: str | Path,
                 multi_agent_dir: str | Path | None = None, paper_numbers: str | Path = PAPER_NUMBERS) -> list[Path]:
    import pandas as pd

    store = EvalStore(eval_dir)
    out_dir, figures_dir = Path(out_dir), Path(figures_dir)
    multi_agent_dir = Path(multi_agent_dir) if multi_agent_dir else Path(eval_dir).parent / "multi_agent"
    written = []
    built: dict[str, list[dict]] = {}
    for table in TABLES:
        if table not in config["tables"]:
            continue
        rows = built[table] = build_table(config, store, table)
        written += _write(out_dir, table, caption(config, table), layout(config, table, rows), frame(rows))
        if table == "coop_ratio":
            png = figures_dir / "coop_ratio.png"
            coop_figure(config, rows, png)
            written.append(png)
    if config.get("multi_agent"):
        rows = built["multi_agent"] = multi_agent_rows(config, multi_agent_dir)
        written += _write(out_dir, "multi_agent", multi_agent_caption(config), multi_agent_layout(rows),
                          multi_agent_frame(rows))
    prows = paper_rows(config, built, load_paper_numbers(paper_numbers))
    cols = ["table", "model", "row", "column", "paper", "reproduced", "ci_low", "ci_high", "delta", "paper_in_ci",
            "approx", "note"]
    written += _write(out_dir, "paper_vs_reproduced", paper_caption(config, prows), paper_layout(prows),
                      pd.DataFrame.from_records(prows, columns=cols))
    return written


def main(args: argparse.Namespace) -> int:
    from ilr import config as cfg

    config = cfg.load(args.config)
    for path in write_tables(config, args.eval_dir, args.out_dir, args.figures_dir, args.multi_agent_dir):
        print(path)
    return 0
