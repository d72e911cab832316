"""Table `coop_ratio` (paper Fig. 3) and figures/coop_ratio.png: for each model of `tables.coop_ratio.group`,
ILR trained with a fixed cooperation probability p (one row per p of the ratio method's sweep) against IRT
(Dynamic Interaction); a column per `tables.coop_ratio.benchmarks` entry and Avg (ilr/report/solo.py). The
figure plots Avg against p, IRT in red, the 95% CI as error bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ilr import config as cfg
from ilr.io import atomic_path
from ilr.report import solo

TITLE = "Cooperation ratio (paper Fig. 3): fixed cooperation probability p vs IRT"
FIGURES = ("coop_ratio.png",)
DEFAULTS = {"method": "ilr_ratio", "irt_method": "ilr"}   # tables.coop_ratio.<key> when not given


def enabled(config: dict) -> bool:
    return "coop_ratio" in config["tables"]


def method(config: dict, key: str) -> str:
    return config["tables"]["coop_ratio"].get(key, DEFAULTS[key])


def check(config: dict, fail) -> None:
    solo.check_columns(config, "coop_ratio", fail)
    g, groups, methods = config["tables"]["coop_ratio"]["group"], config["groups"], config["methods"]
    if g not in groups:
        fail("tables.coop_ratio.group", f"unknown group {g!r} (groups: {', '.join(groups)})")
    for k in DEFAULTS:
        mname = method(config, k)
        solo.check_group_method(config, f"tables.coop_ratio.{k}", mname, fail)
        if g not in methods[mname]["groups"]:
            fail(f"tables.coop_ratio.{k}", f"method {mname!r} is not trained on group {g!r}")
    if methods[method(config, "method")]["interaction"] != "ratio":
        fail("tables.coop_ratio.method", "expected a method with interaction 'ratio'")


def eval_rows(config: dict) -> list[dict]:
    spec = config["tables"]["coop_ratio"]
    g, rows = spec["group"], []
    for model in config["groups"][g]:
        for run in cfg.method_runs(config, method(config, "method")):
            p = cfg.method_config(config, run)["p"]
            rows.append(solo.row(model, f"p = {cfg.format_p(p)}", run, g, spec, p=p))
        rows.append(solo.row(model, "IRT", method(config, "irt_method"), g, spec, p=None))
    return rows


def build(config: dict, sources, built: dict) -> list[dict]:
    return solo.build(config, sources.evals, "coop_ratio", eval_rows(config))


def caption(config: dict, rows: list[dict]) -> str:
    return solo.caption(config, "coop_ratio", TITLE) + (
        f" Group {config['tables']['coop_ratio']['group']}; p = probability that a question is cooperative "
        f"(p = 0 pure competition, p = 1 pure cooperation); IRT = interaction chosen per question by Dynamic "
        f"Interaction.")


def layout(config: dict, rows: list[dict]):
    return solo.layout(rows)


def frame(rows: list[dict]):
    return solo.frame(rows, lead=lambda r: {"p": r["p"]})


def figures(config: dict, rows: list[dict], figures_dir: Path) -> list[Path]:
    """figures/coop_ratio.png: average accuracy against p per model, IRT in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(figures_dir) / FIGURES[0]
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
    return [path]


def paper_entries(paper: dict) -> list[dict]:
    """paper_numbers.yaml `coop_ratio:` (read off the paper's Fig. 3 when `approx`): per model, p<value> and irt."""
    cr = dict(paper.get("coop_ratio") or {})
    approx = bool(cr.pop("approx", False))
    return [dict(hub=hub, key=key, column="avg", paper=float(v), approx=approx,
                 note="read off the paper's Fig. 3" if approx else "")
            for hub, vals in cr.items() for key, v in vals.items()]


def paper_cells(config: dict, entry: dict, rows: list[dict], model: str) -> list[tuple[str, str, dict]]:
    """Paper keys: `irt`, `p<value>` (a row of the sweep)."""
    key = entry["key"]
    return solo.paper_cells(rows, model, entry["column"], lambda r: r["label"] == "IRT" if key == "irt" else (
        r["p"] is not None and abs(float(r["p"]) - float(key[1:])) < 1e-9))
