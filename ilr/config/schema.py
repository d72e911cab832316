"""The config's JSON schema (workflow/schemas/config.schema.yaml): validation with messages that name the
key, the schema's defaults filled into the loaded config, and what the schema says about `training:` and
each trainer's `methods:` entries (one closed `if trainer: ...` branch per trainer)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

from ilr.config.loading import ConfigError, YamlLoader, key_path

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


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
    return key_path(path), msg


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
    key = key_path(err.absolute_path)
    msg = err.message
    if err.validator == "additionalProperties" and err.validator_value is False:
        key, msg = _unknown_key_message(config, err, schema)
    elif err.validator == "propertyNames":
        msg = f"invalid name {err.instance!r} ({err.message})"
    raise ConfigError(source, key or "(top level)", f"{msg}; see {SCHEMA.relative_to(REPO)}")




def trainer_names() -> list[str]:
    """The trainers the schema's `methods:` entries accept (its `trainer` enum)."""
    return list(_schema_cached()["properties"]["methods"]["additionalProperties"]["properties"]["trainer"]["enum"])
