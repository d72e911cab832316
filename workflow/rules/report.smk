# Tables and figures; `all` is the whole study.


rule tables:
    input:
        code("tables"),
        evals=eval_targets(),
    output:
        table_targets(),
    params:
        spec=spec("tables"),
        cfg=EFFECTIVE,
    log:
        f"{LOGS}/tables.log",
    threads: job_threads("tables")
    resources:
        **job_resources("tables"),
    shell:
        "OMP_NUM_THREADS={threads} {ILR} tables --config {params.cfg} --eval-dir {R}/eval --out-dir {R}/tables"
        " --figures-dir {R}/figures > {log} 2>&1"
