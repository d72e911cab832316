# Multi-agent inference (the paper's analysis, METHOD.md): Single vs Debate vs Idea3 for each pair of
# config `multi_agent.pairs` on `multi_agent.benchmark`, base checkpoints, greedy decoding (the
# evaluation settings). Output: R/multi_agent/<a>+<b>/<benchmark>.json (per setting and model: accuracy,
# n, 95% CI, per-question records; provenance). This is NOT solo evaluation: in Debate and Idea3 each
# model reads its peers' answers at inference; table T4 (tables/multi_agent.*) says so in its caption.

MA_PAIRS = {ilrcfg.pair_name(p): list(p) for p, _b in ilrcfg.multi_agent_jobs(config)}


def multi_agent_targets():
    return [multi_agent_file(ilrcfg.pair_name(p), b) for p, b in ilrcfg.multi_agent_jobs(config)]


def _ma_sizes(wc):
    return sizes(*MA_PAIRS[wc.pair])


rule multi_agent:
    input:
        code("multi_agent"),
        models=lambda wc: [p for m in MA_PAIRS[wc.pair] for p in model_input(m)],
        data=lambda wc: bench_file(wc.bench),
    output:
        multi_agent_file("{pair}", "{bench}"),
    wildcard_constraints:
        pair=alt(MA_PAIRS),
        bench=alt(config["benchmarks"]),
    params:
        spec=lambda wc: spec("multi_agent", models=MA_PAIRS[wc.pair], benchmark=wc.bench),
        models=lambda wc: " ".join(MA_PAIRS[wc.pair]),
    log:
        f"{LOGS}/multi_agent/{{pair}}/{{bench}}.log",
    threads: job_threads("multi_agent", _ma_sizes)
    resources:
        **job_resources("multi_agent", _ma_sizes),
    shell:
        "OMP_NUM_THREADS={threads} {ILR} multi-agent --config {CFG} --models {params.models}"
        " --benchmark {wildcards.bench} --data-dir {DATA} --out {output} > {log} 2>&1"
