"""The study: what a config asks to run, read by the Snakefile (workflow/rules/common.smk), the memory plan
and the tests.

- `load` / `validate` / `load_merged`: ilr.config's, with each table's config checks
  (ilr/report/registry.py), the validation a run does (`python -m ilr check-config`, the Snakefile).
- The cells and jobs: `eval_cells` (every (run, group, model, seed) the tables read, and which benchmarks),
  `train_jobs` (every training job those cells need); run names are ilr/config/runs.py's.
- What each stage reads (`stage_spec`): the Snakefile passes sha256_json(stage_spec(...)) as each rule's
  `params`, so Snakemake's params rerun trigger reruns exactly the jobs whose slice of the config
  changed. Each stage module says which slice it reads (`config_slice`, next to the code that reads it;
  STAGE_MODULES maps the stages to their modules; ilr/code_inputs.py derives each stage's code inputs
  from the same modules).
- `resources`: each job's Slurm and local resources (config `resources:`).

Upstream files (data, base models, gamma, D_q, checkpoints) are rule inputs: a change there reruns the
consumers through Snakemake's mtime trigger (one prepare_data job per data file, so changing one
benchmark's `n` rewrites that benchmark's file and reruns its evaluations, not the training).
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Iterable

from ilr import config as cfg
from ilr.report import registry as tables_registry

TABLE_CHECKS = (tables_registry.check,)


def load(path: str | os.PathLike) -> dict:
    """Read and validate the config at `path` as a run does: ilr.config.load with the tables' checks."""
    return cfg.load(path, checks=TABLE_CHECKS)


def validate(config: Any, source: str = "<config>") -> dict:
    """ilr.config.validate with the tables' checks (schema, defaults filled in, semantic checks)."""
    return cfg.validate(config, source, checks=TABLE_CHECKS)


def check(config: dict, source: str = "<config>") -> None:
    """ilr.config.check with the tables' checks."""
    cfg.check(config, source, extra=TABLE_CHECKS)


def load_merged(paths: Iterable[str | os.PathLike], overrides: dict | None = None) -> tuple[dict, str]:
    """ilr.config.load_merged with the tables' checks: the config of `snakemake --configfile A B --config k=v`."""
    return cfg.load_merged(paths, overrides, checks=TABLE_CHECKS)


# --------------------------------------------------------------------------------------------------
# the cells and jobs the tables need (each table's rows: its module in ilr/report/, ilr/report/registry.py)


def eval_cells(config: dict) -> dict[tuple[str, str, str, int], list[str]]:
    """(method run, group, model, seed) -> the benchmarks the tables need of it (ordered, unique)."""
    cells: dict[tuple[str, str, str, int], list[str]] = {}
    for row in tables_registry.eval_rows(config):
        for seed in cfg.row_seeds(config, row["method"]):
            bl = cells.setdefault((row["method"], row["group"], row["model"], seed), [])
            bl.extend(b for b in row["benchmarks"] if b not in bl)
    return cells


def train_jobs(config: dict) -> list[tuple[str, str, int]]:
    """Every (method run, group-or-model, seed) training job the tables need."""
    out: list[tuple[str, str, int]] = []
    for (m, g, model, seed) in eval_cells(config):
        if m != cfg.BASE and (m, g, seed) not in out:
            out.append((m, g, seed))
    return out


# --------------------------------------------------------------------------------------------------
# the config slice each stage reads (see the module docstring)


STAGE_MODULES = {   # stage -> the module that reads the config for it, and says which part (config_slice)
    "prepare_data": "ilr.data_prep", "build_model": "ilr.tiny.build", "ability": "ilr.ability",
    "difficulty": "ilr.difficulty", "train": "ilr.train", "evaluate": "ilr.evaluate",
    "multi_agent": "ilr.multi_agent", "tables": "ilr.report.tables",
}


def stage_spec(config: dict, stage: str, **ids) -> dict:
    """The part of `config` that one job of `stage` (identified by `ids`) reads: each stage's `config_slice`,
    beside the code that reads the config."""
    if stage not in STAGE_MODULES:
        raise KeyError(f"unknown stage {stage!r}")
    return importlib.import_module(STAGE_MODULES[stage]).config_slice(config, **ids)


def stage_hash(config: dict, stage: str, **ids) -> str:
    from ilr.io import sha256_json

    return sha256_json(stage_spec(config, stage, **ids))


# --------------------------------------------------------------------------------------------------
# resources (Slurm and local)


def resources(config: dict, rule: str, sizes: list[str] | None = None) -> dict:
    """Resources of one job of `rule`: default < sizes.<size> < rules.<rule> < rules.<rule>.sizes.<size>.

    For a job over several models, each model's resources are resolved and combined. train_group and
    multi_agent hold every model of the group at once: gpus, mem_mb and cpus add up, runtime is the maximum. Other
    rules (difficulty) load one model after another: the maximum of each. Strings come from the first
    model. An explicit `rules.<rule>` value is the job's total.
    """
    res = config.get("resources", {})
    rule_res = res.get("rules", {}).get(rule, {})

    def one(size: str | None) -> dict:
        r = dict(res.get("default", {}))
        if size is not None:
            r.update(res.get("sizes", {}).get(size, {}))
        r.update({k: v for k, v in rule_res.items() if k != "sizes"})
        if size is not None:
            r.update(rule_res.get("sizes", {}).get(size, {}))
        return r

    if not sizes:
        return one(None)
    parts = [one(s) for s in sizes]
    if len(parts) == 1:
        return parts[0]
    out: dict = {}
    for r in parts:
        for k, v in r.items():
            if k in ("gpus", "mem_mb", "cpus") and rule in ("train_group", "multi_agent"):
                out[k] = out.get(k, 0) + v
            elif k in ("gpus", "mem_mb", "cpus", "runtime"):
                out[k] = max(out.get(k, 0), v)
            else:
                out.setdefault(k, v)
    # an explicit per-rule value is the job's total, not a per-model value
    out.update({k: v for k, v in rule_res.items() if k != "sizes"})
    return out


# --------------------------------------------------------------------------------------------------
# `python -m ilr check-config FILE...`: the validation a Snakemake run does first, without Snakemake (whose
# own parse of a `--configfile` ends at a YAML syntax error without naming the line)


def add_arguments(p) -> None:
    p.add_argument("files", nargs="+", help="config files, merged in order as by `snakemake --configfile A B`")
    p.add_argument("--budget", action="store_true", help="print every stage's longest prompt + completion")


def main(args) -> int:
    from ilr.config import budget

    config, _ = load_merged(args.files)
    print(f"{', '.join(args.files)}: valid; {budget.summary(config)}")
    for stage in budget.stages(config) if args.budget else ():
        print("  " + budget.describe(stage))
    return 0
