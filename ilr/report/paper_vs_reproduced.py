"""Table `paper_vs_reproduced`: every number of ilr/report/paper_numbers.yaml (transcribed from the paper,
with its source) that this config's runs produce, beside the reproduced one: paper, reproduced (95% CI), Δ.
A paper number is matched by model (the hub id of `models.<name>.path`), row and column; each table module
says which of its numbers the paper reports (`paper_entries`) and where they are (`paper_cells`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ilr.report import registry, solo

TITLE = "The paper's numbers next to the reproduced ones"
FIGURES = ()
PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")
COLUMNS = ["table", "model", "row", "column", "paper", "reproduced", "ci_low", "ci_high", "delta", "paper_in_ci",
           "approx", "note"]


def enabled(config: dict) -> bool:
    return True


def check(config: dict, fail) -> None:
    """Nothing to check: the table reads no config key of its own."""


def eval_rows(config: dict) -> list[dict]:
    """None of its own: it reads the other tables' rows."""
    return []


def load_paper_numbers(path: str | Path = PAPER_NUMBERS) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def build(config: dict, sources, built: dict) -> list[dict]:
    """Every paper number that this config's runs produce, with the reproduced number beside it."""
    paper = load_paper_numbers(sources.paper_numbers)
    by_hub: dict[str, list[str]] = {}
    for name, m in config["models"].items():
        by_hub.setdefault(m["path"], []).append(name)
    out = []
    for table in registry.TABLES:
        mod = registry.module(table)
        for e in (mod.paper_entries(paper) if hasattr(mod, "paper_entries") else []):
            for model in by_hub.get(e["hub"], []):
                for row, column, c in mod.paper_cells(config, e, built.get(table, []), model):
                    rep = 100 * c["acc"]
                    out.append({"table": table, "model": model, "row": row, "column": column,
                                "paper": e["paper"], "reproduced": round(rep, 4), "ci_low": round(100 * c["lo"], 4),
                                "ci_high": round(100 * c["hi"], 4), "delta": round(rep - e["paper"], 4),
                                "paper_in_ci": bool(100 * c["lo"] <= e["paper"] <= 100 * c["hi"]),
                                "approx": e["approx"], "note": e["note"]})
    return out


def caption(config: dict, rows: list[dict]) -> str:
    text = (f"{TITLE}: every number of ilr/report/paper_numbers.yaml (the paper's tables, "
            f"transcribed with their sources) that this study's runs produce, matched by model (the hub id of "
            f"`models.<name>.path`), row and column. Reproduced: accuracy (%) with its 95% bootstrap CI; "
            f"Δ = reproduced − paper, in points; ~ marks a paper number read off a figure. A number the source "
            f"gives to no single row (ILR's AIME column names no group) is set beside every row it may belong "
            f"to, and its note says so. "
            f"{solo.SOLO} (The multi-agent rows are not solo: see T4.) Decoding: {solo.decoding_text(config)}. "
            f"{solo.seeds_text(config)}")
    if not rows:
        models = ", ".join(f"{n} ({m['path']})" for n, m in config["models"].items())
        text += (f" No paper number maps to this study: its models are none of the paper's ({models}). "
                 f"The tiny study has no paper counterpart (toy models built locally, generated tasks); "
                 f"config/paper.yaml is the study whose numbers this table compares with the paper.")
    return text


def layout(config: dict, rows: list[dict]):
    header = ["Table", "Model", "Row", "Column", "Paper", "Reproduced [95% CI]", "Δ", "Note"]
    body = [[r["table"], r["model"], r["row"], r["column"], ("~" if r["approx"] else "") + f"{r['paper']:.2f}",
             f"{r['reproduced']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]", f"{r['delta']:+.2f}", r["note"]]
            for r in rows]
    return [("", header, body)] if body else []


def frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame.from_records(rows, columns=COLUMNS)


def figures(config: dict, rows: list[dict], figures_dir) -> list:
    return []
