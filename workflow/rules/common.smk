# Helpers and target lists shared by every rule file. The study's structure (which runs, which models,
# which evaluation cells) comes from ilr/study.py and ilr/config/, the same code the stages use.

import glob
import os
import re
import shlex
import sys

REPO = workflow.basedir


def _rel_or_abs(p):
    """A path relative to the working directory when it lies below it (shorter logs), else absolute."""
    r = os.path.relpath(p)
    return p if r.startswith("..") else r

sys.path.insert(0, REPO)
# `python -m ilr` must find the package whatever the working directory (--directory, tests)
os.environ["PYTHONPATH"] = REPO + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")

from ilr import config as ilrcfg  # noqa: E402
from ilr import study as ilrstudy  # noqa: E402
from ilr import trainers as ilrtrainers  # noqa: E402
from ilr import slurm as ilrslurm  # noqa: E402
from ilr import warm as ilrwarm  # noqa: E402
from snakemake.logging import logger  # noqa: E402
from ilr.report import registry as tables_registry  # noqa: E402
from ilr.code_inputs import stage_code  # noqa: E402
from ilr.io import sha256_json, sha256_text, write_once  # noqa: E402
from ilr.layout import Layout  # noqa: E402
from snakemake.exceptions import WorkflowError  # noqa: E402

# ---- the config: config/config.yaml (the tiny default), or the `--configfile` files INSTEAD of it (Snakemake
# 9 would deep-merge them into a `configfile:` default, mixing the tiny models and benchmarks into the paper
# study), then the `--config key=value` overrides. Read with ilr.config's YAML loader, not Snakemake's:
# `7e-5` is a number, a key given twice is an error, a YAML error names the file, line and column.
# (Snakemake itself also parses `--configfile` files before this code runs: a YAML syntax error in one ends
# there, with Snakemake's message; `python -m ilr check-config FILE` names the line.)
_CONFIG_FILES = [str(f) for f in workflow.config_settings.configfiles] or [os.path.join(REPO, "config", "config.yaml")]
try:
    _args = workflow.config_settings.config_args
    _overrides = ilrcfg.parse_overrides(_args) if _args else dict(workflow.config_settings.config)
    # validation before any job: the schema (every section closed, one schema per trainer), its defaults
    # filled in, then the semantic checks; every error names the file, the key and what was expected
    _config, _ = ilrstudy.load_merged([_rel_or_abs(f) for f in _CONFIG_FILES], _overrides)
    # and every GPU job must fit the GPUs it asks for (ilr/plan.py; `python -m ilr plan` prints the whole plan)
    from ilr import plan as ilrplan  # noqa: E402

    ilrplan.check(_config, ", ".join(_rel_or_abs(f) for f in _CONFIG_FILES))
except ilrcfg.ConfigError as e:
    raise WorkflowError(f"invalid config: {e}") from None
config.clear()
config.update(_config)

R = config["results"].rstrip("/")

# ---- the effective config every job reads (`--config {CFG}` in each rule's shell command): the config above,
# named after the hash of its content, `R/.config/<hash>.yaml`. It is written once, when a run starts
# (`onstart`: not by a dry-run, which writes nothing under R), and never rewritten: another invocation with
# another config writes another file, so nothing can change what a running study's jobs read.
# CFG is a global formatted into the shell command at job time, never a rule's param or a literal in its
# shell template: Snakemake's params and code triggers would then rerun every job whenever any key
# changed. The rerun trigger is each rule's `params.spec`, the hash of the config slice its stage reads.
# On a cluster every job re-parses this file; it reads the file its submitting invocation chose
# ($ILR_EFFECTIVE_CONFIG, exported to the job by sbatch), even if the config files were edited since.
EFFECTIVE_TEXT = (
    "# The effective config of a study (config files + --config overrides + schema defaults), written by\n"
    "# the Snakefile when a run started; named after the sha256 of this text; never rewritten.\n"
    + ilrcfg.dump_yaml(config)
)
_planned = f"{R}/.config/{sha256_text(EFFECTIVE_TEXT)[:16]}.yaml"
if workflow.remote_exec or workflow.subprocess_exec:
    CFG = os.environ.get("ILR_EFFECTIVE_CONFIG", _planned)
else:
    CFG = os.environ["ILR_EFFECTIVE_CONFIG"] = _planned


# Jobs run on this machine start warm: forked from one process that imported torch, transformers and TRL once
# (ilr/warm.py: an evaluation job 10.7 s -> 2.6 s; results byte-identical; ILR_WARM=0 turns it off). The
# server lives from onstart to onsuccess/onerror (and exits with Snakemake if it is killed).
_WARM = {}

# the workflow's one `onstart` handler (Snakemake keeps only the last one: extend this one, add no other);
# it runs before the first job, not in a dry-run, not in a cluster job (`--no-hooks`)
# On Slurm it also picks the executor's status command: squeue where the cluster has no accounting (sacct
# answers nothing there and Snakemake would never see a job finish; ilr/slurm.py, docs/cluster.md).
onstart:
    write_once(CFG, EFFECTIVE_TEXT)
    ilrslurm.adapt_status_command(workflow.executor_settings, log=logger.info)
    if workflow.local_exec:
        _WARM["server"] = ilrwarm.start(config["numerics"])


onsuccess:
    ilrwarm.stop(_WARM.pop("server", None))


onerror:
    ilrwarm.stop(_WARM.pop("server", None))


PY = shlex.quote(sys.executable)
# every rule's command: `python -m ilr.warm ilr ...` runs `python -m ilr ...`, forked from the warm server
# where there is one, else exec'd as a plain process (a cluster job). One text whatever the executor: it is
# Snakemake's `code` rerun trigger
ILR = f"{PY} -m ilr.warm ilr"


def alt(names):
    """A wildcard constraint matching exactly these strings."""
    names = sorted(set(map(str, names)), key=lambda s: (-len(s), s))
    return "(?:" + "|".join(re.escape(n) for n in names) + ")" if names else "(?!)"


def spec(stage, **ids):
    return sha256_json(ilrstudy.stage_spec(config, stage, **ids))


# ---- paths (README: "Where the outputs land"): one layout for the rules and the stages (ilr/layout.py)
LAYOUT = Layout(R)
DATA, TRAIN, VAL, LOGS = LAYOUT.data, LAYOUT.train, LAYOUT.val, LAYOUT.logs
bench_file, ability_file, difficulty_file = LAYOUT.bench_file, LAYOUT.ability_file, LAYOUT.difficulty_file
difficulty_figure, run_dir, final_dir = LAYOUT.difficulty_figure, LAYOUT.run_dir, LAYOUT.final_dir
eval_dir, eval_file, multi_agent_file = LAYOUT.eval_dir, LAYOUT.eval_file, LAYOUT.multi_agent_file


# ---- the models: built ones are rule outputs, hub ids and existing directories are not
MODELS = config["models"]
BUILT = {m: spec_["path"].rstrip("/") for m, spec_ in MODELS.items() if "build" in spec_}
BUILT_BY_PATH = {p: m for m, p in BUILT.items()}


def model_input(model):
    """The base model as a rule input: the build_model output, or nothing for a hub id / given dir."""
    return [BUILT[model]] if model in BUILT else []


# ---- the study's jobs (all from ilr/study.py)
CELLS = ilrstudy.eval_cells(config)          # (run, group, model, seed) -> benchmarks the tables read
TRAIN_JOBS = ilrstudy.train_jobs(config)     # (run, group-or-model, seed)
SINGLE_RUNS = sorted({m for m, g, s in TRAIN_JOBS if not ilrcfg.is_group_run(config, m)})


def method_of(run):
    return ilrcfg.method_config(config, run)


def needs_difficulty(run):
    m = method_of(run)
    return ilrtrainers.trainer(m["trainer"]).group and m.get("interaction") == "irt"


DIFFICULTY_GROUPS = sorted({g for m, g, s in TRAIN_JOBS if ilrcfg.is_group_run(config, m) and needs_difficulty(m)})


def eval_targets():
    return [eval_file(m, g, model, seed, b) for (m, g, model, seed), bl in CELLS.items() for b in bl]


def table_targets():
    """What the `tables` rule writes: each table as .md, .csv and .tex under tables/, its figures under figures/."""
    return tables_registry.outputs(config, LAYOUT.tables, LAYOUT.figures)


# ---- code inputs: a change to any module a stage runs reruns that stage's jobs. The files are derived from
# what each stage's module imports, transitively (ilr/code_inputs.py), plus the prompt files it reads.
_PROMPT_DIR = (config["prompts"] if os.path.isdir(config["prompts"])
               else os.path.join(REPO, "ilr", "prompts", config["prompts"]))
_PROMPT_STAGES = ("ability", "difficulty", "train", "evaluate", "multi_agent")


def code(stage):
    files = [os.path.join(REPO, f) for f in stage_code(stage)]
    if stage in _PROMPT_STAGES:
        files += sorted(glob.glob(os.path.join(_PROMPT_DIR, "*.txt")))
    return [_rel_or_abs(f) for f in files]


# ---- resources (config `resources:`; see ilr.study.resources)
_RES_NAMES = {"cpus": "cpus_per_task", "gpus": "gpu"}


def _slurm_resources(r):
    return {_RES_NAMES.get(k, k): v for k, v in r.items() if v != ""}


def job_resources(rule, sizes_of=None):
    """Snakemake `resources:` for a rule; sizes_of(wildcards) -> the model sizes of the job."""
    if sizes_of is None:
        return {"gpu": 0, **_slurm_resources(ilrstudy.resources(config, rule))}
    # every key any size can produce, so that each key is defined for every job of the rule (gpu always:
    # the train rules' launcher reads it)
    keys = {"gpu"}
    for s in {m["size"] for m in MODELS.values()}:
        keys |= set(_slurm_resources(ilrstudy.resources(config, rule, [s])))
    keys |= set(_slurm_resources(ilrstudy.resources(config, rule)))

    def value(key):
        def f(wildcards):
            r = _slurm_resources(ilrstudy.resources(config, rule, sizes_of(wildcards)))
            return r.get(key, "" if key in ("slurm_partition", "slurm_account", "gpu_model", "constraint",
                                            "qos", "slurm_extra") else 0)
        return f

    return {k: value(k) for k in sorted(keys)}


def job_threads(rule, sizes_of=None):
    if sizes_of is None:
        return ilrstudy.resources(config, rule).get("cpus", 1)
    return lambda wildcards: ilrstudy.resources(config, rule, sizes_of(wildcards)).get("cpus", 1)


def sizes(*models):
    return [MODELS[m]["size"] for m in models]
