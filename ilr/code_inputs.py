"""Each stage's code inputs, derived from what its modules import: a change to any module a stage runs
reruns that stage's jobs (the Snakemake rules list these files as inputs: workflow/rules/common.smk `code`).

A stage runs `python -m ilr <stage>`: ilr/__main__.py, then the stage's module (ilr.study.STAGE_MODULES),
and the modules that one reaches by name rather than by an import statement: the trainers
(ilr/trainers.py) for `train`, the tables (ilr/report/registry.py) for `tables`. From these, every
`import ilr...` / `from ilr... import ...` statement, at the top of a module or inside a function, is
followed (read with `ast`, nothing is imported), together with the `__init__.py` of every package on the
way, and every file next to a module that the module names in a string (`Path(__file__).with_name(
"paper_numbers.yaml")`, the sandbox's `_sandbox_wrapper.py`). Modules outside `ilr` (torch, TRL) are the
environment's (ilr/provenance.py records their versions), not code inputs. The prompt files are the
Snakefile's to add (they depend on config `prompts`).
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "ilr"
_FILE_NAME = re.compile(r"^[\w-]+(\.[\w-]+)*\.(py|yaml|yml|json|txt)$")   # a string that may name a file


def module_file(name: str, root: Path = REPO) -> Path | None:
    """The file of module `name` (`ilr.train.grpo` -> ilr/train/grpo.py, a package -> its __init__.py)."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def imported(path: Path, root: Path = REPO) -> tuple[set[str], set[Path]]:
    """(the `ilr` modules the file at `path` imports, anywhere in it; the files next to it that it names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    mods: set[str] = set()
    files: set[Path] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names if _ours(a.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:             # relative: `from . import x`, `from .a import b`
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not _ours(target):
                continue
            mods.add(target)
            for a in node.names:       # `from ilr import config`: the submodule, where it is one
                if module_file(f"{target}.{a.name}", root) is not None:
                    mods.add(f"{target}.{a.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _FILE_NAME.match(node.value):
            sibling = path.parent / node.value
            if sibling.is_file() and sibling != path:
                files.add(sibling)
    return mods, files


def closure(modules: list[str], root: Path = REPO) -> list[str]:
    """Every file (repo-relative, sorted) that running `modules` may execute or read: the modules, what they
    import transitively, their packages' __init__.py, the files they name next to themselves."""
    seen: set[Path] = set()
    todo: list[str] = []

    def add_module(name: str) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):      # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            f = module_file(".".join(parts[:i]), root)
            if f is not None and f not in seen:
                seen.add(f)
                todo.append(f)

    for m in modules:
        if module_file(m, root) is None:
            raise ModuleNotFoundError(f"{m}: no such module under {root}")
        add_module(m)
    while todo:
        path = todo.pop()
        mods, files = imported(path, root)
        for m in sorted(mods):
            add_module(m)
        for f in sorted(files):
            if f not in seen:
                seen.add(f)
                if f.suffix == ".py":
                    todo.append(f)
    return sorted(str(p.relative_to(root)) for p in seen)


def stage_modules(stage: str) -> list[str]:
    """The modules a job of `stage` starts from: `python -m ilr`, the stage's module, and the modules that
    one reaches through a registry (importlib) rather than an import statement."""
    from ilr.study import STAGE_MODULES

    if stage not in STAGE_MODULES:
        raise KeyError(f"unknown stage {stage!r} (stages: {', '.join(STAGE_MODULES)})")
    mods = [f"{PACKAGE}.__main__", STAGE_MODULES[stage]]
    if stage == "train":
        from ilr.trainers import TRAINERS

        mods += [t.module for t in TRAINERS.values()]
    if stage == "tables":
        from ilr.report.registry import TABLES

        mods += list(TABLES.values())
    return mods


@functools.lru_cache(maxsize=None)
def stage_code(stage: str) -> tuple[str, ...]:
    """The code inputs of `stage`: repo-relative paths of every file its jobs run or read from ilr/."""
    return tuple(closure(stage_modules(stage)))
