# Solo evaluation (each model answers alone). Outputs: R/eval/<method>/<group>/<model>/seed<S>/<bench>.json.
# Base models: method `base`, group `none`; grpo/ppo: group = the model's name.
#
# config `evaluation.granularity`:
#   cell   one job per (method, group, model, seed, benchmark): rule `evaluate`; most parallel, each job
#          loads the model once per benchmark (the paper study on a cluster).
#   model  one job per trained (method, group, model, seed) writing all its benchmark files: rules
#          `evaluate_model[_k]`, one per distinct set of benchmarks the tables need of a model (the
#          wildcard `run` = method/group/model is constrained to the runs of that set). Loading torch and
#          a model once instead of once per benchmark (~7 s per process here): the tiny default.
# Asking for one file (`snakemake R/eval/.../arith.json`) runs the job that makes it.

GRANULARITY = config["evaluation"]["granularity"]


def split_run(run):
    method, group, model = run.split("/")
    return method, group, model


def eval_model_path(run, seed):
    method, group, model = split_run(run)
    if method == ilrcfg.BASE:
        return MODELS[model]["path"]
    return final_dir(method, group, seed, model)


def eval_model_input(wc):
    method, group, model = split_run(wc.run)
    if method == ilrcfg.BASE:
        return model_input(model)
    return [final_dir(method, group, wc.seed, model)]


def eval_spec(wc, benchmarks):
    method, group, model = split_run(wc.run)
    return spec("evaluate", benchmarks=list(benchmarks), method=method, model=model, seed=wc.seed)


def _eval_shell(benchmarks):
    return (
        "OMP_NUM_THREADS={threads} {ILR} evaluate --config {CFG} --model-path {params.model_path} --benchmarks " + benchmarks +
        " --data-dir {DATA} --out-dir {params.out_dir} --method {params.method} --group {params.group}"
        " --model {params.model} --seed {wildcards.seed} > {log} 2>&1"
    )


_RUN_BENCHES = {}
for (_m, _g, _model, _seed), _bl in CELLS.items():
    _RUN_BENCHES.setdefault(f"{_m}/{_g}/{_model}", list(_bl))

_eval_params = dict(
    method=lambda wc: split_run(wc.run)[0],
    group=lambda wc: split_run(wc.run)[1],
    model=lambda wc: split_run(wc.run)[2],
    model_path=lambda wc: eval_model_path(wc.run, wc.seed),
    out_dir=lambda wc: LAYOUT.eval_run_dir(wc.run, wc.seed),
)


def _eval_sizes(wc):
    return sizes(split_run(wc.run)[2])


if GRANULARITY == "cell":

    rule evaluate:
        input:
            code("evaluate"),
            model=eval_model_input,
            data=lambda wc: bench_file(wc.bench),
        output:
            LAYOUT.eval_run_dir("{run}", "{seed}") + "/{bench}.json",
        wildcard_constraints:
            run=alt(_RUN_BENCHES),
            seed=r"\d+",
            bench=alt(config["benchmarks"]),
        params:
            spec=lambda wc: eval_spec(wc, [wc.bench]),
            **_eval_params,
        log:
            f"{LOGS}/eval/{{run}}/seed{{seed}}/{{bench}}.log",
        threads: job_threads("evaluate", _eval_sizes)
        resources:
            **job_resources("evaluate", _eval_sizes),
        shell:
            _eval_shell("{wildcards.bench}")

else:
    _SETS = {}
    for _run, _bl in _RUN_BENCHES.items():
        _SETS.setdefault(tuple(_bl), []).append(_run)

    for _k, (_bl, _runs) in enumerate(sorted(_SETS.items(), key=lambda kv: (-len(kv[0]), kv[0]))):

        rule:
            name:
                "evaluate_model" if len(_SETS) == 1 else f"evaluate_model_{_k + 1}"
            input:
                code("evaluate"),
                model=eval_model_input,
                data=[bench_file(b) for b in _bl],
            output:
                [LAYOUT.eval_run_dir("{run}", "{seed}") + f"/{b}.json" for b in _bl],
            wildcard_constraints:
                run=alt(_runs),
                seed=r"\d+",
            params:
                spec=lambda wc, bl=_bl: eval_spec(wc, bl),
                # a value, not the loop variable: Snakemake runs `shell:` later, when `_bl` has moved on
                benchmarks=" ".join(_bl),
                **_eval_params,
            log:
                f"{LOGS}/eval/{{run}}/seed{{seed}}.log",
            threads: job_threads("evaluate", _eval_sizes)
            resources:
                **job_resources("evaluate", _eval_sizes),
            shell:
                _eval_shell("{params.benchmarks}")
