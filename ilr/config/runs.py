"""Run names and what a run reads: a function of the config alone (the study's plan, which cells and jobs
the tables need, is ilr/study.py).

A method of `methods:` whose `p` is a list (the cooperation-ratio sweep) expands into one run per value:
`ilr_ratio` with p [0.0, 0.2] -> `ilr_ratio_p0.0`, `ilr_ratio_p0.2`; every other method is one run named
after itself. `method_config(config, run)` inverts this (p becomes a scalar); `training_args` is the
`training:` section with the run's method keys over it, a typed `TrainingArgs` (ilr/config/args.py): what
the trainer reads.
"""

from __future__ import annotations

import copy

from ilr.config.args import TrainingArgs, merged_args
from ilr.trainers import trainer

BASE = "base"
BASE_GROUP = "none"
# keys of a method entry that describe the method, not a training hyper-parameter
METHOD_KEYS = ("trainer", "interaction", "calibration", "groups", "p")


def format_p(p: float) -> str:
    p = float(p)
    return f"{p:.1f}" if round(p, 1) == p else repr(p)


def method_runs(config: dict, method: str) -> list[str]:
    """The run names of one method: itself, or one per p of a ratio sweep."""
    m = config["methods"][method]
    if isinstance(m.get("p"), list):
        return [f"{method}_p{format_p(p)}" for p in m["p"]]
    return [method]


def run_names(config: dict) -> list[str]:
    return [r for m in config["methods"] for r in method_runs(config, m)]


def method_of_run(config: dict, run: str) -> str:
    for m in config["methods"]:
        if run in method_runs(config, m):
            return m
    raise KeyError(f"{run!r} is no run of config `methods:` (runs: {', '.join(run_names(config))})")


def method_config(config: dict, run: str) -> dict:
    """The method entry of a run, with `p` a scalar for ratio runs (`ilr_ratio_p0.2` -> p 0.2)."""
    base = method_of_run(config, run)
    m = copy.deepcopy(config["methods"][base])
    if isinstance(m.get("p"), list):
        m["p"] = next(float(p) for p in m["p"] if f"{base}_p{format_p(p)}" == run)
    m["name"], m["base_method"] = run, base
    return m


def training_args(config: dict, method: str | dict) -> TrainingArgs:
    """What a run trains with: `training:` with the method's keys over it (a run name or a method_config
    dict), as its trainer's typed, frozen args (ilr/config/args.py): `args.beta`, `args.as_dict()`."""
    return merged_args(config["training"], method_config(config, method) if isinstance(method, str) else method)


def is_group_run(config: dict, run: str) -> bool:
    return trainer(method_config(config, run)["trainer"]).group


def trained_names(config: dict, run: str, group: str) -> list[str]:
    """The models a training job produces: the group's members, or the one model (single-agent)."""
    return list(config["groups"][group]) if is_group_run(config, run) else [group]


def base_seed(config: dict) -> int:
    """Base models are evaluated once, at the first seed (greedy decoding makes seeds equal)."""
    return config["seeds"][0]


def pair_name(models: list[str]) -> str:
    """The directory name of a multi-agent pair: `tiny-llama+tiny-qwen-l`."""
    return "+".join(models)


def multi_agent_jobs(config: dict) -> list[tuple[list[str], str]]:
    """Every (models, benchmark) multi-agent inference job of the config (none without `multi_agent:`)."""
    ma = config.get("multi_agent")
    return [(list(pair), ma["benchmark"]) for pair in ma["pairs"]] if ma else []


def row_seeds(config: dict, method: str) -> list[int]:
    return [base_seed(config)] if method == BASE else list(config["seeds"])
