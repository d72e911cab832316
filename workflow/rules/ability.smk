# gamma_i per model (accuracy on the validation set) and D_q per group (METHOD.md sections 1-2).


rule ability:
    input:
        code("ability"),
        model=lambda wc: model_input(wc.model),
        val=VAL,
    output:
        ability_file("{model}"),
    wildcard_constraints:
        model=alt(MODELS),
    params:
        spec=lambda wc: spec("ability", model=wc.model),
    log:
        f"{LOGS}/ability/{{model}}.log",
    threads: job_threads("ability", lambda wc: sizes(wc.model))
    resources:
        **job_resources("ability", lambda wc: sizes(wc.model)),
    shell:
        "OMP_NUM_THREADS={threads} {ILR} ability --config {CFG} --model {wildcards.model} --val {input.val} --out {output} > {log} 2>&1"


rule difficulty:
    input:
        code("difficulty"),
        models=lambda wc: [p for m in config["groups"][wc.group] for p in model_input(m)],
        train=TRAIN,
    output:
        table=difficulty_file("{group}"),
        figure=report(difficulty_figure("{group}"), caption="../report/difficulty.rst", category="Figures",
                      labels={"figure": "difficulty", "group": "{group}"}),
    wildcard_constraints:
        group=alt(config["groups"]),
    params:
        spec=lambda wc: spec("difficulty", group=wc.group),
    log:
        f"{LOGS}/difficulty/{{group}}.log",
    threads: job_threads("difficulty", lambda wc: sizes(*config["groups"][wc.group]))
    resources:
        **job_resources("difficulty", lambda wc: sizes(*config["groups"][wc.group])),
    shell:
        "OMP_NUM_THREADS={threads} {ILR} difficulty --config {CFG} --group {wildcards.group} --train {input.train}"
        " --out {output.table} --figure {output.figure} > {log} 2>&1"
