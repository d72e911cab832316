"""`python -m ilr reference check|save`: the tiny study's tables and model hashes against tests/reference/.

The tiny default is bit-identical on any x86-64 machine (config `numerics`, ilr/numerics.py), so a
`make demo` anywhere must reproduce the committed reference byte for byte:
  tests/reference/tables/{main,ablation,coop_ratio,multi_agent}.csv   what `make demo` writes to results/tables/
  tests/reference/models.sha256                                          sha256 of each built tiny model's weights
`check` names what differs: a model whose weights differ (everything downstream then differs too), and
per table the cells that differ (row, column, reference, this run). `save` writes the reference from a run:
do it, and update the README's figures, in the commit that moves the numbers on purpose.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
from pathlib import Path

from ilr.io import sha256_file

TABLES = ("main", "ablation", "coop_ratio", "multi_agent")   # paper_vs_reproduced matches nothing at tiny scale
DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "reference"


def model_hashes(models_dir: Path) -> dict[str, str]:
    return {d.name: sha256_file(d / "model.safetensors") for d in sorted(models_dir.iterdir())
            if (d / "model.safetensors").is_file()}


def read_hashes(path: Path) -> dict[str, str]:
    return {name: digest for digest, name in (line.split() for line in path.read_text().splitlines() if line)}


def table_differences(reference: str, run: str, limit: int = 12) -> list[str]:
    """The cells of two CSV texts that differ, as 'row | column: reference -> run' lines."""
    a, b = list(csv.reader(io.StringIO(reference))), list(csv.reader(io.StringIO(run)))
    if not a or not b or a[0] != b[0]:
        return [f"columns: {a[0] if a else []} -> {b[0] if b else []}"]
    if len(a) != len(b):
        return [f"rows: {len(a) - 1} -> {len(b) - 1}"]
    header, out = a[0], []
    for ra, rb in zip(a[1:], b[1:]):
        for col, x, y in zip(header, ra, rb):
            if x != y:
                out.append(f"{' / '.join(ra[:2])} | {col}: {x} -> {y}")
    return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


def check(tables_dir: Path, models_dir: Path, reference: Path) -> list[str]:
    problems = []
    want, got = read_hashes(reference / "models.sha256"), model_hashes(models_dir)
    for name, digest in want.items():
        if got.get(name) != digest:
            problems.append(f"model {name}: weights {got.get(name, 'missing')[:16]} != reference {digest[:16]} "
                            "(everything trained or evaluated from it differs too)")
    for t in TABLES:
        ref, run = reference / "tables" / f"{t}.csv", tables_dir / f"{t}.csv"
        if not run.is_file():
            problems.append(f"{run}: missing")
        elif run.read_bytes() != ref.read_bytes():
            problems += [f"{t}.csv: {d}" for d in table_differences(ref.read_text(), run.read_text())] or \
                        [f"{t}.csv: the bytes differ (same cells: formatting or line endings)"]
    return problems


def save(tables_dir: Path, models_dir: Path, reference: Path) -> None:
    (reference / "tables").mkdir(parents=True, exist_ok=True)
    for t in TABLES:
        shutil.copyfile(tables_dir / f"{t}.csv", reference / "tables" / f"{t}.csv")
    (reference / "models.sha256").write_text("".join(f"{d}  {n}\n" for n, d in model_hashes(models_dir).items()))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["check", "save"])
    p.add_argument("--tables", default="results/tables", help="the run's tables (make demo: results/tables)")
    p.add_argument("--models", default="results/models", help="the run's built tiny models")
    p.add_argument("--reference", default=str(DEFAULT_REFERENCE))


def main(args: argparse.Namespace) -> int:
    tables, models, reference = Path(args.tables), Path(args.models), Path(args.reference)
    if args.action == "save":
        save(tables, models, reference)
        print(f"reference written to {reference}")
        return 0
    problems = check(tables, models, reference)
    for line in problems:
        print(line)
    print("identical to the reference" if not problems else f"{len(problems)} difference(s) from {reference}")
    return 1 if problems else 0
