"""Table `ablation`: Full ILR, DI-only (no Perception Calibration) and PC-only (no Dynamic Interaction), a
block per (model, group) of `tables.ablation.rows`, a column per `tables.ablation.benchmarks` entry and Avg
(ilr/report/solo.py). `tables.ablation.methods` (row label -> method) defaults to METHODS.
"""

from __future__ import annotations

from ilr.report import solo

TITLE = "Ablation: Full ILR, DI-only (no Perception Calibration), PC-only (no Dynamic Interaction)"
FIGURES = ()
METHODS = {"Full ILR": "ilr", "DI-only": "ilr_di_only", "PC-only": "ilr_pc_only"}


def enabled(config: dict) -> bool:
    return "ablation" in config["tables"]


def methods(config: dict) -> dict[str, str]:
    """Row label -> method."""
    return config["tables"]["ablation"].get("methods", METHODS)


def check(config: dict, fail) -> None:
    solo.check_columns(config, "ablation", fail)
    groups, all_methods = config["groups"], config["methods"]
    for label, mname in methods(config).items():
        solo.check_group_method(config, f"tables.ablation.methods.{label}", mname, fail)
        for i, (model, g) in enumerate(config["tables"]["ablation"]["rows"]):
            if g not in groups:
                fail(f"tables.ablation.rows[{i}]", f"unknown group {g!r}")
            if model not in groups[g]:
                fail(f"tables.ablation.rows[{i}]", f"model {model!r} is not in group {g!r} {groups[g]}")
            if g not in all_methods[mname]["groups"]:
                fail(f"tables.ablation.rows[{i}]", f"method {mname!r} is not trained on group {g!r} "
                     f"(methods.{mname}.groups: {all_methods[mname]['groups']})")


def eval_rows(config: dict) -> list[dict]:
    spec = config["tables"]["ablation"]
    return [solo.row(model, label, m, g, spec) for model, g in spec["rows"] for label, m in methods(config).items()]


def build(config: dict, sources, built: dict) -> list[dict]:
    return solo.build(config, sources.evals, "ablation", eval_rows(config))


def caption(config: dict, rows: list[dict]) -> str:
    return (solo.caption(config, "ablation", TITLE) + solo.estimator_text(config, methods(config))
            + calibration_check(config, rows))


def calibration_check(config: dict, rows: list[dict]) -> str:
    """Which calibrated rows are identical by construction to their uncalibrated twin: each training run's
    rollout log says how far calibration moved the advantages its models trained on (calibration_effect,
    ilr/train/ilr.py); where it moved none, Full ILR trains as DI-only and PC-only as GRPO on solo answers."""
    twin = {"Full ILR": "DI-only", "PC-only": "GRPO on the same solo answers",
            "Full ILR (pooled)": "DI-only (pooled)"}
    inert, active = [], []
    for r in rows:
        summaries = [t for t in r.get("training") or [] if t and t.get("calibration")]
        if r["label"] not in twin or not summaries:
            continue
        where = f"{r['label']} {r['model']} ({r['group']})"
        effect = max(t["calibration_effect"] for t in summaries)
        (inert if all(t["calibration_inert"] for t in summaries) else active).append((where, effect, r["label"]))
    if not inert and not active:
        return ""
    text = (" Calibration check (from each run's rollout log: the largest change calibration made to an advantage "
            "a model trained on, after the best uniform rescale):")
    if inert:
        text += (" none in " + "; ".join(f"{w} ({e:.0e})" for w, e, _ in inert) + ": identical by construction to "
                 + " / ".join(sorted({twin[lab] for _, _, lab in inert})) + " (METHOD.md section 5; config "
                 "training.advantages, reward_format and scale_rewards are the choices that make it act).")
    if active:
        text += " Calibration acted in " + "; ".join(f"{w} (up to {e:.2f})" for w, e, _ in active) + "."
    return text


def layout(config: dict, rows: list[dict]):
    return solo.layout(rows, block=lambda r: f"{r['model']} ({r['group']})")


frame = solo.frame
figures = solo.figures


def paper_entries(paper: dict) -> list[dict]:
    """paper_numbers.yaml `ablation:`: per (model, group) the Avg of ilr, ilr_di_only, ilr_pc_only."""
    return [dict(hub=e["model"], key=f"{key}/{e['group']}", column="avg", paper=float(e[key]), approx=False, note="")
            for e in paper.get("ablation") or [] for key in METHODS.values() if key in e]


def paper_cells(config: dict, entry: dict, rows: list[dict], model: str) -> list[tuple[str, str, dict]]:
    """Paper keys: `<method>/<group>`, the method one of METHODS' (its row: the label tables.ablation gives it)."""
    m, g = entry["key"].split("/")
    label = {method: lab for lab, method in methods(config).items()}.get(m)
    return solo.paper_cells(rows, model, entry["column"], lambda r: r["group"] == g and r["label"] == label)
