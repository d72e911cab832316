"""The study config: loading, validation, and the helpers that the Snakefile and the stages share.

`load(path)` reads a YAML file (`load_yaml`: `7e-5` is a number, a key given twice is an error, YAML
errors name the line and column), validates it against workflow/schemas/config.schema.yaml (every
mapping closed; `methods:` entries by trainer), fills the schema's defaults (`fill_defaults`: PPO's keys
into each ppo entry), then runs the semantic checks of `check()`. The Snakefile does the same through
`load_merged` (the `--configfile` files, then `--config` overrides read by `parse_overrides`). Every error
is a `ConfigError` naming the file, the key path (`methods.ilr.trainer`) and what was expected.

Run names. A method of `methods:` whose `p` is a list (the cooperation-ratio sweep) expands into one
run per value: `ilr_ratio` with p [0.0, 0.2] -> `ilr_ratio_p0.0`, `ilr_ratio_p0.2`; every other method
is one run named after itself. `method_config(config, run)` inverts this (p becomes a scalar).

What each stage reads (`stage_spec`): the Snakefile passes sha256_json(stage_spec(...)) as each rule's
`params`, so Snakemake's params rerun trigger reruns exactly the jobs whose slice of the config
changed. Each stage module says which slice it reads (`config_slice`, next to the code that reads it;
STAGE_MODULES below maps the stages to their modules).

Upstream files (data, base models, gamma, D_q, checkpoints) are rule inputs: a change there reruns the
consumers through Snakemake's mtime trigger (one prepare_data job per data file, so changing one
benchmark's `n` rewrites that benchmark's file and reruns its evaluations, not the training).
"""

from __future__ import annotations

import copy
import functools
import os
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from ilr.report import registry as tables_registry

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

SINGLE_TRAINERS = ("grpo", "ppo", "aipo")
GROUP_TRAINERS = ("ilr",)
BASE = "base"
BASE_GROUP = "none"
# keys of a method entry that describe the method, not a training hyper-parameter
METHOD_KEYS = ("trainer", "interaction", "calibration", "groups", "p")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ConfigError(ValueError):
    """An invalid config: the message names the file, the key path and what was expected."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key = source, key
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


# --------------------------------------------------------------------------------------------------
# YAML: one loader for config files, `--config` values and the Snakefile. PyYAML's SafeLoader reads
# `7e-5` as a string (YAML 1.1 wants a dot) and lets a repeated key silently replace the first; here
# numbers in exponent form are numbers (YAML 1.2), a repeated key is an error, and every error names the
# file, the line and the column.

_FLOAT = re.compile(r"""^(?:
     [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_FLOAT_TAG = "tag:yaml.org,2002:float"


class YamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats (`7e-5`, `1e3`); use `load_yaml`, which also rejects repeated keys."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


def _where(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _check_duplicates(node, source: str, path: tuple = (), seen: set | None = None) -> None:
    """A key given twice in one mapping is an error (YAML would keep the last one silently)."""
    seen = set() if seen is None else seen
    if id(node) in seen:          # an alias: already checked where its anchor is
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in first:
                raise ConfigError(source, _key_path(path + (key,)),
                                  f"{_where(key_node.start_mark)}: key {key!r} given twice (first at "
                                  f"{_where(first[key])}); YAML would silently keep the last one")
            first[key] = key_node.start_mark
            _check_duplicates(value_node, source, path + (key,), seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, source, path + (i,), seen)


def parse_yaml(text: str, source: str, at: tuple = ()) -> Any:
    """Parse YAML text (the value of config key path `at`); errors are ConfigErrors naming `source`, the
    line and the column."""
    loader = YamlLoader(text)
    try:   # one parse: the node tree is checked for repeated keys, then constructed
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicates(node, source, at)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = " ".join(x for x in (e.context, e.problem) if x)
        raise ConfigError(source, "", f"{_where(mark)}: not valid YAML ({what})") from None
    except yaml.YAMLError as e:
        raise ConfigError(source, "", f"not valid YAML ({e})") from None
    finally:
        loader.dispose()


def load_yaml(path: str | os.PathLike) -> dict:
    """Read one config file: a mapping, parsed by `parse_yaml`. The error names the file (and line)."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(path, "", f"cannot read the config file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"not UTF-8 text (byte {e.start}: {e.reason})") from None
    data = parse_yaml(text, path)
    if data is None:
        raise ConfigError(path, "", "the file is empty (or only comments); expected a mapping of config sections")
    if not isinstance(data, dict):
        raise ConfigError(path, "", f"expected a mapping of config sections, got a {type(data).__name__}")
    return data


_OVERRIDE_KEY = re.compile(r"^[A-Za-z_][\w-]*$")


def parse_overrides(entries: Iterable[str]) -> dict:
    """Snakemake's `--config key=value ...`, with values read by this module's YAML loader (Snakemake's own
    parser reads nested values as strings: `training="{steps: 5}"` would give steps '5')."""
    out: dict = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not _OVERRIDE_KEY.match(key):
            raise ConfigError("--config", "", f"{entry!r}: expected key=value with a top-level key")
        try:
            yaml.compose(value, Loader=YamlLoader)
        except yaml.YAMLError:
            out[key] = value          # not YAML: a plain string, as Snakemake reads it
            continue
        out[key] = parse_yaml(value, f"--config {key}", (key,)) if value else None
    return out


def merge(base: dict, over: dict) -> dict:
    """`over` merged into `base` (in place), section by section, as Snakemake merges config files and
    `--config` overrides: mappings merge key by key, any other value replaces."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def load_merged(paths: Iterable[str | os.PathLike], overrides: dict | None = None) -> tuple[dict, str]:
    """The config of `snakemake --configfile A B --config k=v`: the files merged in order, then the
    overrides; validated. Returns (config, source), source naming the files for error messages."""
    paths = [str(p) for p in paths]
    source = ", ".join(paths) + (" (with --config overrides)" if overrides else "")
    config: dict = {}
    for p in paths:
        merge(config, load_yaml(p))
    merge(config, overrides or {})
    return validate(config, source=source), source


def dump_yaml(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)


# --------------------------------------------------------------------------------------------------
# loading and validation


def load(path: str | os.PathLike) -> dict:
    """Read, validate (schema + semantic checks) and return the config at `path`."""
    path = str(path)
    return validate(load_yaml(path), source=path)


def validate(config: Any, source: str = "<config>") -> dict:
    """Schema validation, the schema's defaults filled in (in place), the semantic checks. Returns `config`."""
    if not isinstance(config, dict):
        raise ConfigError(source, "", f"expected a mapping of sections, got {type(config).__name__}")
    schema_validate(config, source)
    fill_defaults(config)
    check(config, source)
    return config


def _key_path(parts: Iterable) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


@functools.lru_cache(maxsize=1)
def _schema_cached() -> dict:
    with open(SCHEMA, encoding="utf-8") as f:
        return yaml.load(f, Loader=YamlLoader)   # YAML merge keys (<<) share the `training:` keys


def _schema() -> dict:
    return copy.deepcopy(_schema_cached())


def _resolve(schema: dict, sub: dict) -> dict:
    """A subschema with its local `$ref` followed (one level is all the schema uses)."""
    ref = sub.get("$ref") if isinstance(sub, dict) else None
    if ref and ref.startswith("#/"):
        node = schema
        for part in ref[2:].split("/"):
            node = node[part]
        return {**node, **{k: v for k, v in sub.items() if k != "$ref"}}
    return sub


def training_keys() -> list[str]:
    """Every key of `training:` (which any method entry may override)."""
    return list(_schema_cached()["properties"]["training"]["properties"])


def method_schema(trainer: str) -> dict:
    """The closed schema of a `methods:` entry of this trainer (the `then` of its `if trainer: ...`)."""
    for case in _schema_cached()["properties"]["methods"]["additionalProperties"]["allOf"]:
        if case["if"]["properties"]["trainer"]["const"] == trainer:
            return case["then"]
    raise KeyError(f"no schema for trainer {trainer!r} in {SCHEMA}")


def trainer_keys(trainer: str) -> dict:
    """The keys only a method of this trainer takes (besides `trainer` and the `training:` keys), with
    their schemas: ILR's interaction, calibration, groups, p; PPO's vf_coef, gae_gamma, ..."""
    shared = set(training_keys()) | {"trainer"}
    return {k: v for k, v in method_schema(trainer)["properties"].items() if k not in shared}


def fill_defaults(config: dict) -> None:
    """Fill in the schema's `default`s: in every section, and in each method entry its trainer's own keys
    (e.g. PPO's vf_coef), so that the loaded config holds every value a stage reads. A method entry never
    gets a default of a `training:` key: that would override the study's `training:` value."""
    schema = _schema_cached()

    def walk(sub: dict, instance: Any) -> None:
        sub = _resolve(schema, sub)
        if not isinstance(instance, dict) or not isinstance(sub, dict):
            return
        for key, prop in sub.get("properties", {}).items():
            prop = _resolve(schema, prop)
            if key not in instance and "default" in prop:
                instance[key] = copy.deepcopy(prop["default"])
            if key in instance:           # a default section ({}) gets its own keys' defaults too
                walk(prop, instance[key])
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in instance.items():
                if key not in sub.get("properties", {}):
                    walk(extra, value)

    walk(schema, config)
    for m in config.get("methods", {}).values():
        for key, prop in trainer_keys(m["trainer"]).items():
            if key not in m and "default" in prop:
                m[key] = copy.deepcopy(prop["default"])


def _unknown_key_message(config: dict, err, schema: dict) -> tuple[str, str]:
    """(key path, message) for an `additionalProperties: false` error: the unknown key, a close match,
    and the keys allowed there."""
    import difflib

    allowed = list(err.schema.get("properties", {}))
    unknown = sorted(k for k in err.instance if k not in allowed)
    key = unknown[0] if unknown else "?"
    path = list(err.absolute_path) + [key]
    near = difflib.get_close_matches(str(key), allowed, n=1)
    msg = f"unknown key {key!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
    if len(path) == 3 and path[0] == "methods":
        trainer = err.instance.get("trainer")
        own = [k for k in allowed if k not in training_keys()]
        msg += (f"; a {trainer} method takes {', '.join(own)} and any key of `training:` "
                f"({', '.join(training_keys())})")
    elif len(path) == 1:
        msg += f"; known sections: {', '.join(allowed)} (new sections go in {SCHEMA.relative_to(REPO)})"
    else:
        msg += f"; allowed: {', '.join(allowed)}"
    return _key_path(path), msg


def schema_validate(config: dict, source: str) -> None:
    import jsonschema

    schema = _schema()
    cls = jsonschema.validators.validator_for(schema)
    errors = sorted(cls(schema).iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.path)))
    if not errors:
        return
    err = errors[0]
    # the most specific message: for oneOf/anyOf, the sub-error deepest in the instance
    while err.context:
        err = max(err.context, key=lambda e: len(e.absolute_path))
    key = _key_path(err.absolute_path)
    msg = err.message
    if err.validator == "additionalProperties" and err.validator_value is False:
        key, msg = _unknown_key_message(config, err, schema)
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
        if trainer == "aipo":
            if m["helper"] not in models:
                fail(f"{key}.helper", f"unknown model {m['helper']!r}: the helper must be a model of `models:` "
                     f"({', '.join(models)})")
            lo, hi = m["is_clip"]
            if lo > hi:
                fail(f"{key}.is_clip", f"expected [lower, upper] with lower <= upper, got {m['is_clip']}")
        if trainer == "ppo":
            a = training_args(config, name)
            if a["questions_per_step"] * a["num_generations"] % a["num_mini_batches"]:
                fail(f"{key}.num_mini_batches", f"{a['num_mini_batches']} does not divide the step's "
                     f"questions_per_step x num_generations = {a['questions_per_step'] * a['num_generations']} "
                     "sequences (nor, then, each process's share)")
        # (a grpo/ppo entry with an ILR key fails the schema: each trainer's entry is closed)
    runs = run_names(config)
    if len(set(runs)) != len(runs):
        fail("methods", f"two methods expand to the same run name: {sorted(runs)}")

    if config["difficulty"]["method"] == "empirical" and "samples" not in config["difficulty"]:
        fail("difficulty.samples", "required for method 'empirical'")

    # each table's checks (tables.<name>, multi_agent): its module in ilr/report/ (ilr/report/registry.py)
    tables_registry.check(config, fail)

    res = config.get("resources", {})
    sizes = {m["size"] for m in models.values()}
    for s in res.get("sizes", {}):
        if s not in sizes:
            fail(f"resources.sizes.{s}", f"no model has size {s!r} (sizes: {', '.join(sorted(sizes))})")
    tp = config["generation"]["tensor_parallel_size"]
    for s in (tp if isinstance(tp, dict) else {}):
        if s not in sizes:
            fail(f"generation.tensor_parallel_size.{s}", f"no model has size {s!r} (sizes: {', '.join(sorted(sizes))})")


def _check_data_spec(key: str, spec: dict, fail) -> None:
    """A data source the registry knows; `params` only for generated sources, checked as the generator does."""
    from ilr.benchmarks import REGISTRY

    source = spec["source"]
    if source not in REGISTRY:
        fail(f"{key}.source", f"unknown source {source!r} (known: {', '.join(REGISTRY)})")
    if "params" in spec:
        if not REGISTRY[source].generated:
            fail(f"{key}.params", f"only generated sources take params; {source!r} is read from the hub or `path`")
        from ilr.tiny.task import _params

        try:
            _params(spec["params"])
        except ValueError as e:
            fail(f"{key}.params", str(e))


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
# what the tables need (each table's rows: its module in ilr/report/, ilr/report/registry.py)


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


def eval_cells(config: dict) -> dict[tuple[str, str, str, int], list[str]]:
    """(method run, group, model, seed) -> the benchmarks the tables need of it (ordered, unique)."""
    cells: dict[tuple[str, str, str, int], list[str]] = {}
    for row in tables_registry.eval_rows(config):
        for seed in row_seeds(config, row["method"]):
            bl = cells.setdefault((row["method"], row["group"], row["model"], seed), [])
            bl.extend(b for b in row["benchmarks"] if b not in bl)
    return cells


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


STAGE_MODULES = {   # stage -> the module that reads the config for it, and says which part (config_slice)
    "prepare_data": "ilr.data_prep", "build_model": "ilr.tiny.build", "ability": "ilr.ability",
    "difficulty": "ilr.difficulty", "train": "ilr.train", "evaluate": "ilr.evaluate",
    "multi_agent": "ilr.multi_agent", "tables": "ilr.report.tables",
}


def stage_spec(config: dict, stage: str, **ids) -> dict:
    """The part of `config` that one job of `stage` (identified by `ids`) reads: each stage's `config_slice`,
    beside the code that reads the config."""
    import importlib

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


def main(args) -> int:
    load_merged(args.files)
    print(f"{', '.join(args.files)}: valid")
    return 0
