# The whole ILR study as one Snakemake DAG (README.md). `snakemake --cores 2 all` runs the tiny default;
# `snakemake --profile slurm all` the paper's study on a Slurm cluster (the profile names config/paper.yaml).
#
# Layout: workflow/rules/common.smk (validation, paths, helpers), data.smk (prepare_data, build_model),
# ability.smk (ability, difficulty), train.smk (train_single, train_group_<group>), eval.smk (evaluate or
# evaluate_model*), multi_agent.smk (multi-agent inference), report.smk (tables, HTML report). Every job
# runs `python -m ilr <stage>` (ilr/__main__.py lists the stages).

# The config: config/config.yaml (the tiny default), or the `--configfile` files instead of it, read and
# validated by workflow/rules/common.smk (no `configfile:` directive: Snakemake's YAML loader would read
# `7e-5` as a string and let a repeated key pass).
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/ability.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/multi_agent.smk"
include: "workflow/rules/report.smk"


localrules: all


rule all:
    default_target: True
    input:
        table_targets(),
        [difficulty_figure(g) for g in DIFFICULTY_GROUPS],
