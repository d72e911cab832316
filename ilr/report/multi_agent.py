"""Table `multi_agent` (T4, the paper's multi-agent inference analysis): for each pair of base models of
`multi_agent.pairs`, each model's accuracy on `multi_agent.benchmark` under Single (alone), Debate (two
rounds) and Idea3 (`multi_agent.mode`), from the multi-agent stage's outputs
`<multi-agent-dir>/<a>+<b>/<benchmark>.json` (ilr/multi_agent.py: accuracy and CI per setting and model).
The one table that is NOT solo, as its caption says: in Debate and Idea3 the models read each other.
"""

from __future__ import annotations

from pathlib import Path

from ilr import config as cfg
from ilr.io import DataError, read_json
from ilr.report.render import fmt_cell

TITLE = "Multi-agent inference (paper's analysis, T4): Single vs Debate vs Idea3"
FIGURES = ()
SETTINGS = {"single": "Single", "debate": "Debate", "idea3": "Idea3"}   # output key -> column
BY_PEER = {"peer_right": "Idea3, peer right", "peer_wrong": "Idea3, peer wrong"}
COLUMNS = [*SETTINGS.values(), *BY_PEER.values()]


def enabled(config: dict) -> bool:
    return bool(config.get("multi_agent"))


def check(config: dict, fail) -> None:
    """`multi_agent:`: a known benchmark; pairs of known models, each pair once."""
    ma, models, benches = config["multi_agent"], config["models"], config["benchmarks"]
    if ma["benchmark"] not in benches:
        fail("multi_agent.benchmark", f"unknown benchmark {ma['benchmark']!r} (benchmarks: {', '.join(benches)})")
    seen = set()
    for i, pair in enumerate(ma["pairs"]):
        for j, n in enumerate(pair):
            if n not in models:
                fail(f"multi_agent.pairs[{i}][{j}]", f"unknown model {n!r} (models: {', '.join(models)})")
        if cfg.pair_name(pair) in seen:
            fail(f"multi_agent.pairs[{i}]", f"listed twice: {pair}")
        seen.add(cfg.pair_name(pair))


def eval_rows(config: dict) -> list[dict]:
    """None: the table reads the multi-agent outputs, not evaluation files."""
    return []


def build(config: dict, sources, built: dict) -> list[dict]:
    """One row per (pair, model): its Single, Debate and Idea3 cells."""
    rows = []
    for models, bench in cfg.multi_agent_jobs(config):
        path = Path(sources.multi_agent_dir) / cfg.pair_name(models) / f"{bench}.json"
        if not path.exists():
            raise DataError(f"{path}: multi-agent output missing (pair {' + '.join(models)}, benchmark {bench}); "
                            f"run `snakemake {path}`")
        obj = read_json(path)
        for model in models:
            cells = {}
            for key, label in SETTINGS.items():
                try:
                    x = obj["settings"][key][model]
                except KeyError:
                    raise DataError(f"{path}: no settings.{key}.{model}") from None
                cells[label] = {"acc": float(x["accuracy"]), "lo": float(x["ci_low"]), "hi": float(x["ci_high"]),
                                "n": int(x["n"])}
            for key, label in BY_PEER.items():   # Idea3 split by whether the peer's shared idea was right
                x = obj["settings"]["idea3"][model].get("by_peer", {}).get(key)
                if x is not None and x["n"]:
                    cells[label] = {"acc": float(x["accuracy"]), "lo": float(x["ci_low"]), "hi": float(x["ci_high"]),
                                    "n": int(x["n"])}
            rows.append({"pair": cfg.pair_name(models), "pair_models": models, "benchmark": bench, "model": model,
                         "label": model, "cells": cells, "columns": [c for c in COLUMNS if c in cells],
                         "mode": obj.get("idea3_mode")})
    return rows


def caption(config: dict, rows: list[dict]) -> str:
    ma, ev = config["multi_agent"], config["evaluation"]
    return (
        f"{TITLE}, on {ma['benchmark']}, base models (untrained) answering in pairs. "
        f"Accuracy (%) of each model with its 95% bootstrap confidence interval over questions ({ev['bootstrap']} "
        f"resamples). Single: the model answers alone (solo). Debate: two rounds, each model answers, then reads its "
        f"peer's answer and revises. Idea3: Idea Sharing, Analysis and Fusion at inference "
        f"({ma['mode']} mode); its accuracy is also split by whether the peer's shared idea (its Idea Sharing "
        f"answer) was right (n: the questions of each part). The scored answer is the model's own last answer. "
        f"Unlike every "
        f"other table, Debate and Idea3 are NOT solo: each model reads its peer's answers at test time. "
        f"Decoding: greedy (temperature 0), one completion per stage, at most {ev['max_new_tokens']} new tokens, "
        f"{config['prompts']} prompts."
    )


def layout(config: dict, rows: list[dict]):
    blocks: dict[str, list[dict]] = {}
    for r in rows:
        blocks.setdefault(f"{' + '.join(r['pair_models'])} ({r['benchmark']})", []).append(r)
    def cell(r: dict, c: str) -> str:
        if c not in r["cells"]:
            return "-"
        return fmt_cell(r["cells"][c]) + (f" (n {r['cells'][c]['n']})" if c in BY_PEER.values() else "")

    out = []
    for title, rs in blocks.items():
        cols = [c for c in COLUMNS if any(c in r["cells"] for r in rs)]
        out.append((title, ["Model"] + cols, [[r["model"]] + [cell(r, c) for c in cols] for r in rs]))
    return out


def frame(rows: list[dict]):
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


def figures(config: dict, rows: list[dict], figures_dir) -> list:
    return []


def paper_entries(paper: dict) -> list[dict]:
    """paper_numbers.yaml `multi_agent:`: per model, single / debate / idea3 on its `benchmark`."""
    ma = dict(paper.get("multi_agent") or {})
    bench = ma.pop("benchmark", None)
    return [dict(hub=hub, key=key, column=bench, paper=float(v), approx=False, note="")
            for hub, vals in ma.items() for key, v in vals.items()]


def paper_cells(config: dict, entry: dict, rows: list[dict], model: str) -> list[tuple[str, str, dict]]:
    """The model's cell of the entry's setting in every pair that holds it, on the entry's benchmark."""
    col = SETTINGS.get(entry["key"])
    return [(f"pair {r['pair']}", f"{col} ({r['benchmark']})", r["cells"][col]) for r in rows
            if r["model"] == model and r["benchmark"] == entry["column"] and col is not None]
