"""Table `main` (paper Table 1): a block per model, rows Base, GRPO, PPO, AIPO and ILR-<group> for every
group holding the model; a column per `tables.main.benchmarks` entry and Avg (ilr/report/solo.py).

Config `tables.main`: `benchmarks`, `average`; `methods` (the single-agent rows, default every
grpo/ppo/aipo method), `ilr_method` (the ILR-<group> rows, default `ilr`), `vs_base` (a column).

Paired tests (ilr/report/stats.py):
- each ILR row against the best baseline of its model (the GRPO/PPO row with the highest Avg; Base if
  there is none): Δ Avg and a two-sided p; each AIPO row against its model's GRPO row;
- with `vs_base: <column>`, every trained row against its model's Base row on that column (the
  in-distribution benchmark).
One seed: over questions (stats.paired_test: the 95% percentile-bootstrap CI of the paired difference,
the permutation test's p; `evaluation.bootstrap` resamples, seed 0; each column's questions resampled
independently). Several seeds: paired t-test over seeds (seed s of one row against seed s of the other, on
the per-seed mean of the columns); against a row of one seed (Base: untrained, the same for every seed),
the seed-averaged per-question accuracy, paired over questions as for one seed.
"""

from __future__ import annotations

import numpy as np

from ilr import config as cfg
from ilr import trainers
from ilr.report import solo, stats
from ilr.report.render import fmt_p

TITLE = "Main results (paper Table 1), reproduced"
FIGURES = ()
ILR_METHOD = "ilr"   # tables.main.ilr_method when not given


def enabled(config: dict) -> bool:
    return "main" in config["tables"]


def single_methods(config: dict) -> list[str]:
    """The single-agent rows: tables.main.methods, default every method of a single-model trainer
    (ilr/trainers.py: grpo, ppo, aipo)."""
    main = config["tables"]["main"]
    if "methods" in main:
        return list(main["methods"])
    return [m for m, v in config["methods"].items() if v["trainer"] in trainers.single()]


def check(config: dict, fail) -> None:
    solo.check_columns(config, "main", fail)
    main, methods = config["tables"]["main"], config["methods"]
    cols = solo.column_names(main["benchmarks"])
    if "vs_base" in main and main["vs_base"] not in cols:
        fail("tables.main.vs_base", f"{main['vs_base']!r} is not a column of tables.main.benchmarks {cols}")
    for i, mname in enumerate(main.get("methods", [])):
        if mname not in methods or methods[mname]["trainer"] not in trainers.single():
            fail(f"tables.main.methods[{i}]", f"{mname!r} is not a single-agent ({'/'.join(trainers.single())}) "
                 "method of `methods:`")
    ilr_m = main.get("ilr_method", ILR_METHOD)
    if "ilr_method" in main or ilr_m in methods:
        solo.check_group_method(config, "tables.main.ilr_method", ilr_m, fail)
    if ilr_m in methods and not main.get("mixed_estimators", False):
        check_one_estimator(config, ilr_m, fail)


def check_one_estimator(config: dict, ilr_m: str, fail) -> None:
    """The rows the main table compares train with one reward and one advantage estimator (METHOD.md, "One
    estimator per comparison"); PPO, whose advantages are GAE's, shares the reward only."""
    ilr = solo.estimator_of(config, ilr_m)
    for m in single_methods(config):
        own = solo.estimator_of(config, m)
        shared = 1 if config["methods"][m]["trainer"] == "ppo" else len(own)   # reward_format only
        if own[:shared] != ilr[:shared]:
            keys = ", ".join(f"{k} {a!r} vs {b!r}" for k, a, b in zip(solo.ESTIMATOR_KEYS[:shared], own, ilr) if a != b)
            fail(f"methods.{m}", f"trains with another reward or estimator than the main table's ILR rows "
                 f"({ilr_m}): {keys}; give them the same, or set tables.main.mixed_estimators: true")


def eval_rows(config: dict) -> list[dict]:
    spec, methods, groups = config["tables"]["main"], config["methods"], config["groups"]
    ilr_m = spec.get("ilr_method", ILR_METHOD)
    rows = []
    for model in config["models"]:
        rows.append(solo.row(model, "Base", cfg.BASE, cfg.BASE_GROUP, spec))
        rows += [solo.row(model, m.upper(), m, model, spec) for m in single_methods(config)]
        if ilr_m in methods:
            rows += [solo.row(model, f"ILR-{g}", ilr_m, g, spec) for g in methods[ilr_m]["groups"]
                     if model in groups[g]]
    return rows


def build(config: dict, sources, built: dict) -> list[dict]:
    rows = solo.build(config, sources.evals, "main", eval_rows(config))
    resamples = int(config["evaluation"]["bootstrap"])
    add_paired_tests(config, rows, resamples)
    if config["tables"]["main"].get("vs_base"):
        add_base_tests(rows, config["tables"]["main"]["vs_base"], resamples)
    return rows


# --------------------------------------------------------------------------------------------------
# paired tests


def compare(row: dict, base: dict, resamples: int, cols: list[str] | None = None) -> dict:
    """Δ (row - base) on the mean of `cols` (default: the Avg columns) and the paired test's p-value (see the
    module docstring)."""
    cols = cols or row["avg_cols"]
    common = [s for s in row["seeds"] if s in base["seeds"]]
    if len(common) >= 2:
        def per_seed(r, seeds):
            return [float(np.mean([r["cells"][c]["per_seed"][r["seeds"].index(s)] for c in cols])) for s in seeds]
        d, p = stats.paired_t_test(per_seed(row, common), per_seed(base, common))
        return {"delta": d, "p": p, "test": f"paired t-test over seeds {' '.join(map(str, common))}"}
    sb = common[0] if common else base["seeds"][0]
    # against a row of one seed (the untrained Base, the same whatever the seed) a row of several seeds
    # counts with its seed-averaged per-question accuracy, the numbers its cells show
    seeds = row["seeds"] if len(base["seeds"]) == 1 else [common[0] if common else row["seeds"][0]]
    pairs = []
    for name in cols:
        ca, cb = row["cells"][name], base["cells"][name]
        qa = dict(zip(ca["keys"], np.mean([ca["per_seed_q"][ca["seeds"].index(s)] for s in seeds], axis=0)))
        qb = dict(zip(cb["keys"], cb["per_seed_q"][cb["seeds"].index(sb)]))
        keys = [k for k in ca["keys"] if k in qb]
        pairs.append((np.array([qa[k] for k in keys]), np.array([qb[k] for k in keys])))
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"the mean of seeds {' '.join(map(str, seeds))} against seed {sb}"
    return {**stats.paired_test(pairs, resamples),
            "test": f"paired over questions, {which}: bootstrap CI, permutation p"}


BASELINES = ("grpo", "ppo")   # the paper's baselines: the trainers ILR is compared with


def add_paired_tests(config: dict, rows: list[dict], resamples: int) -> None:
    """Each ILR row gets `test`: Δ Avg against its model's best baseline (the paper's: GRPO or PPO) and p;
    each AIPO row (METHOD.md "AIPO": an RLVR method with help) against its model's GRPO row."""
    trainer = {m: config["methods"][m]["trainer"] for m in single_methods(config)}
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        baselines = [r for r in rs if trainer.get(r["method"]) in BASELINES] or \
            [r for r in rs if r["method"] == cfg.BASE]
        grpo = next((r for r in rs if trainer.get(r["method"]) == "grpo"), None)
        if not baselines:
            continue
        best = max(baselines, key=lambda r: r["cells"]["Avg"]["acc"])
        for r in rs:
            if r["label"].startswith("ILR-"):
                r["test"] = {"vs": best["label"], **compare(r, best, resamples)}
            elif trainer.get(r["method"]) == "aipo" and grpo is not None:
                r["test"] = {"vs": grpo["label"], **compare(r, grpo, resamples)}


def add_base_tests(rows: list[dict], column: str, resamples: int) -> None:
    """Each trained row gets `vs_base`: its Δ on `column` (tables.main.vs_base, the in-distribution benchmark)
    against its model's Base row, by the same paired test."""
    for r in rows:
        base = next((b for b in rows if b["model"] == r["model"] and b["method"] == cfg.BASE), None)
        if base is not None and r is not base:
            r["vs_base"] = {"column": column, **compare(r, base, resamples, [column])}


def fmt_test(t: dict | None) -> str:
    if not t:
        return ""
    ci = f" [{100 * t['lo']:+.2f}, {100 * t['hi']:+.2f}]" if "lo" in t else ""
    vs = f" vs {t['vs']}" if "vs" in t else ""
    return f"{100 * t['delta']:+.2f}{ci}{vs} (p {'= ' if not fmt_p(t['p']).startswith('<') else ''}{fmt_p(t['p'])})"


# --------------------------------------------------------------------------------------------------
# caption, layout, frame


def caption(config: dict, rows: list[dict]) -> str:
    spec, ev = config["tables"]["main"], config["evaluation"]
    text = solo.caption(config, "main", TITLE)
    text += (" Last column: ILR's Avg minus that of the model's best baseline (the GRPO/PPO row with the highest "
             "Avg), and an AIPO row's Avg minus GRPO's, with a two-sided paired test's p-value (one seed: with the "
             "95% percentile CI of the paired difference): "
             + ("a paired t-test over seeds (per-seed Avg)." if len(config["seeds"]) > 1 else
                f"over questions, the CI a paired bootstrap (same questions resampled for both rows) and p a "
                f"permutation test (the two rows' answers to each question swapped at random), "
                f"{ev['bootstrap']} resamples each."))
    if spec.get("vs_base"):
        text += (f" Δ {spec['vs_base']} vs Base: each trained row against its model's untrained Base on "
                 f"{spec['vs_base']} (the in-distribution benchmark), "
                 + ("the same paired test." if len(config["seeds"]) == 1 else
                    "over questions: the row's seed-averaged per-question accuracy against Base's (one "
                    "untrained model), a paired bootstrap CI and a permutation p."))
    labelled = {m.upper(): m for m in single_methods(config)}
    ilr_m = spec.get("ilr_method", ILR_METHOD)
    if ilr_m in config["methods"]:
        labelled["ILR"] = ilr_m
    return text + solo.estimator_text(config, labelled) + consult_text(rows)


def consult_rate(row: dict) -> dict | None:
    """An AIPO row's consultation rate over its training runs (their training_summary: ilr/train/aipo.py),
    in all and per agent; None for rows that never consult."""
    runs = [t for t in row.get("training") or [] if t and "consult_rate" in t]
    if not runs:
        return None
    agents = runs[0]["consult_rate_per_agent"]
    return {"all": float(np.mean([t["consult_rate"] for t in runs])),
            **{a: float(np.mean([t["consult_rate_per_agent"][a] for t in runs])) for a in agents}}


def consult_text(rows: list[dict]) -> str:
    rates = [(r, consult_rate(r)) for r in rows]
    parts = [f"{r['label']} {r['model']} {100 * c['all']:.1f}% ("
             + ", ".join(f"{a} {100 * v:.1f}%" for a, v in c.items() if a != "all") + ")"
             for r, c in rates if c]
    return (" AIPO consultation rate (share of training rollouts that consulted an agent; per agent): "
            + "; ".join(parts) + ".") if parts else ""


def _test_columns(rs: list[dict]) -> list:
    out = []
    base = next((r["vs_base"] for r in rs if "vs_base" in r), None)
    if base:
        out.append((f"Δ {base['column']} vs Base [95% CI] (p)", lambda r: fmt_test(r.get("vs_base")) or "—"))
    if any("test" in r for r in rs):
        out.append(("Δ Avg vs best baseline [95% CI] (p)", lambda r: fmt_test(r.get("test")) or "—"))
    return out


def layout(config: dict, rows: list[dict]):
    return solo.layout(rows, extra_columns=_test_columns)


def _pct(x: float | None) -> float | None:
    return None if x is None or np.isnan(x) else round(100 * x, 4)


def _test_fields(r: dict) -> dict:
    out = {}
    b = r.get("vs_base")
    if b:
        out.update({"vs_base_column": b["column"], "delta_vs_base": _pct(b["delta"]),
                    "delta_vs_base_ci_low": _pct(b.get("lo")), "delta_vs_base_ci_high": _pct(b.get("hi")),
                    "p_vs_base": None if np.isnan(b["p"]) else round(b["p"], 6)})
    c = consult_rate(r)
    if c:
        out.update({"consult_rate": _pct(c["all"]), **{f"consult_rate_{a}": _pct(v) for a, v in c.items() if a != "all"}})
    t = r.get("test") or {}
    out.update({"vs_baseline": t.get("vs"), "delta_avg": _pct(t.get("delta")), "delta_avg_ci_low": _pct(t.get("lo")),
                "delta_avg_ci_high": _pct(t.get("hi")),
                "p_value": None if t.get("p") is None or np.isnan(t["p"]) else round(t["p"], 6),
                "test": t.get("test")})
    return out


def frame(rows: list[dict]):
    return solo.frame(rows, tail=_test_fields)


def figures(config: dict, rows: list[dict], figures_dir) -> list:
    return []


# --------------------------------------------------------------------------------------------------
# the paper's Table 1 (paper_numbers.yaml `main:`, `aime_ilr:`)


def paper_entries(paper: dict) -> list[dict]:
    out = []
    for hub, rows in (paper.get("main") or {}).items():
        for key, cols in rows.items():
            out += [dict(hub=hub, key=key, column=col, paper=float(v), approx=False, note="") for col, v in cols.items()]
    for hub, v in (paper.get("aime_ilr") or {}).items():
        out.append(dict(hub=hub, key="ilr/*", column="aime", paper=float(v), approx=False,
                        note="ILR's AIME; the paper does not name the group"))
    return out


def paper_cells(config: dict, entry: dict, rows: list[dict], model: str) -> list[tuple[str, str, dict]]:
    """Paper keys: `base`, a single-agent method (`grpo`), `ilr/<group>`, `ilr/*` (any ILR row of a pair:
    the paper trains pairs only, so a group of three, the study's extension, is not compared with it)."""
    key, singles = entry["key"], single_methods(config)
    ilr_m = config["tables"]["main"].get("ilr_method", ILR_METHOD)
    return solo.paper_cells(rows, model, entry["column"], lambda r: (
        (key == "base" and r["method"] == cfg.BASE) or (key == r["method"] and r["method"] in singles)
        or (key == "ilr/*" and r["method"] == ilr_m and len(config["groups"][r["group"]]) == 2)
        or (key.startswith("ilr/") and r["method"] == ilr_m and r["group"] == key[4:])))
