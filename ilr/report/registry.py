"""The tables: name -> the module that owns the table. The Snakefile's targets (workflow/rules/common.smk),
the config checks (ilr.study passes `check` below to ilr.config.check), the evaluation cells the study
runs (ilr.study.eval_cells) and the `tables` stage (ilr/report/tables.py) all read this list, in this
order (paper_vs_reproduced last: it reads the others' rows).

Adding a table: its module here (the interface below), one line in TABLES, its config keys in
workflow/schemas/config.schema.yaml (and a caption in workflow/report/<name>.rst for the HTML report).

A table module defines
  TITLE                          the table's title (its caption's first words)
  FIGURES                        file names it writes under the figures dir besides the table (or ())
  enabled(config)                whether this config has the table
  check(config, fail)            its config checks; fail(key, message) raises the ConfigError
  eval_rows(config)              the rows that read evaluation files: dicts with model, label, method (a
                                 run), group and benchmarks; the study evaluates exactly these cells
  build(config, sources, built)  its rows (`sources`: Sources below; `built`: earlier tables' rows by name)
  caption(config, rows)          the protocol statement, the same in .md and .tex
  layout(config, rows)           blocks of cell strings for .md and .tex (ilr/report/render.py)
  frame(rows)                    the pandas DataFrame written as .csv
  figures(config, rows, figures_dir) -> the paths it wrote
and, where the paper reports the table (ilr/report/paper_numbers.yaml), for paper_vs_reproduced
  paper_entries(paper)           the paper's numbers of this table: {hub, key, column, paper, approx, note}
  paper_cells(config, entry, rows, model) -> [(row label, column label, cell)] the entry's reproduced cells
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ilr.report.render import FORMATS

TABLES = {
    "main": "ilr.report.main",
    "ablation": "ilr.report.ablation",
    "coop_ratio": "ilr.report.coop_ratio",
    "multi_agent": "ilr.report.multi_agent",
    "paper_vs_reproduced": "ilr.report.paper_vs_reproduced",
}


@dataclass
class Sources:
    """What the tables are built from: the evaluation files (an EvalStore), the multi-agent outputs, the
    paper's numbers."""

    evals: Any
    multi_agent_dir: Path
    paper_numbers: Path


def module(name: str) -> ModuleType:
    return importlib.import_module(TABLES[name])


def tables(config: dict) -> list[tuple[str, ModuleType]]:
    """(name, module) of every table this config has, in order."""
    mods = [(name, module(name)) for name in TABLES]
    return [(name, mod) for name, mod in mods if mod.enabled(config)]


def names(config: dict) -> list[str]:
    return [name for name, _ in tables(config)]


def outputs(config: dict, tables_dir: str, figures_dir: str) -> list[str]:
    """Every file the `tables` stage writes: each table as .md, .csv and .tex, then the figures."""
    mods = tables(config)
    return ([f"{tables_dir}/{name}.{ext}" for name, _ in mods for ext in FORMATS]
            + [f"{figures_dir}/{fig}" for _, mod in mods for fig in mod.FIGURES])


def check(config: dict, fail) -> None:
    """Each table's config checks."""
    for _, mod in tables(config):
        mod.check(config, fail)


def eval_rows(config: dict) -> list[dict]:
    """Every row of every table that reads evaluation files."""
    return [row for _, mod in tables(config) for row in mod.eval_rows(config)]
