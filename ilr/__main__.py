"""`python -m ilr <stage> ...`: the one command-line entry that every Snakemake rule calls.

Each stage lives in its own module, which defines `add_arguments(parser)` and `main(args)`; modules
are imported only when their stage runs, so `ilr grade` does not pay for torch and `ilr tables`
does not pay for transformers.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ilr import numerics
from ilr.config import ConfigError
from ilr.io import DataError

USER_ERROR = 2   # exit status of a user error (argparse's too); 1 and tracebacks are left to bugs

STAGES = {
    "prepare-data": ("ilr.data_prep", "write the training, validation and benchmark records"),
    "build-model": ("ilr.tiny.build", "build a tiny base model (tokenizer, random init, warm-up)"),
    "ability": ("ilr.ability", "gamma: a model's accuracy on the validation set"),
    "difficulty": ("ilr.difficulty", "D_q for every training question of a group"),
    "train": ("ilr.train", "train one method on one group (or one model) and seed"),
    "evaluate": ("ilr.evaluate", "solo evaluation of one model on benchmarks"),
    "multi-agent": ("ilr.multi_agent", "Single vs Debate vs Idea3 inference for a group of models"),
    "tables": ("ilr.report.tables", "tables and figures from the evaluation outputs"),
    "grade": ("ilr.grade", "grade model outputs: IN.jsonl -> OUT.jsonl"),
    "plan": ("ilr.plan", "every GPU job's memory need per GPU against the GPUs it asks for"),
    "reference": ("ilr.report.reference", "the tiny study's tables and model hashes against tests/reference"),
    "check-config": ("ilr.study", "validate config files (YAML, schema, semantic checks) as a run would"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    numerics.pin_from_argv(argv)   # before any stage imports torch (ilr/numerics.py)
    parser = argparse.ArgumentParser(prog="ilr", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    chosen = argv[0] if argv and argv[0] in STAGES else None
    for name, (module, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:  # only the chosen stage's module is imported
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    try:
        return importlib.import_module(STAGES[args.stage][0]).main(args) or 0
    except (ConfigError, DataError) as e:
        # a user error (a bad config or input file): one line naming the file and key, no traceback
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
