"""ilr: a reproducibility pipeline for "Interactive Learning for LLM Reasoning".

The method is specified in METHOD.md (shared with the project); each stage of the study is a
module here and a subcommand of `python -m ilr`, which the Snakemake rules call.
"""

__version__ = "0.1.0"
