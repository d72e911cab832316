"""The semantic checks a schema cannot express (`check`): models, groups and methods that name each
other, data sources, run names, resources. The layers above add theirs through `extra` (ilr/study.py
passes each table's checks, ilr/report/registry.py), so that this package imports nothing above it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable

from ilr.config.loading import ConfigError
from ilr.config.runs import method_runs, run_names, training_args
from ilr.trainers import TRAINERS

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")

# a further check: check(config, fail), fail(key, message) raising the ConfigError
Check = Callable[[dict, Callable[[str, str], None]], None]


def check(config: dict, source: str = "<config>", extra: Iterable[Check] = ()) -> None:
    """Semantic checks a schema cannot express; then each of `extra` (the layers above: the tables' checks)."""
    def fail(key: str, msg: str):
        raise ConfigError(source, key, msg)

    models, groups, methods, benches = config["models"], config["groups"], config["methods"], config["benchmarks"]

    from ilr.prompts import resolve_dir

    try:
        resolve_dir(config["prompts"])
    except FileNotFoundError as e:
        fail("prompts", str(e))

    data_specs = {"data.train": config["data"]["train"], **{f"benchmarks.{b}": s for b, s in benches.items()}}
    for key, spec in data_specs.items():
        _check_data_spec(key, spec, fail)

    for name, m in models.items():
        p = m["path"]
        if "build" in m or Path(p).is_dir():
            continue
        if HUB_ID.match(p) and not p.startswith((".", "/")):
            continue
        fail(f"models.{name}.path", f"{p!r} is neither an existing directory, nor a hub id "
             f"('org/name'), nor built by a `build:` entry of models.{name}")

    for g, members in groups.items():
        for i, n in enumerate(members):
            if n not in models:
                fail(f"groups.{g}[{i}]", f"unknown model {n!r} (models: {', '.join(models)})")

    for name, m in methods.items():
        key = f"methods.{name}"
        trainer = m["trainer"]
        if TRAINERS[trainer].group:
            for k in ("interaction", "calibration", "groups"):
                if k not in m:
                    fail(f"{key}.{k}", f"required for trainer {trainer!r}")
            for i, g in enumerate(m["groups"]):
                if g not in groups:
                    fail(f"{key}.groups[{i}]", f"unknown group {g!r} (groups: {', '.join(groups)})")
            if m["interaction"] == "ratio" and "p" not in m:
                fail(f"{key}.p", "required for interaction 'ratio' (a probability or a list of them)")
            if m["interaction"] != "ratio" and "p" in m:
                fail(f"{key}.p", f"only meaningful with interaction 'ratio', not {m['interaction']!r}")
        for k in TRAINERS[trainer].extra_models:   # AIPO's helper
            if m[k] not in models:
                fail(f"{key}.{k}", f"unknown model {m[k]!r}: the {k} must be a model of `models:` "
                     f"({', '.join(models)})")
        if trainer == "aipo":
            lo, hi = m["is_clip"]
            if lo > hi:
                fail(f"{key}.is_clip", f"expected [lower, upper] with lower <= upper, got {m['is_clip']}")
        if trainer == "ppo":
            a = training_args(config, name)
            if a.questions_per_step * a.num_generations % a.num_mini_batches:
                fail(f"{key}.num_mini_batches", f"{a.num_mini_batches} does not divide the step's "
                     f"questions_per_step x num_generations = {a.questions_per_step * a.num_generations} "
                     "sequences (nor, then, each process's share)")
        report_to = training_args(config, method_runs(config, name)[0]).report_to   # the method's, else training:'s
        unsupported = [x for x in ([] if report_to == "none" else report_to) if x not in TRAINERS[trainer].report_to]
        if unsupported:   # ilr/train/trackers.py: wandb and trackio keep one run per process
            fail(f"{key}.report_to" if "report_to" in m else "training.report_to",
                 f"trainer {trainer!r} writes its curves to {', '.join(TRAINERS[trainer].report_to)} only, "
                 f"not {', '.join(unsupported)} (set methods.{name}.report_to: [tensorboard])")
        # (a grpo/ppo entry with an ILR key fails the schema: each trainer's entry is closed)
    runs = run_names(config)
    if len(set(runs)) != len(runs):
        fail("methods", f"two methods expand to the same run name: {sorted(runs)}")

    if config["difficulty"]["method"] == "empirical" and "samples" not in config["difficulty"]:
        fail("difficulty.samples", "required for method 'empirical'")

    # the layers above: each table's checks (tables.<name>, multi_agent; ilr/report/registry.py via ilr/study.py)
    for more in extra:
        more(config, fail)

    res = config.get("resources", {})
    sizes = {m["size"] for m in models.values()}
    for s in res.get("sizes", {}):
        if s not in sizes:
            fail(f"resources.sizes.{s}", f"no model has size {s!r} (sizes: {', '.join(sorted(sizes))})")
    tp = config["generation"]["tensor_parallel_size"]
    for s in (tp if isinstance(tp, dict) else {}):
        if s not in sizes:
            fail(f"generation.tensor_parallel_size.{s}", f"no model has size {s!r} (sizes: {', '.join(sorted(sizes))})")

    # every stage's longest prompt + completion must fit generation.max_model_len (ilr/config/budget.py)
    from ilr.config import budget

    budget.check(config, fail)


def _check_data_spec(key: str, spec: dict, fail) -> None:
    """A data source the registry knows; `params` only for generated sources, checked as the generator does."""
    from ilr.benchmarks import REGISTRY

    source = spec["source"]
    if source not in REGISTRY:
        fail(f"{key}.source", f"unknown source {source!r} (known: {', '.join(REGISTRY)})")
    if "params" in spec:
        if not REGISTRY[source].generated:
            fail(f"{key}.params", f"only generated sources take params; {source!r} is read from the hub or `path`")
        from ilr.tiny.task import task_params

        try:
            task_params(spec["params"])
        except ValueError as e:
            fail(f"{key}.params", str(e))
