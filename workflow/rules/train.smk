# Training. grpo/ppo: one job per (method, model, seed). ILR family: one job per (run, group, seed) that
# trains every model of the group together and leaves each one's final checkpoint; one rule per group
# (train_group_<group>) because the set of outputs depends on the group's members.


# A run directory keeps its checkpoints across a failed or preempted attempt (Slurm requeues resume from
# them), but a run whose config slice or inputs changed (data, gamma, D_q, base model, code: what made
# Snakemake rerun it) must not resume from the old run's checkpoints: the run directory remembers the
# slice's hash and a fingerprint of the inputs (path, size, mtime of every file) in `.spec`, and is
# emptied when they differ.
_FRESH_IF_CHANGED = (
    'd={params.out_dir}; '
    's="{params.spec}:$(find {input} -type f -printf "%p %s %T@\\n" | LC_ALL=C sort | sha256sum | cut -c1-16)"; '
    'if [ -f "$d/.spec" ] && [ "$(cat "$d/.spec")" != "$s" ]; then rm -rf "$d"; fi; '
    'mkdir -p "$d" && echo "$s" > "$d/.spec"; '
)


# The launcher, by the job's GPU count (config `resources:`): more than one GPU -> `accelerate launch` with
# config/accelerate/<training.accelerate_config>.yaml (default multi_gpu) and one process per GPU; else python.
# `exec`: the trainer replaces the shell and gets Slurm's SIGTERM itself (ilr/train/preempt.py).
_ACCELERATE = _rel(os.path.join(REPO, "config", "accelerate",
                                config["training"].get("accelerate_config", "multi_gpu") + ".yaml"))
_LAUNCH = (
    '$(if [ "{resources.gpu}" -gt 1 ]; then echo ' + PY + " -m accelerate.commands.launch --config_file "
    + shlex.quote(_ACCELERATE) + ' --num_processes {resources.gpu}; else echo ' + PY + '; fi)'
)


def _train_shell(extra=""):
    return _FRESH_IF_CHANGED + (
        "OMP_NUM_THREADS={threads} exec " + _LAUNCH + " -m ilr train --config {params.cfg} --method {wildcards.method} --group {params.group}"
        " --seed {wildcards.seed} --train {input.train}" + extra +
        " --out-dir {params.out_dir} > {log} 2>&1"
    )


rule train_single:
    input:
        code("train"),
        model=lambda wc: model_input(wc.model),
        train=TRAIN,
    output:
        directory(final_dir("{method}", "{model}", "{seed}", "{model}")),
    wildcard_constraints:
        method=alt(SINGLE_RUNS),
        model=alt(MODELS),
        seed=r"\d+",
    params:
        group=lambda wc: wc.model,
        out_dir=lambda wc: run_dir(wc.method, wc.model, wc.seed),
        spec=lambda wc: spec("train", method=wc.method, group=wc.model, seed=wc.seed),
        cfg=EFFECTIVE,
    log:
        f"{LOGS}/train/{{method}}/{{model}}/seed{{seed}}.log",
    threads: job_threads("train_single", lambda wc: sizes(wc.model))
    resources:
        **job_resources("train_single", lambda wc: sizes(wc.model)),
    shell:
        _train_shell()


def _group_runs(group):
    return sorted({m for m, g, s in TRAIN_JOBS if g == group and ilrcfg.is_group_run(config, m)})


def _difficulty_input(group):
    return lambda wc: [difficulty_file(group)] if needs_difficulty(wc.method) else []


for _group, _members in config["groups"].items():
    if not _group_runs(_group):
        continue

    rule:
        name:
            "train_group_" + re.sub(r"\W", "_", _group)
        input:
            code("train"),
            models=[p for m in _members for p in model_input(m)],
            train=TRAIN,
            ability=[ability_file(m) for m in _members],
            difficulty=_difficulty_input(_group),
        output:
            [directory(final_dir("{method}", _group, "{seed}", m)) for m in _members],
        wildcard_constraints:
            method=alt(_group_runs(_group)),
            seed=r"\d+",
        params:
            group=_group,
            out_dir=lambda wc, g=_group: run_dir(wc.method, g, wc.seed),
            difficulty=lambda wc, input: f" --difficulty {input.difficulty}" if input.difficulty else "",
            spec=lambda wc, g=_group: spec("train", method=wc.method, group=g, seed=wc.seed),
            cfg=EFFECTIVE,
        log:
            f"{LOGS}/train/{{method}}/{_group}/seed{{seed}}.log",
        threads: job_threads("train_group", lambda wc, ms=_members: sizes(*ms))
        resources:
            **job_resources("train_group", lambda wc, ms=_members: sizes(*ms)),
        shell:
            _train_shell(" --ability {input.ability}{params.difficulty}")
