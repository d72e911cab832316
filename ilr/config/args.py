"""A run's training arguments as one typed, frozen object: `training_args(config, run)` (ilr/config/runs.py)
returns a `TrainingArgs`, the `training:` section with the run's method entry over it, and that object is
what a trainer reads (`args.beta`, `args.num_generations`).

Why an object and not the merged dict: the keys are declared once, in workflow/schemas/config.schema.yaml,
and a misspelt key should fail where it is read, naming the key and what exists, rather than as a bare
KeyError. Each trainer's class is made once from the schema (`args_class`): a field per `training:` key,
`trainer`, and a field per key of that trainer's method entries (PPO's vf_coef, AIPO's helper, ILR's
interaction ...; not `groups`, which names jobs, not a setting), typed from the schema, its default the
schema's `default`, the schema's property (and its `description`, where it has one) as the field's
metadata. No default is written here: the defaults stay the schema's alone.

A key the schema gives no default (save_steps, train_stages, calibration_eps, ILR's p) and the config leaves
out is unset: reading it raises an AttributeError naming the key; `as_dict()` leaves it out. `as_dict()` is
exactly the dict the old merge made (lists as lists), so that the training job's config slice (ilr/train
`config_slice`, Snakemake's rerun trigger) hashes as before. Lists are stored as tuples: the object is frozen
all the way down.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
from typing import Any, Optional

from ilr.config.schema import _resolve, _schema_cached, trainer_keys, training_keys

NOT_ARGS = ("groups", "name", "base_method")   # method_config keys that are no training argument
_UNSET = object()                             # the default of a field the schema gives none
_TYPES = {"integer": int, "number": float, "boolean": bool, "string": str, "array": list, "null": type(None)}


class TrainingArgs:
    """The base of every trainer's args class (`args_class(trainer)`): attribute access, `as_dict()`,
    `replace(**changes)`, and errors that name the key."""

    trainer: str

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = object.__getattribute__(self, f.name)
            if value is _UNSET:
                object.__delattr__(self, f.name)      # unset: reading it reaches __getattr__ below
            else:
                object.__setattr__(self, f.name, _frozen(value))

    def __getattr__(self, name: str) -> Any:         # only called when the attribute is missing
        if name.startswith("__"):
            raise AttributeError(name)
        keys = [f.name for f in dataclasses.fields(self)]
        trainer = self.__dict__.get("trainer", "?")
        if name in keys:
            raise AttributeError(f"training argument {name!r} is not set: neither `training:` nor the {trainer} "
                                 f"method entry gives it, and the schema declares no default")
        near = difflib.get_close_matches(name, keys, n=1)
        raise AttributeError(f"{name!r} is no training argument of a {trainer} method"
                             + (f" (did you mean {near[0]!r}?)" if near else "")
                             + f"; its arguments: {', '.join(keys)}")

    def is_set(self, name: str) -> bool:
        return name in self.__dict__

    def as_dict(self) -> dict:
        """The set arguments as a plain dict (tuples back to lists): the merge of `training:` and the method."""
        return {f.name: _thawed(self.__dict__[f.name]) for f in dataclasses.fields(self) if self.is_set(f.name)}

    def replace(self, **changes) -> "TrainingArgs":
        return type(self)(**{**self.as_dict(), **changes})

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.as_dict() == other.as_dict()   # type: ignore[union-attr]

    __hash__ = None   # type: ignore[assignment]  # equal by value, like the dict it replaces

    def __reduce__(self):   # the classes are made at run time: pickle by trainer and values
        return _rebuild, (self.trainer, self.as_dict())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items())})"


def _rebuild(trainer: str, values: dict) -> TrainingArgs:
    return args_class(trainer)(**values)


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else copy.deepcopy(value)


def _thawed(value: Any) -> Any:
    return [_thawed(v) for v in value] if isinstance(value, tuple) else copy.deepcopy(value)


def _python_type(prop: dict) -> Any:
    """The annotation of a schema property: int, float, bool, str, tuple, an enum's type; Optional where null
    is allowed; Any where the schema allows several."""
    schema = _schema_cached()
    prop = _resolve(schema, prop)
    if "enum" in prop:
        kinds = {type(v) for v in prop["enum"]}
        return (tuple if kinds == {list} else kinds.pop()) if len(kinds) == 1 else Any
    if "const" in prop:
        return type(prop["const"])
    options = prop.get("oneOf") or prop.get("anyOf")
    if options:
        types = [_python_type(o) for o in options]
        rest = [t for t in types if t is not type(None)]
        if len(rest) == 1:
            return Optional[rest[0]] if len(rest) < len(types) else rest[0]
        return Any
    t = _TYPES.get(prop.get("type"), Any)
    return tuple if t is list else t


def _field(name: str, prop: dict) -> tuple[str, Any, dataclasses.Field]:
    prop = _resolve(_schema_cached(), prop)
    meta = {"schema": prop, "description": prop.get("description", "")}
    default = prop.get("default", _UNSET)
    if isinstance(default, (list, dict)):
        f = dataclasses.field(default_factory=functools.partial(copy.deepcopy, default), metadata=meta)
    else:
        f = dataclasses.field(default=default, metadata=meta)
    return name, _python_type(prop), f


@functools.lru_cache(maxsize=None)
def args_class(trainer: str) -> type[TrainingArgs]:
    """The frozen dataclass of one trainer's arguments, made from the schema once (KeyError for a trainer the
    schema does not know)."""
    training = _schema_cached()["properties"]["training"]["properties"]
    props = {k: training[k] for k in training_keys()}
    props["trainer"] = {"const": trainer, "default": trainer}
    props.update({k: v for k, v in trainer_keys(trainer).items() if k not in NOT_ARGS})
    cls = dataclasses.make_dataclass(f"{trainer.capitalize()}Args", [_field(k, p) for k, p in props.items()],
                                     bases=(TrainingArgs,), frozen=True, repr=False, eq=False)
    cls.__doc__ = f"The training arguments of a {trainer} method (ilr/config/args.py; the schema's keys)."
    for name in props:                 # no class-level defaults: an unset field must reach __getattr__
        if hasattr(cls, name):
            delattr(cls, name)
    return cls


def merged_args(training: dict, method: dict) -> TrainingArgs:
    """`training:` with a method entry (a method_config dict) over it, as its trainer's args."""
    values = copy.deepcopy(training)
    values.update({k: copy.deepcopy(v) for k, v in method.items() if k not in NOT_ARGS})
    return args_class(method["trainer"])(**values)
