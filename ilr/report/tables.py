"""The `tables` stage: every table of ilr/report/registry.py from the evaluation outputs.

Reads only the files the tables need (each table's `eval_rows`: the same cells the Snakefile gives the
`tables` rule as inputs, ilr.study.eval_cells), `<eval-dir>/<method>/<group>/<model>/seed<S>/<benchmark>.json`,
and the multi-agent outputs (`--multi-agent-dir`); writes, in `--out-dir`, each table as `<name>.md`, `.csv`
and `.tex` (ilr/report/render.py), and its figures in `--figures-dir`:
  main                  paper Table 1: per model Base, GRPO, PPO, ILR-<group>; paired tests (main.py)
  ablation              Full ILR, DI-only, PC-only per (model, group) of `tables.ablation.rows` (ablation.py)
  coop_ratio            p = 0.0 .. 1.0 and IRT (coop_ratio.py; + coop_ratio.png: Avg against p, IRT in red)
  multi_agent           T4: Single / Debate / Idea3 per model of each `multi_agent.pairs` pair; NOT solo
  paper_vs_reproduced   every number of ilr/report/paper_numbers.yaml that this config's runs produce
Every caption states the decoding protocol and that evaluation is solo (each model answers alone), except
T4's, which says it is not. The statistics (CIs, paired tests): ilr/report/stats.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ilr import config as cfg
from ilr.report import registry, render
from ilr.report.paper_vs_reproduced import PAPER_NUMBERS
from ilr.report.solo import EvalStore


def config_slice(config: dict) -> dict:
    """The config this stage reads (Snakemake's rerun trigger, ilr.study.stage_spec)."""
    from ilr.config import METHOD_KEYS

    return {"tables": config["tables"], "seeds": config["seeds"], "evaluation": config["evaluation"],
            "groups": config["groups"], "models": {n: m["path"] for n, m in config["models"].items()},
            "multi_agent": config.get("multi_agent"), "prompts": config["prompts"],
            "methods": {m: {k: v for k, v in spec.items() if k in METHOD_KEYS} for m, spec in config["methods"].items()}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--eval-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--figures-dir", required=True)
    p.add_argument("--multi-agent-dir", help="multi-agent inference outputs (default: <eval-dir>/../multi_agent)")


def write_tables(config: dict, eval_dir: str | Path, out_dir: str | Path, figures_dir: str | Path,
                 multi_agent_dir: str | Path | None = None, paper_numbers: str | Path = PAPER_NUMBERS) -> list[Path]:
    """Every table of this config (and its figures); returns the paths written."""
    sources = registry.Sources(EvalStore(eval_dir), Path(multi_agent_dir or Path(eval_dir).parent / "multi_agent"),
                               Path(paper_numbers))
    written: list[Path] = []
    built: dict[str, list[dict]] = {}
    for name, mod in registry.tables(config):
        rows = built[name] = mod.build(config, sources, built)
        written += render.write(Path(out_dir), name, mod.caption(config, rows), mod.layout(config, rows),
                                mod.frame(rows))
        written += mod.figures(config, rows, Path(figures_dir))
    return written


def main(args: argparse.Namespace) -> int:
    config = cfg.load(args.config, checks=(registry.check,))
    for path in write_tables(config, args.eval_dir, args.out_dir, args.figures_dir, args.multi_agent_dir):
        print(path)
    return 0
