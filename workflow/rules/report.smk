# Tables and figures; `all` is the whole study. Every table is written as .md, .csv and .tex (booktabs);
# the .csv tables and the figures are flagged for the HTML report:
#   snakemake --report results/report.html      (captions: workflow/report/*.rst)


def _reported(path):
    """A `tables` output flagged for `snakemake --report`, with its caption file workflow/report/<name>.rst."""
    name = os.path.basename(path)
    stem, ext = os.path.splitext(name)
    if ext == ".csv":
        return report(path, caption=f"../report/{stem}.rst", category="Tables", labels={"table": stem})
    if ext == ".png":
        return report(path, caption=f"../report/{stem}.rst", category="Figures", labels={"figure": stem})
    return path


rule tables:
    input:
        code("tables"),
        evals=eval_targets(),
        multi_agent=multi_agent_targets(),
    output:
        [_reported(p) for p in table_targets()],
    params:
        spec=spec("tables"),
    log:
        f"{LOGS}/tables.log",
    threads: job_threads("tables")
    resources:
        **job_resources("tables"),
    shell:
        "OMP_NUM_THREADS={threads} {ILR} tables --config {CFG} --eval-dir {R}/eval --out-dir {R}/tables"
        " --figures-dir {R}/figures --multi-agent-dir {R}/multi_agent > {log} 2>&1"
