# Helpers and target lists shared by every rule file. The study's structure (which runs, which models,
# which evaluation cells) comes from ilr/config.py, the same code the stages use.

import glob
import os
import re
import shlex
import sys

import yaml

REPO = workflow.basedir


def _rel_or_abs(p):
    r = os.path.relpath(p)
    return p if r.startswith("..") else r

sys.path.insert(0, REPO)
# `python -m ilr` must find the package whatever the working directory (--directory, tests)
os.environ["PYTHONPATH"] = REPO + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")

from ilr import config as ilrcfg  # noqa: E402
from ilr.io import sha256_json, write_text  # noqa: E402

# ---- `--configfile X` REPLACES config/config.yaml. (Snakemake 9 deep-merges a command-line config file
# into the `configfile:` one, which would mix the tiny models and benchmarks into the paper study.)
# `--config key=value` overrides still apply on top.
if workflow.config_settings.configfiles:
    from snakemake.common.configfile import load_configfile
    from snakemake.utils import update_config

    config.clear()
    for _f in workflow.config_settings.configfiles:
        update_config(config, load_configfile(_f))
    if workflow.config_settings.config:
        update_config(config, dict(workflow.config_settings.config))
    _CONFIG_FILES = [str(f) for f in workflow.config_settings.configfiles]
else:
    _CONFIG_FILES = [str(f) for f in workflow.configfiles]

# ---- validation, before any job: our schema + semantic checks (clear key paths), then Snakemake's own
_SOURCE = ", ".join(_rel_or_abs(f) for f in _CONFIG_FILES) or "config"
if workflow.config_settings.config:
    _SOURCE += " (with --config overrides)"
ilrcfg.validate(config, source=_SOURCE)
from snakemake.utils import validate  # noqa: E402

validate(config, os.path.join(REPO, "workflow", "schemas", "config.schema.yaml"))

R = config["results"].rstrip("/")

# ---- the effective config (config files + --config overrides) that every job reads. Rewritten only
# when its content changes; NOT a rule input: each rule's `params.spec` hash is the rerun trigger.
EFFECTIVE = f"{R}/.config/effective.yaml"
_effective_text = (
    "# Written by the Snakefile from " + _SOURCE + "; do not edit (regenerated at every run).\n"
    + yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)
)
if not os.path.exists(EFFECTIVE) or open(EFFECTIVE, encoding="utf-8").read() != _effective_text:
    write_text(EFFECTIVE, _effective_text)

PY = shlex.quote(sys.executable)
ILR = f"{PY} -m ilr"


def alt(names):
    """A wildcard constraint matching exactly these strings."""
    names = sorted(set(map(str, names)), key=lambda s: (-len(s), s))
    return "(?:" + "|".join(re.escape(n) for n in names) + ")" if names else "(?!)"


def spec(stage, **ids):
    return sha256_json(ilrcfg.stage_spec(config, stage, **ids))


# ---- paths (README: "Where the outputs land")
DATA = f"{R}/data"
TRAIN = f"{DATA}/train.jsonl"
VAL = f"{DATA}/val.jsonl"
LOGS = f"{R}/logs"


def bench_file(b):
    return f"{DATA}/bench/{b}.jsonl"


def ability_file(model):
    return f"{R}/ability/{model}.json"


def difficulty_file(group):
    return f"{R}/difficulty/{group}.jsonl"


def difficulty_figure(group):
    return f"{R}/figures/difficulty_{group}.png"


def run_dir(method, group, seed):
    return f"{R}/runs/{method}/{group}/seed{seed}"


def final_dir(method, group, seed, model):
    return f"{run_dir(method, group, seed)}/{model}/final"


def eval_dir(method, group, model, seed):
    return f"{R}/eval/{method}/{group}/{model}/seed{seed}"


def eval_file(method, group, model, seed, bench):
    return f"{eval_dir(method, group, model, seed)}/{bench}.json"


# ---- the models: built ones are rule outputs, hub ids and existing directories are not
MODELS = config["models"]
BUILT = {m: spec_["path"].rstrip("/") for m, spec_ in MODELS.items() if "build" in spec_}
BUILT_BY_PATH = {p: m for m, p in BUILT.items()}


def model_input(model):
    """The base model as a rule input: the build_model output, or nothing for a hub id / given dir."""
    return [BUILT[model]] if model in BUILT else []


# ---- the study's jobs (all from ilr/config.py)
CELLS = ilrcfg.eval_cells(config)          # (run, group, model, seed) -> benchmarks the tables read
TRAIN_JOBS = ilrcfg.train_jobs(config)     # (run, group-or-model, seed)
SINGLE_RUNS = sorted({m for m, g, s in TRAIN_JOBS if not ilrcfg.is_group_run(config, m)})


def method_of(run):
    return ilrcfg.method_config(config, run)


def needs_difficulty(run):
    m = method_of(run)
    return m["trainer"] in ilrcfg.GROUP_TRAINERS and m.get("interaction") == "irt"


DIFFICULTY_GROUPS = sorted({g for m, g, s in TRAIN_JOBS if ilrcfg.is_group_run(config, m) and needs_difficulty(m)})


def eval_targets():
    return [eval_file(m, g, model, seed, b) for (m, g, model, seed), bl in CELLS.items() for b in bl]


TABLE_EXTS = ("md", "csv", "tex")


def table_names():
    """The tables the `tables` rule writes (ilr/report/tables.py), each as .md, .csv and .tex."""
    t = config["tables"]
    names = [n for n in ("main", "ablation", "coop_ratio") if n in t]
    if config.get("multi_agent"):
        names.append("multi_agent")
    return names + ["paper_vs_reproduced"]


def table_targets():
    out = [f"{R}/tables/{n}.{ext}" for n in table_names() for ext in TABLE_EXTS]
    if "coop_ratio" in config["tables"]:
        out.append(f"{R}/figures/coop_ratio.png")
    return out


# ---- code inputs: a change to a stage's source reruns that stage's jobs
_PROMPT_DIR = (config["prompts"] if os.path.isdir(config["prompts"])
               else os.path.join(REPO, "ilr", "prompts", config["prompts"]))
_COMMON_GEN = ["ilr/generation.py", "ilr/grading/*.py", "ilr/prompts.py", "ilr/tiny/model.py",
               "ilr/tiny/tokenizer.py"]
STAGE_CODE = {
    "prepare_data": ["ilr/data_prep.py", "ilr/benchmarks.py", "ilr/tiny/task.py"],
    "build_model": ["ilr/tiny/*.py"],
    "ability": ["ilr/ability.py", "ilr/evaluate.py"] + _COMMON_GEN,
    "difficulty": ["ilr/difficulty.py"] + _COMMON_GEN,
    "train": ["ilr/train/*.py", "ilr/idea3.py", "ilr/interaction.py", "ilr/calibration.py"] + _COMMON_GEN,
    "evaluate": ["ilr/evaluate.py", "ilr/vllm_engine.py"] + _COMMON_GEN,
    "multi_agent": ["ilr/multi_agent.py", "ilr/idea3.py", "ilr/evaluate.py"] + _COMMON_GEN,
    "tables": ["ilr/report/*.py", "ilr/report/*.yaml"],
}
_PROMPT_STAGES = ("ability", "difficulty", "train", "evaluate", "multi_agent")


def _rel(p):
    r = os.path.relpath(p)
    return p if r.startswith("..") else r


def code(stage):
    files = []
    for pat in STAGE_CODE[stage]:
        files += sorted(glob.glob(os.path.join(REPO, pat)))
    if stage in _PROMPT_STAGES:
        files += sorted(glob.glob(os.path.join(_PROMPT_DIR, "*.txt")))
    return [_rel(f) for f in files]


# ---- resources (config `resources:`; see ilr.config.resources)
_RES_NAMES = {"cpus": "cpus_per_task", "gpus": "gpu"}


def _slurm_resources(r):
    return {_RES_NAMES.get(k, k): v for k, v in r.items() if v != ""}


def job_resources(rule, sizes_of=None, keys_over=None):
    """Snakemake `resources:` for a rule; sizes_of(wildcards) -> the model sizes of the job."""
    if sizes_of is None:
        return {"gpu": 0, **_slurm_resources(ilrcfg.resources(config, rule))}
    # every key any size can produce, so that each key is defined for every job of the rule (gpu always:
    # the train rules' launcher reads it)
    keys = {"gpu"}
    for s in {m["size"] for m in MODELS.values()}:
        keys |= set(_slurm_resources(ilrcfg.resources(config, rule, [s])))
    keys |= set(_slurm_resources(ilrcfg.resources(config, rule)))

    def value(key):
        def f(wildcards):
            r = _slurm_resources(ilrcfg.resources(config, rule, sizes_of(wildcards)))
            return r.get(key, "" if key in ("slurm_partition", "slurm_account", "gpu_model", "constraint",
                                            "qos", "slurm_extra") else 0)
        return f

    return {k: value(k) for k in sorted(keys)}


def job_threads(rule, sizes_of=None):
    if sizes_of is None:
        return ilrcfg.resources(config, rule).get("cpus", 1)
    return lambda wildcards: ilrcfg.resources(config, rule, sizes_of(wildcards)).get("cpus", 1)


def sizes(*models):
    return [MODELS[m]["size"] for m in models]
