# Training. grpo/ppo: one job per (method, model, seed). ILR family: one job per (run, group, seed) that
# trains every model of the group together and leaves each one's final checkpoint; one rule per group
# (train_group_<group>) because the set of outputs depends on the group's members.


# The run directory, before the trainer starts (README "Resuming, rerunning, one trainer per run"):
# - one trainer at a time: the job takes an exclusive lock on `<run dir>.lock` (flock) and keeps it open into
#   the trainer it exec's, so the lock lives as long as the trainer, even an orphan whose Snakemake was
#   killed; a second job for the same run fails at once (exit 75), naming the holder (pid, host, start);
# - resume or start afresh: a run that is not finished (a failed attempt, a Snakemake retry, a Slurm
#   requeue, a killed job rerun) resumes from its checkpoints; a finished run (`.done`, written by the
#   trainer at the end) that runs again was forced (`--force`, `-R`) and starts from scratch, and so does
#   a run whose config slice or inputs changed (data, gamma, D_q, base model, code: `.spec` holds the
#   slice's hash and the path, size and mtime of every input file).
# - the log: every attempt of a run (a Snakemake retry, a Slurm requeue, a rerun after Ctrl-C) appends to it
#   under an "== attempt" line, so "stopped on SIGTERM after step N" stays. Snakemake deletes a job's log
#   before each attempt, so the run directory keeps a copy (`<run dir>/train.log`, written after each
#   attempt, and by `ilr.slurm requeue` just before it requeues, since the requeue may end this shell before
#   its own copy) that the next attempt restores where the log is gone or shorter; a run that starts afresh
#   starts an empty log.
_RUN_DIR = (
    'd={params.out_dir}; mkdir -p "$(dirname "$d")"; exec 9<>"$d.lock"; '
    'if ! flock -n 9; then echo "$d: another trainer holds this run directory ($(cat "$d.lock")); '
    'stop it or wait for it" >&2; exit 75; fi; '
    'echo "pid $$ on $(hostname), since $(date -Is)" > "$d.lock"; '
    's="{params.spec}:$(find {input} -type f -printf "%p %s %T@\\n" | LC_ALL=C sort | sha256sum | cut -c1-16)"; '
    'if [ -f "$d/.done" ] || {{ [ -f "$d/.spec" ] && [ "$(cat "$d/.spec")" != "$s" ]; }}; then rm -rf "$d"; fi; '
    'mkdir -p "$d" && echo "$s" > "$d/.spec"; '
    'if [ ! -f "$d/train.log" ]; then : > {log}; '
    'elif [ "$(stat -c %s {log} 2>/dev/null || echo 0)" -lt "$(stat -c %s "$d/train.log")" ]; then '
    'cp "$d/train.log" {log}; fi; '
    'echo "== attempt $(date -Is) on $(hostname), Slurm job ${{SLURM_JOB_ID:-none}}" >> {log}; '
)


# The launcher, by the job's GPU count (config `resources:`): more than one GPU -> `accelerate launch` with
# config/accelerate/<training.accelerate_config>.yaml and one process per GPU; else python, through the warm
# start (`python -m ilr.warm -m ilr train ...`: forked from the server where the jobs run locally, ilr/warm.py).
# `exec`: the trainer (or the warm client, which forwards signals to it) replaces the subshell and gets
# Slurm's SIGTERM itself (ilr/train/preempt.py). Under
# accelerate the launcher (torchrun's agent) ignores TERM, INT and USR1 (trap '' and
# TORCHELASTIC_SIGNALS_TO_HANDLE): left to itself it would SIGKILL the training processes 30 s after a
# signal, before they reach the end of their step and save; it exits when they do.
_ACCELERATE = _rel_or_abs(os.path.join(REPO, "config", "accelerate", config["training"]["accelerate_config"] + ".yaml"))
_LAUNCH = (
    '$(if [ "{resources.gpu}" -gt 1 ]; then echo ' + PY + " -m accelerate.commands.launch --config_file "
    + shlex.quote(_ACCELERATE) + ' --num_processes {resources.gpu} --main_process_port $(' + PY
    + ' -m ilr.train.dist); else echo ' + PY + ' -m ilr.warm; fi)'
)
_SIGNALS = ('if [ "{resources.gpu}" -gt 1 ]; then trap "" TERM INT USR1; '
            'export TORCHELASTIC_SIGNALS_TO_HANDLE=SIGHUP,SIGQUIT; fi; ')


# The trainer runs in a subshell that execs it (so it, not a shell, is the process the signal reaches;
# `|| rc=$?`: Snakemake's shell runs under `set -e`), while this shell waits with a trap (`:`; a trapped
# signal does not stop a shell waiting for its child). After a clean checkpoint on a signal (exit 128 +
# signal, ilr/train/preempt.py; under accelerate the launcher's code after the trainer's "checkpoint saved"
# line) inside a Slurm job, `python -m ilr.slurm requeue` puts the job back in the
# queue when the checkpoint advanced (same job id, no Snakemake retry spent; docs/cluster.md "Preemption");
# otherwise the job fails with the trainer's code.
def _train_shell(extra=""):
    return _RUN_DIR + "trap : TERM INT USR1; rc=0; ( " + _SIGNALS + (
        "OMP_NUM_THREADS={threads} exec " + _LAUNCH + " -m ilr train --config {CFG} --method {wildcards.method} --group {params.group}"
        " --seed {wildcards.seed} --train {input.train}" + extra +
        " --out-dir {params.out_dir} >> {log} 2>&1 ) || rc=$?; cp {log} \"$d/train.log\"; "
        "if [ $rc -ne 0 ] && [ -n \"${{SLURM_JOB_ID:-}}\" ]; then " + PY +
        " -m ilr.slurm requeue --run-dir {params.out_dir} --exit-code $rc --log {log} >> {log} 2>&1 || true; "
        "cp {log} \"$d/train.log\"; fi; exit $rc"
    )


def _models(trained, run):
    """The trained models, and the extra models the run's trainer loads for inference (AIPO's helper;
    ilr/trainers.py), where they are built locally."""
    names = list(trained) + ilrtrainers.extra_models(method_of(run))
    return list(dict.fromkeys(p for m in names for p in model_input(m)))


def _single_models(wc):
    return _models([wc.model], wc.method)


rule train_single:
    input:
        code("train"),
        model=_single_models,
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
            models=lambda wc, ms=_members: _models(ms, wc.method),
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
        log:
            f"{LOGS}/train/{{method}}/{_group}/seed{{seed}}.log",
        threads: job_threads("train_group", lambda wc, ms=_members: sizes(*ms))
        resources:
            **job_resources("train_group", lambda wc, ms=_members: sizes(*ms)),
        shell:
            _train_shell(" --ability {input.ability}{params.difficulty}")
