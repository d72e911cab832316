# Data preparation (one job for the training/validation records, one per benchmark) and the tiny base models.
# One job per file, so a change to one benchmark's config rewrites that file alone; downstream jobs
# then rerun through plain mtimes (no `ancient()` inputs: Snakemake would mask the jobs below a job that
# must rerun, and miss their own params changes behind such an edge).


def _local_data_files():
    specs = [config["data"]["train"]] + list(config["benchmarks"].values())
    return sorted({s["path"] for s in specs if "path" in s and os.path.exists(s["path"])})


rule prepare_train:
    input:
        code("prepare_data"),
        _local_data_files(),
    output:
        TRAIN,
        VAL,
    params:
        spec=spec("prepare_data", part="train"),
    log:
        f"{LOGS}/prepare_data/train.log",
    threads: job_threads("prepare_data")
    resources:
        **job_resources("prepare_data"),
    shell:
        "OMP_NUM_THREADS={threads} {ILR} prepare-data --config {CFG} --out-dir {DATA} --parts train > {log} 2>&1"


rule prepare_benchmark:
    input:
        code("prepare_data"),
        _local_data_files(),
    output:
        bench_file("{bench}"),
    wildcard_constraints:
        bench=alt(config["benchmarks"]),
    params:
        spec=lambda wc: spec("prepare_data", part=f"bench/{wc.bench}"),
    log:
        f"{LOGS}/prepare_data/{{bench}}.log",
    threads: job_threads("prepare_data")
    resources:
        **job_resources("prepare_data"),
    shell:
        "OMP_NUM_THREADS={threads} {ILR} prepare-data --config {CFG} --out-dir {DATA} --parts bench/{wildcards.bench} > {log} 2>&1"


# Models with a `build:` entry (the tiny default) are built into models.<name>.path; hub ids have no rule.
rule build_model:
    input:
        code("build_model"),
    output:
        directory("{path}"),
    wildcard_constraints:
        path=alt(BUILT_BY_PATH),
    params:
        model=lambda wc: BUILT_BY_PATH[wc.path],
        spec=lambda wc: spec("build_model", model=BUILT_BY_PATH[wc.path]),
    log:
        f"{LOGS}/build_model/{{path}}.log",
    threads: job_threads("build_model", lambda wc: sizes(BUILT_BY_PATH[wc.path]))
    resources:
        **job_resources("build_model", lambda wc: sizes(BUILT_BY_PATH[wc.path])),
    shell:
        "OMP_NUM_THREADS={threads} {ILR} build-model --config {CFG} --model {params.model} --out {output} > {log} 2>&1"
