"""Table `coop_ratio` (paper Fig. 3) and figures/coop_ratio.png: for each model of `tables.coop_ratio.group`,
ILR trained with a fixed cooperation probability p (one row per p of the ratio method's sweep) against IRT
(Dynamic Interaction); a column per `tables.coop_ratio.benchmarks` entry and Avg (ilr/report/solo.py), and
`cooperation`: the share of the run's questions on which this model cooperated, measured in its training
runs' rollout logs (`<results>/runs/<run>/<group>/seed<S>/rollouts.jsonl`, METHOD.md "Rollout log"), pooled
over seeds. A row's type per question is `models.<model>.interaction` where the log has it (a per-model
rule, whose top-level `interaction` may read "mixed"), else the top-level `interaction`. The logs are written
by the training jobs whose checkpoints the evaluations read, so they exist whenever the evaluations do; a
missing one leaves the cell empty and the caption names it. The figure plots Avg against the cooperation
share: the sweep at its p, IRT (red) at the share it measured, the 95% CI as error bars.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ilr import config as cfg
from ilr.io import DataError, atomic_path
from ilr.layout import Layout
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
    rows = solo.build(config, sources.evals, "coop_ratio", eval_rows(config))
    layout = Layout(str(sources.evals.eval_dir.parent))   # the results root (EvalStore reads <root>/eval)
    for r in rows:
        logs = [layout.run_paths(r["method"], r["group"], s).rollouts for s in r["seeds"]]
        r["cooperation"], r["rollouts_missing"] = cooperation_share(logs, r["model"])
    return rows


def question_type(row: dict, model: str) -> str | None:
    """The interaction `model` had on one rollout-log line: its own where the rule is per model, else the
    question's."""
    own = (row.get("models") or {}).get(model) or {}
    return own["interaction"] if "interaction" in own else row.get("interaction")


def cooperation_share(logs: list[Path], model: str) -> tuple[float | None, list[str]]:
    """Share of cooperative questions of `model` over every line of the logs that exist (lines where models
    interacted), and the logs that do not exist. None when no line counts."""
    coop = total = 0
    missing = []
    for path in logs:
        if not path.exists():
            missing.append(str(path))
            continue
        for row in stream_jsonl(path):
            kind = question_type(row, model)
            if kind is not None:
                total += 1
                coop += kind == "cooperation"
    return (coop / total if total else None), missing


def stream_jsonl(path: Path):
    """The objects of a JSON Lines file one line at a time: a paper-scale rollout log (11,000 questions x m x G
    completions of up to 1,024 tokens) runs to gigabytes, more than the tables job's memory should hold."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {lineno}: not a JSON object")
            yield row


def format_share(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.2f}"


def caption(config: dict, rows: list[dict]) -> str:
    text = solo.caption(config, "coop_ratio", TITLE) + (
        f" Group {config['tables']['coop_ratio']['group']}; p = probability that a question is cooperative "
        f"(p = 0 pure competition, p = 1 pure cooperation); IRT = interaction chosen per question by Dynamic "
        f"Interaction. Cooperation = the share of training questions on which the model cooperated, measured "
        f"in its runs' rollout logs (each model's own type where the rule is per model), pooled over seeds; "
        f"the figure places IRT at that share.")
    missing = [f"{r['label']} {r['model']}" for r in rows if r["rollouts_missing"]]
    if missing:
        text += f" No rollout log (cooperation n/a or from the seeds that have one): {', '.join(missing)}."
    return text


def layout(config: dict, rows: list[dict]):
    return solo.layout(rows, extra_columns=lambda rs: [("Cooperation", lambda r: format_share(r["cooperation"]))])


def frame(rows: list[dict]):
    return solo.frame(rows, lead=lambda r: {"p": r["p"], "cooperation": None if r["cooperation"] is None
                                            else round(r["cooperation"], 4)})


def figures(config: dict, rows: list[dict], figures_dir: Path) -> list[Path]:
    """figures/coop_ratio.png: average accuracy against the cooperation share per model; the sweep at its
    p, IRT in red at the share it measured (a dashed line where no rollout log says)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(figures_dir) / FIGURES[0]
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        rs = [r for r in rows if r["model"] == model]

        def avg(r):
            c = r["cells"]["Avg"]
            return 100 * c["acc"], [[100 * (c["acc"] - c["lo"])], [100 * (c["hi"] - c["acc"])]]

        sweep = sorted((r for r in rs if r["label"] != "IRT"), key=lambda r: float(r["p"]))
        if sweep:
            xs = [float(r["p"]) for r in sweep]
            ys = [avg(r)[0] for r in sweep]
            err = np.array([[avg(r)[1][0][0] for r in sweep], [avg(r)[1][1][0] for r in sweep]])
            ax.errorbar(xs, ys, yerr=err, fmt="o-", color="tab:blue", capsize=3, label="fixed ratio p")
        for r in rs:
            if r["label"] != "IRT":
                continue
            y, e = avg(r)
            if r["cooperation"] is None:
                ax.axhline(y, color="tab:red", ls="--", label="IRT (share not measured)")
            else:
                ax.errorbar([r["cooperation"]], [y], yerr=e, fmt="s", color="tab:red", capsize=3, markersize=7,
                            label=f"IRT (cooperation {r['cooperation']:.2f})")
        ax.set_xlim(-0.05, 1.05)
        ax.set_xlabel("cooperation ratio (share of cooperative questions)")
        ax.set_title(model)
        ax.set_ylabel("average accuracy (%)")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{config['tables']['coop_ratio']['group']}: fixed cooperation ratio vs IRT (red, at its "
                 "measured share); solo evaluation, 95% CI", fontsize=9)
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
