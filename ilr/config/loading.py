"""Reading config YAML: one loader for config files, `--config` values and the Snakefile, and the error
every config problem raises.

PyYAML's SafeLoader reads `7e-5` as a string (YAML 1.1 wants a dot) and lets a repeated key silently
replace the first; here numbers in exponent form are numbers (YAML 1.2), a repeated key is an error, and
every error is a `ConfigError` naming the file, the key path (`methods.ilr.trainer`), the line and the
column. `merge` merges files and overrides as Snakemake does.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any, Iterable

import yaml


class ConfigError(ValueError):
    """An invalid config: the message names the file, the key path and what was expected."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key = source, key
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


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
                raise ConfigError(source, key_path(path + (key,)),
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


def dump_yaml(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)


def key_path(parts: Iterable) -> str:
    """`("methods", "ilr", "groups", 0)` -> `methods.ilr.groups[0]`."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out

