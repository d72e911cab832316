"""The study config: loading, validation, and the helpers that the Snakefile and the stages share.

`load(path)` reads a YAML file, validates it against workflow/schemas/config.schema.yaml (the same
schema the Snakefile hands to Snakemake's `validate()`), fills the schema's defaults, then runs the
semantic checks of `check()`. Every error is a `ConfigError` naming the file, the key path
(`methods.ilr.trainer`) and what was expected.

Run names. A method of `methods:` whose `p` is a list (the cooperation-ratio sweep) expands into one
run per value: `ilr_ratio` with p [0.0, 0.2] -> `ilr_ratio_p0.0`, `ilr_ratio_p0.2`; every other method
is one run named after itself. `method_config(config, run)` inverts this (p becomes a scalar).

What each stage reads (`stage_spec`): the Snakefile passes sha256_json(stage_spec(...)) as each rule's
`params`, so Snakemake's params rerun trigger reruns exactly the jobs whose slice of the config
changed. KEEP THIS IN SYNC with what the stages read from the config:

  prepare_data                      data, benchmarks
  build_model  (model)              models.<model>.{path, build}
  ability      (model)              ability, prompts, models.<model>.path, data.train (val split)
  difficulty   (group)              difficulty, prompts, paths of the group's models, data.train
  train        (method, group, seed)
                                    training_args(method run) (training defaults + the method's keys,
                                    p as a scalar), interaction (ILR family), prompts, seed,
                                    data.train, the paths of the trained models
  evaluate     (benchmark | benchmarks, [method, model, seed])
                                    evaluation, prompts, the benchmarks' specs; for base models
                                    also the model path (trained checkpoints are inputs)
  multi_agent  (models, benchmark)  multi_agent.mode, evaluation, prompts, the benchmark's spec, the
                                    models' paths (base checkpoints)
  tables                            tables, seeds, evaluation, groups, methods (names, groups, p),
                                    multi_agent (pairs, benchmark, mode), models' paths (paper mapping)

Upstream files (base models, gamma, D_q, checkpoints) are rule inputs: a change there reruns the
consumers through Snakemake's mtime trigger. The data files are the exception: one prepare_data job
writes every data file, so consumers take them as `ancient()` inputs and the data specs they read
are part of their slice instead (changing one benchmark's `n` reruns that benchmark's evaluations,
not the training).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

SINGLE_TRAINERS = ("grpo", "ppo")
GROUP_TRAINERS = ("ilr",)
BASE = "base"
BASE_GROUP = "none"
# keys of a method entry that describe the method, not a training hyper-parameter
METHOD_KEYS = ("trainer", "interaction", "calibration", "groups", "p")
DEFAULT_ABLATION = {"Full ILR": "ilr", "DI-only": "ilr_di_only", "PC-only": "ilr_pc_only"}
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ConfigError(ValueError):
    """An invalid config: the message names the file, the key path and what was expected."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key = source, key
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


# --------------------------------------------------------------------------------------------------
# loading and validation


def load(path: str | os.PathLike) -> dict:
    """Read, validate (schema + semantic checks) and return the config at `path`."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(path, "", f"cannot read the config file ({e.strerror})") from e
    except yaml.YAMLError as e:
        raise ConfigError(path, "", f"not valid YAML ({e})") from e
    return validate(config, source=path)


def validate(config: Any, source: str = "<config>") -> dict:
    """Schema validation (filling defaults, in place) and the semantic checks. Returns `config`."""
    if not isinstance(config, dict):
        raise ConfigError(source, "", f"expected a mapping of sections, got {type(config).__name__}")
    schema_validate(config, source)
    check(config, source)
    return config


def _key_path(parts: Iterable) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _schema() -> dict:
    with open(SCHEMA, encoding="utf-8") as f:
        return yaml.safe_load(f)


def schema_validate(config: dict, source: str) -> None:
    import jsonschema

    schema = _schema()
    cls = jsonschema.validators.validator_for(schema)

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(prop, copy.deepcopy(sub["default"]))
        yield from cls.VALIDATORS["properties"](validator, properties, instance, schema)

    Filling = jsonschema.validators.extend(cls, {"properties": set_defaults})
    errors = sorted(Filling(schema).iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.path)))
    if not errors:
        return
    err = errors[0]
    # the most specific message: for oneOf/anyOf, the sub-error deepest in the instance
    while err.context:
        err = max(err.context, key=lambda e: len(e.absolute_path))
    key = _key_path(err.absolute_path)
    msg = err.message
    if err.validator == "additionalProperties" and not err.absolute_path:
        msg += f" (known sections: {', '.join(schema['properties'])}; new sections go in {SCHEMA.relative_to(REPO)})"
    elif err.validator == "propertyNames":
        msg = f"invalid name {err.instance!r} ({err.message})"
    raise ConfigError(source, key or "(top level)", f"{msg}; see {SCHEMA.relative_to(REPO)}")


def _is_built(config: dict, name: str) -> bool:
    return "build" in config["models"][name]


def check(config: dict, source: str = "<config>") -> None:
    """Semantic checks a schema cannot express."""
    def fail(key: str, msg: str):
        raise ConfigError(source, key, msg)

    models, groups, methods, benches = config["models"], config["groups"], config["methods"], config["benchmarks"]

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
        if trainer in GROUP_TRAINERS:
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
        else:
            for k in ("interaction", "calibration", "groups", "p"):
                if k in m:
                    fail(f"{key}.{k}", f"not a key of single-agent trainer {trainer!r} (ILR-family only)")
    runs = run_names(config)
    if len(set(runs)) != len(runs):
        fail("methods", f"two methods expand to the same run name: {sorted(runs)}")

    if config["difficulty"]["method"] == "empirical" and "samples" not in config["difficulty"]:
        fail("difficulty.samples", "required for method 'empirical'")

    def check_columns(key: str, cols: list):
        for i, c in enumerate(cols):
            names = [c] if isinstance(c, str) else c["merge"]
            for b in names:
                if b not in benches:
                    fail(f"{key}[{i}]", f"unknown benchmark {b!r} (benchmarks: {', '.join(benches)})")

    tables = config["tables"]
    for tname, t in tables.items():
        cols = column_names(t["benchmarks"])
        if len(set(cols)) != len(cols):
            fail(f"tables.{tname}.benchmarks", f"two columns share a name: {cols}")
        for i, c in enumerate(t.get("average", [])):
            if c not in cols:
                fail(f"tables.{tname}.average[{i}]", f"{c!r} is not a column of tables.{tname}.benchmarks {cols}")
    main = tables["main"]
    check_columns("tables.main.benchmarks", main["benchmarks"])
    if "vs_base" in main and main["vs_base"] not in column_names(main["benchmarks"]):
        fail("tables.main.vs_base", f"{main['vs_base']!r} is not a column of tables.main.benchmarks "
                                    f"{column_names(main['benchmarks'])}")
    for i, mname in enumerate(main.get("methods", [])):
        if mname not in methods or methods[mname]["trainer"] not in SINGLE_TRAINERS:
            fail(f"tables.main.methods[{i}]", f"{mname!r} is not a single-agent (grpo/ppo) method of `methods:`")
    ilr_m = main.get("ilr_method", "ilr")
    if "ilr_method" in main or ilr_m in methods:
        _check_group_method(config, "tables.main.ilr_method", ilr_m, fail)
    if "ablation" in tables:
        ab = tables["ablation"]
        check_columns("tables.ablation.benchmarks", ab["benchmarks"])
        for label, mname in ab.get("methods", DEFAULT_ABLATION).items():
            _check_group_method(config, f"tables.ablation.methods.{label}", mname, fail)
            for i, (model, g) in enumerate(ab["rows"]):
                if g not in groups:
                    fail(f"tables.ablation.rows[{i}]", f"unknown group {g!r}")
                if model not in groups[g]:
                    fail(f"tables.ablation.rows[{i}]", f"model {model!r} is not in group {g!r} {groups[g]}")
                if g not in methods[mname]["groups"]:
                    fail(f"tables.ablation.rows[{i}]", f"method {mname!r} is not trained on group {g!r} "
                         f"(methods.{mname}.groups: {methods[mname]['groups']})")
    if "coop_ratio" in tables:
        cr = tables["coop_ratio"]
        check_columns("tables.coop_ratio.benchmarks", cr["benchmarks"])
        g = cr["group"]
        if g not in groups:
            fail("tables.coop_ratio.group", f"unknown group {g!r} (groups: {', '.join(groups)})")
        for k, default in (("method", "ilr_ratio"), ("irt_method", "ilr")):
            mname = cr.get(k, default)
            _check_group_method(config, f"tables.coop_ratio.{k}", mname, fail)
            if g not in methods[mname]["groups"]:
                fail(f"tables.coop_ratio.{k}", f"method {mname!r} is not trained on group {g!r}")
        if methods[cr.get("method", "ilr_ratio")]["interaction"] != "ratio":
            fail("tables.coop_ratio.method", "expected a method with interaction 'ratio'")

    if "multi_agent" in config:
        ma = config["multi_agent"]
        if ma["benchmark"] not in benches:
            fail("multi_agent.benchmark", f"unknown benchmark {ma['benchmark']!r} (benchmarks: {', '.join(benches)})")
        seen = set()
        for i, pair in enumerate(ma["pairs"]):
            for j, n in enumerate(pair):
                if n not in models:
                    fail(f"multi_agent.pairs[{i}][{j}]", f"unknown model {n!r} (models: {', '.join(models)})")
            if pair_name(pair) in seen:
                fail(f"multi_agent.pairs[{i}]", f"listed twice: {pair}")
            seen.add(pair_name(pair))

    res = config.get("resources", {})
    sizes = {m["size"] for m in models.values()}
    for s in res.get("sizes", {}):
        if s not in sizes:
            fail(f"resources.sizes.{s}", f"no model has size {s!r} (sizes: {', '.join(sorted(sizes))})")


def _check_group_method(config: dict, key: str, mname: str, fail) -> None:
    methods = config["methods"]
    if mname not in methods:
        fail(key, f"unknown method {mname!r} (methods: {', '.join(methods)})")
    if methods[mname]["trainer"] not in GROUP_TRAINERS:
        fail(key, f"method {mname!r} has trainer {methods[mname]['trainer']!r}; expected an ILR-family method")


# --------------------------------------------------------------------------------------------------
# methods and runs


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


def training_args(config: dict, method: str | dict) -> dict:
    """`training:` defaults merged with the method's keys (a run name or a method_config dict)."""
    m = method_config(config, method) if isinstance(method, str) else method
    args = copy.deepcopy(config["training"])
    args.update({k: copy.deepcopy(v) for k, v in m.items() if k not in ("groups", "name", "base_method")})
    return args


def is_group_run(config: dict, run: str) -> bool:
    return method_config(config, run)["trainer"] in GROUP_TRAINERS


# --------------------------------------------------------------------------------------------------
# what the tables need


def column_names(cols: list) -> list[str]:
    """Column headers of a table: a benchmark's name, or a merged column's `name`."""
    return [c if isinstance(c, str) else c["name"] for c in cols]


def column_benchmarks(cols: list) -> list[str]:
    out: list[str] = []
    for c in cols:
        for b in ([c] if isinstance(c, str) else c["merge"]):
            if b not in out:
                out.append(b)
    return out


def single_methods(config: dict) -> list[str]:
    main = config["tables"]["main"]
    if "methods" in main:
        return list(main["methods"])
    return [m for m, v in config["methods"].items() if v["trainer"] in SINGLE_TRAINERS]


def base_seed(config: dict) -> int:
    """Base models are evaluated once, at the first seed (greedy decoding makes seeds equal)."""
    return config["seeds"][0]


def table_rows(config: dict) -> list[dict]:
    """Every row of every table: {table, model, label, method (run), group, benchmarks, extra}."""
    tables, methods, groups = config["tables"], config["methods"], config["groups"]
    rows: list[dict] = []
    main = tables["main"]
    mb = column_benchmarks(main["benchmarks"])
    ilr_m = main.get("ilr_method", "ilr")
    for model in config["models"]:
        rows.append(dict(table="main", model=model, label="Base", method=BASE, group=BASE_GROUP, benchmarks=mb))
        for m in single_methods(config):
            rows.append(dict(table="main", model=model, label=m.upper(), method=m, group=model, benchmarks=mb))
        if ilr_m in methods:
            for g in methods[ilr_m]["groups"]:
                if model in groups[g]:
                    rows.append(dict(table="main", model=model, label=f"ILR-{g}", method=ilr_m, group=g,
                                     benchmarks=mb))
    if "ablation" in tables:
        ab = tables["ablation"]
        abb = column_benchmarks(ab["benchmarks"])
        for model, g in ab["rows"]:
            for label, m in ab.get("methods", DEFAULT_ABLATION).items():
                rows.append(dict(table="ablation", model=model, label=label, method=m, group=g, benchmarks=abb))
    if "coop_ratio" in tables:
        cr = tables["coop_ratio"]
        crb = column_benchmarks(cr["benchmarks"])
        ratio, irt = cr.get("method", "ilr_ratio"), cr.get("irt_method", "ilr")
        g = cr["group"]
        for model in groups[g]:
            for run in method_runs(config, ratio):
                p = method_config(config, run)["p"]
                rows.append(dict(table="coop_ratio", model=model, label=f"p = {format_p(p)}", method=run,
                                 group=g, benchmarks=crb, p=p))
            rows.append(dict(table="coop_ratio", model=model, label="IRT", method=irt, group=g,
                             benchmarks=crb, p=None))
    return rows


def pair_name(models: list[str]) -> str:
    """The directory name of a multi-agent pair: `tiny-llama+tiny-qwen-l`."""
    return "+".join(models)


def multi_agent_jobs(config: dict) -> list[tuple[list[str], str]]:
    """Every (models, benchmark) multi-agent inference job of the config (none without `multi_agent:`)."""
    ma = config.get("multi_agent")
    return [(list(pair), ma["benchmark"]) for pair in ma["pairs"]] if ma else []


def row_seeds(config: dict, method: str) -> list[int]:
    return [base_seed(config)] if method == BASE else list(config["seeds"])


def eval_cells(config: dict) -> dict[tuple[str, str, str, int], list[str]]:
    """(method run, group, model, seed) -> the benchmarks the tables need of it (ordered, unique)."""
    cells: dict[tuple[str, str, str, int], list[str]] = {}
    for row in table_rows(config):
        for seed in row_seeds(config, row["method"]):
            bl = cells.setdefault((row["method"], row["group"], row["model"], seed), [])
            bl.extend(b for b in row["benchmarks"] if b not in bl)
    return cells


def trained_models(config: dict) -> list[tuple[str, str, str]]:
    """Every (method run, group, model) that the tables need, base models excluded."""
    out: list[tuple[str, str, str]] = []
    for (m, g, model, _seed) in eval_cells(config):
        if m != BASE and (m, g, model) not in out:
            out.append((m, g, model))
    return out


def train_jobs(config: dict) -> list[tuple[str, str, int]]:
    """Every (method run, group-or-model, seed) training job the tables need."""
    out: list[tuple[str, str, int]] = []
    for (m, g, model, seed) in eval_cells(config):
        if m != BASE and (m, g, seed) not in out:
            out.append((m, g, seed))
    return out


def trained_names(config: dict, run: str, group: str) -> list[str]:
    """The models a training job produces: the group's members, or the one model (single-agent)."""
    return list(config["groups"][group]) if is_group_run(config, run) else [group]


# --------------------------------------------------------------------------------------------------
# the config slice each stage reads (see the module docstring)


def stage_spec(config: dict, stage: str, **ids) -> dict:
    """The part of `config` that one job of `stage` (identified by `ids`) reads."""
    c = config
    prompts = c["prompts"]
    if stage == "prepare_data":
        part = ids.get("part")
        if part == "train":
            return {"data": c["data"]}
        if part:
            return {"benchmark": c["benchmarks"][part[len("bench/"):]]}
        return {"data": c["data"], "benchmarks": c["benchmarks"]}
    if stage == "build_model":
        m = c["models"][ids["model"]]
        return {"path": m["path"], "build": m.get("build")}
    if stage == "ability":
        return {"ability": c["ability"], "prompts": prompts, "path": c["models"][ids["model"]]["path"],
                "data": c["data"]["train"]}
    if stage == "difficulty":
        members = c["groups"][ids["group"]]
        return {"difficulty": c["difficulty"], "prompts": prompts, "data": c["data"]["train"],
                "models": {n: c["models"][n]["path"] for n in members}}
    if stage == "train":
        run, group = ids["method"], ids["group"]
        spec = {"training": training_args(c, run), "prompts": prompts, "data": c["data"]["train"],
                "models": {n: c["models"][n]["path"] for n in trained_names(c, run, group)}}
        if "seed" in ids:
            spec["seed"] = int(ids["seed"])
        if is_group_run(c, run):
            spec["interaction"] = c["interaction"]
            spec["members"] = list(c["groups"][group])
        return spec
    if stage == "evaluate":
        benches = ids.get("benchmarks") or [ids["benchmark"]]
        spec = {"evaluation": c["evaluation"], "prompts": prompts,
                "benchmarks": {b: c["benchmarks"][b] for b in benches}}
        if ids.get("method") == BASE and "model" in ids:
            spec["path"] = c["models"][ids["model"]]["path"]
        if "seed" in ids:
            spec["seed"] = int(ids["seed"])
        return spec
    if stage == "multi_agent":
        return {"mode": c["multi_agent"].get("mode", "cooperation"), "evaluation": c["evaluation"], "prompts": prompts,
                "benchmark": c["benchmarks"][ids["benchmark"]],
                "models": {n: c["models"][n]["path"] for n in ids["models"]}}
    if stage == "tables":
        return {"tables": c["tables"], "seeds": c["seeds"], "evaluation": c["evaluation"], "groups": c["groups"],
                "models": {n: m["path"] for n, m in c["models"].items()}, "multi_agent": c.get("multi_agent"),
                "prompts": prompts,
                "methods": {m: {k: v for k, v in spec.items() if k in METHOD_KEYS} for m, spec in c["methods"].items()}}
    raise KeyError(f"unknown stage {stage!r}")


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
