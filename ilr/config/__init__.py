"""The study config: load it, validate it, read run names off it.

`load(path)` reads a YAML file (`load_yaml`, ilr/config/loading.py: `7e-5` is a number, a key given twice
is an error, YAML errors name the line and column), validates it against
workflow/schemas/config.schema.yaml (ilr/config/schema.py: every mapping closed; `methods:` entries by
trainer), fills the schema's defaults (`fill_defaults`: PPO's keys into each ppo entry), then runs the
semantic checks (`check`, ilr/config/checks.py). The Snakefile does the same through `load_merged` (the
`--configfile` files, then `--config` overrides read by `parse_overrides`). Every error is a
`ConfigError` naming the file, the key path (`methods.ilr.trainer`) and what was expected.

This package imports nothing above it. The checks of the layers above (each table's, ilr/report/) come in
through `checks=`: `ilr.study.load` / `validate` / `load_merged` are these with the tables' checks, the
validation a run does (the Snakefile, `check-config`); a stage reads the effective config the Snakefile
validated with `ilr.config.load`. Run names and what a run reads (`method_config`, `training_args`): ilr/config/runs.py;
a run's training arguments as a typed object made from the schema (`TrainingArgs`): ilr/config/args.py;
the study's plan (evaluation cells, training jobs, stage slices, resources): ilr/study.py.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from ilr.config.args import TrainingArgs, args_class
from ilr.config.checks import HUB_ID, Check, check
from ilr.config.loading import (ConfigError, YamlLoader, dump_yaml, key_path, load_yaml, merge, parse_overrides,
                                parse_yaml)
from ilr.config.runs import (BASE, BASE_GROUP, METHOD_KEYS, base_seed, format_p, is_group_run, method_config,
                             method_of_run, method_runs, multi_agent_jobs, pair_name, row_seeds, run_names,
                             trained_names, training_args)
from ilr.config.schema import (REPO, SCHEMA, fill_defaults, method_schema, schema_validate, trainer_keys,
                               trainer_names, training_keys)

__all__ = [
    "BASE", "BASE_GROUP", "HUB_ID", "METHOD_KEYS", "REPO", "SCHEMA", "Check", "ConfigError", "TrainingArgs",
    "YamlLoader", "args_class", "base_seed", "check", "dump_yaml", "fill_defaults", "format_p", "is_group_run",
    "key_path", "load", "load_merged", "load_yaml", "merge", "method_config", "method_of_run", "method_runs",
    "method_schema", "multi_agent_jobs", "pair_name", "parse_overrides", "parse_yaml", "row_seeds", "run_names",
    "schema_validate", "trained_names", "trainer_keys", "trainer_names", "training_args", "training_keys",
    "validate",
]


def load(path: str | os.PathLike, checks: Iterable[Check] = ()) -> dict:
    """Read, validate (schema + semantic checks + `checks`) and return the config at `path`."""
    path = str(path)
    return validate(load_yaml(path), source=path, checks=checks)


def validate(config: Any, source: str = "<config>", checks: Iterable[Check] = ()) -> dict:
    """Schema validation, the schema's defaults filled in (in place), the semantic checks, then `checks`.
    Returns `config`."""
    if not isinstance(config, dict):
        raise ConfigError(source, "", f"expected a mapping of sections, got {type(config).__name__}")
    schema_validate(config, source)
    fill_defaults(config)
    check(config, source, extra=checks)
    return config


def load_merged(paths: Iterable[str | os.PathLike], overrides: dict | None = None,
                checks: Iterable[Check] = ()) -> tuple[dict, str]:
    """The config of `snakemake --configfile A B --config k=v`: the files merged in order, then the
    overrides; validated. Returns (config, source), source naming the files for error messages."""
    paths = [str(p) for p in paths]
    source = ", ".join(paths) + (" (with --config overrides)" if overrides else "")
    config: dict = {}
    for p in paths:
        merge(config, load_yaml(p))
    merge(config, overrides or {})
    return validate(config, source=source, checks=checks), source
