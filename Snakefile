# The whole ILR study as one Snakemake DAG (README.md). `snakemake --cores 2 all` runs the tiny default;
# `snakemake --profile slurm --configfile config/paper.yaml all` the paper's study on a Slurm cluster.
#
# Layout: workflow/rules/common.smk (validation, paths, helpers), data.smk (prepare_data, build_model),
# ability.smk (ability, difficulty), train.smk (train_single, train_group_<group>), eval.smk (evaluate or
# evaluate_model*), multi_agent.smk (multi-agent inference), report.smk (tables, HTML report). Every job
# runs `python -m ilr <stage>` (ilr/__main__.py lists the stages).

# the tiny default, unless `--configfile` names another study (which then replaces it: common.smk)
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


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
