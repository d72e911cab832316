"""Every config key is checked before any job runs: each broken config fails `ilr.config.load` and
`snakemake -n` naming its key (and nothing runs, nothing is written); the YAML loader reads `7e-5` as a
number, rejects a key given twice and names file, line and column; method entries are checked per trainer
and PPO's defaults come from the schema."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ilr import config as cfg
from ilr import study

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
TINY = REPO / "config" / "config.yaml"


def tiny() -> dict:
    return cfg.load_yaml(TINY)


def snakemake_dry_run(tmp_path: Path, configfile: Path, *args: str) -> tuple[int, str]:
    """(exit status, stdout + stderr) of `snakemake all -n` (a dry-run logs its errors to stdout)."""
    r = subprocess.run([SNAKEMAKE, "all", "--cores", "1", "--configfile", str(configfile), *args, "-n"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


# (what is broken, the change, the key the error must name, a phrase of the message)
BROKEN = [
    ("ppo key typo", lambda c: c["methods"]["ppo"].update(vf_coeff=0.5),
     "methods.ppo.vf_coeff", "did you mean 'vf_coef'"),
    ("grpo key typo", lambda c: c["methods"]["grpo"].update(learning_rat=1e-3),
     "methods.grpo.learning_rat", "did you mean 'learning_rate'"),
    ("method range", lambda c: c["methods"]["grpo"].update(steps=-3),
     "methods.grpo.steps", "less than the minimum of 1"),
    ("method type", lambda c: c["methods"]["grpo"].update(learning_rate="fast"),
     "methods.grpo.learning_rate", "'fast' is not of type 'number'"),
    ("ppo key on an ilr method", lambda c: c["methods"]["ilr"].update(vf_coef=0.5),
     "methods.ilr.vf_coef", "unknown key 'vf_coef'"),
    ("ilr key on a grpo method", lambda c: c["methods"]["grpo"].update(groups=["group1"]),
     "methods.grpo.groups", "unknown key 'groups'"),
    ("ppo value", lambda c: c["methods"]["ppo"].update(lr_scheduler_type="cosine_annealing"),
     "methods.ppo.lr_scheduler_type", "is not one of"),
    ("ppo minibatches", lambda c: c["methods"]["ppo"].update(num_mini_batches=5),
     "methods.ppo.num_mini_batches", "does not divide"),
    ("section key typo", lambda c: c["evaluation"].update(bootstrapp=5),
     "evaluation.bootstrapp", "did you mean 'bootstrap'"),
    ("training key typo", lambda c: c["training"].update(learningrate=1e-4),
     "training.learningrate", "did you mean 'learning_rate'"),
    ("unknown section", lambda c: c.update(studdy="x"), "studdy", "known sections"),
    ("build key typo", lambda c: c["models"]["tiny-llama"]["build"].update(hiden=32),
     "models.tiny-llama.build.hiden", "did you mean 'hidden'"),
    ("data params typo", lambda c: c["benchmarks"]["arith"]["params"].update(max_op=9),
     "benchmarks.arith.params.max_op", "did you mean 'max_operand'"),
    ("data params range", lambda c: c["benchmarks"]["arith"]["params"].update(min_steps=4, max_steps=2),
     "benchmarks.arith.params", "min_steps <= max_steps"),
    ("unknown data source", lambda c: c["benchmarks"]["arith"].update(source="tiny_arithm"),
     "benchmarks.arith.source", "unknown source 'tiny_arithm'"),
    ("params of a hub source", lambda c: c["benchmarks"]["arith"].update(source="gsm8k"),
     "benchmarks.arith.params", "only generated sources take params"),
    ("unknown prompts", lambda c: c.update(prompts="tinyy"), "prompts", "prompt directory 'tinyy' not found"),
    ("estimator differs", lambda c: c["methods"]["grpo"].update(reward_format=0.0),
     "methods.grpo", "reward_format 0.0 vs 0.2"),
    ("ppo reward differs", lambda c: c["methods"]["ppo"].update(reward_format=0.5),
     "methods.ppo", "reward_format 0.5 vs 0.2"),
    ("context too small", lambda c: c["generation"].update(max_model_len=256),   # tests/test_context_budget.py
     "generation.max_model_len", "256 tokens cannot hold the longest prompt plus its completion"),
]


@pytest.mark.parametrize("what,breaker,key,phrase", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_fails_load_and_dry_run(tmp_path, what, breaker, key, phrase):
    c = tiny()
    breaker(c)
    c["results"] = str(tmp_path / "results")
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(c, sort_keys=False))
    with pytest.raises(cfg.ConfigError) as e:
        study.load(path)
    assert f"{path}: {key}: " in str(e.value) and phrase in str(e.value), str(e.value)

    rc, out = snakemake_dry_run(tmp_path, path)
    assert rc != 0
    assert f"{key}: " in out and phrase in out, out[-2000:]
    assert "Job stats" not in out                          # before any job is planned
    assert not (tmp_path / "results").exists()


def test_one_estimator_per_comparison_unless_said_so():
    """The main table's ILR and baseline rows share reward and estimator (PPO: the reward only), or the config
    says `tables.main.mixed_estimators: true`."""
    c = tiny()
    c["methods"]["ilr"]["advantages"] = "pooled"
    with pytest.raises(cfg.ConfigError, match=r"methods\.grpo: .*advantages 'member' vs 'pooled'"):
        study.validate(copy.deepcopy(c), "x.yaml")
    c["tables"]["main"]["mixed_estimators"] = True
    study.validate(copy.deepcopy(c), "x.yaml")
    c = tiny()
    c["methods"]["ppo"]["advantages"] = "pooled"   # GAE's advantages: PPO shares the reward only
    study.validate(c, "x.yaml")


def test_unknown_key_names_the_allowed_ones():
    c = tiny()
    c["methods"]["ppo"]["vf_coeff"] = 0.5
    with pytest.raises(cfg.ConfigError) as e:
        study.validate(c, "x.yaml")
    msg = str(e.value)
    for k in ("vf_coef", "gae_lambda", "critic_learning_rate", "micro_batch_size"):   # the trainer's own keys
        assert k in msg
    for k in cfg.training_keys():                                           # and every training key
        assert k in msg


# ---------------------------------------------------------------------------------------------- YAML


def test_exponent_numbers_are_numbers(tmp_path):
    text = TINY.read_text().replace("learning_rate: 7.0e-5", "learning_rate: 7e-5")
    assert "learning_rate: 7e-5" in text
    path = tmp_path / "c.yaml"
    path.write_text(text.replace("results: results ", f"results: {tmp_path / 'results'} "))
    assert study.load(path)["training"]["learning_rate"] == 7e-5
    assert yaml.safe_load("x: 7e-5")["x"] == "7e-5"      # (PyYAML's own reading, why the loader exists)
    rc, out = snakemake_dry_run(tmp_path, path, "--config", "methods={grpo: {trainer: grpo, learning_rate: 5e-5}}")
    assert rc == 0, out[-2000:]


def test_yaml_scalars():
    got = cfg.parse_yaml("a: 7e-5\nb: 1e3\nc: -1.5E+2\nd: 1.0e-6\ne: 12\nf: 7b\ng: e5\nh: .5\n", "s")
    assert got == {"a": 7e-5, "b": 1000.0, "c": -150.0, "d": 1e-6, "e": 12, "f": "7b", "g": "e5", "h": 0.5}
    assert isinstance(got["e"], int) and isinstance(got["b"], float)


def test_duplicate_key_fails_naming_it(tmp_path):
    text = TINY.read_text().replace("  beta: 0.0 ", "  steps: 31\n  beta: 0.0 ", 1)
    path = tmp_path / "dup.yaml"
    path.write_text(text.replace("results: results ", f"results: {tmp_path / 'results'} "))
    line = text.splitlines().index("  steps: 31") + 1
    first = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("  steps: "))
    with pytest.raises(cfg.ConfigError) as e:
        study.load(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: training.steps: line {line}, column 3: key 'steps' given twice"), msg
    assert f"first at line {first}, column 3" in msg
    rc, out = snakemake_dry_run(tmp_path, path)
    assert rc != 0 and "training.steps" in out and "given twice" in out, out[-2000:]
    assert "Job stats" not in out and not (tmp_path / "results").exists()


def test_config_override_values_use_the_same_loader(tmp_path):
    """`--config training="{...}"`: numbers are numbers (Snakemake's own parser gives strings), a key given
    twice is an error naming it."""
    path = tmp_path / "c.yaml"
    c = tiny()
    c["results"] = str(tmp_path / "results")
    path.write_text(yaml.safe_dump(c, sort_keys=False))
    rc, out = snakemake_dry_run(tmp_path, path, "--config", "training={steps: 5, learning_rate: 7e-5}")
    assert rc == 0, out[-2000:]
    rc, out = snakemake_dry_run(tmp_path, path, "--config", "training={steps: 5, steps: 6}")
    assert rc != 0 and "--config training: training.steps" in out, out[-2000:]
    assert cfg.parse_overrides(["results=/x/y", "seeds=[0, 1]", "study="]) == {
        "results": "/x/y", "seeds": [0, 1], "study": None}


@pytest.mark.parametrize("text,where", [
    ("study: tiny\ntraining:\n  steps: 3\n   beta: 0\n", "line 4, column 8"),
    ("study: [tiny\n", "line 2, column 1"),
    ("study: tiny\n\tseeds: [0]\n", "line 2, column 1"),
    ("", None),
    ("# only comments\n", None),
])
def test_yaml_errors_name_file_line_and_column(tmp_path, text, where):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(cfg.ConfigError) as e:
        study.load(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: "), msg
    assert (where in msg) if where else ("empty" in msg), msg
    # the same through `python -m ilr check-config`: one line on stderr, exit 2, no traceback
    r = subprocess.run([sys.executable, "-m", "ilr", "check-config", str(path)], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stderr == f"error: {msg}\n", r.stderr
    # Snakemake reads a --configfile itself first: it fails before any job (with its own message)
    rc, out = snakemake_dry_run(tmp_path, path)
    assert rc != 0 and "Job stats" not in out


def test_user_errors_of_every_stage_are_one_line(tmp_path):
    """A ConfigError (or DataError: tests/test_grading_cli.py) in any stage: `error: <message>` on stderr,
    exit 2, no traceback."""
    c = tiny()
    c["methods"]["grpo"]["learning_rat"] = 1e-3
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(c))
    r = subprocess.run([sys.executable, "-m", "ilr", "tables", "--config", str(path), "--eval-dir", "e",
                        "--out-dir", "o", "--figures-dir", "f"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"error: {path}: methods.grpo.learning_rat: unknown key"), r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "ilr", "check-config", str(tmp_path / "missing.yaml")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr == (f"error: {tmp_path / 'missing.yaml'}: cannot read the config file "
                                              "(No such file or directory)\n"), r.stderr


# ---------------------------------------------------------------------------------------------- defaults


def test_ppo_defaults_come_from_the_schema():
    c = study.validate(tiny())
    ppo = c["methods"]["ppo"]
    declared = {k: v["default"] for k, v in cfg.trainer_keys("ppo").items() if "default" in v}
    assert set(declared) == {"vf_coef", "gae_gamma", "gae_lambda", "cliprange_value", "whiten_advantages",
                             "critic_learning_rate", "ppo_epochs", "num_mini_batches", "value_warmup_steps",
                             "weight_decay", "max_grad_norm", "lr_scheduler_type", "warmup_steps",
                             "micro_batch_size", "generation_batch_size", "save_total_limit"}
    for k, v in declared.items():
        assert k in ppo
    assert ppo["vf_coef"] == 0.5 and ppo["cliprange_value"] == 0.2 and ppo["critic_learning_rate"] == 7.0e-4
    # an entry that sets none of them gets the schema's: one update per step, no warm-up, the actor's rate
    bare = tiny()
    bare["methods"]["ppo"] = {"trainer": "ppo"}
    bare = cfg.validate(bare)["methods"]["ppo"]
    assert (bare["critic_learning_rate"], bare["ppo_epochs"], bare["num_mini_batches"],
            bare["value_warmup_steps"]) == (None, 1, 1, 0)
    args = cfg.training_args(c, "ppo")
    assert args.micro_batch_size == 8 and args.steps == c["training"]["steps"]
    # the other trainers get none of them
    assert not set(declared) & set(cfg.training_args(c, "grpo").as_dict())
    assert not set(declared) & set(c["methods"]["ilr"])


def test_a_method_never_gets_a_training_default():
    """Training defaults are filled into `training:`; a method entry keeps only what it sets, so the study's
    `training:` value is what every method without its own value trains with."""
    c = tiny()
    c["training"]["scale_rewards"] = "none"
    c["methods"]["grpo"] = {"trainer": "grpo"}
    c = study.validate(c)
    assert set(c["methods"]["grpo"]) == {"trainer"}
    assert cfg.training_args(c, "grpo").scale_rewards == "none"
    for trainer in ("grpo", "ppo", "ilr"):
        assert not set(cfg.trainer_keys(trainer)) & set(cfg.training_keys())


def test_training_args_are_a_typed_object_made_from_the_schema():
    """What a trainer reads (ilr/config/args.py): attributes typed and defaulted by the schema alone, frozen,
    errors that name the key, and as_dict() the very merge that the training job's rerun trigger hashes."""
    import dataclasses
    import pickle

    c = study.validate(tiny())
    for run in cfg.run_names(c):
        m, args = cfg.method_config(c, run), cfg.training_args(c, run)
        merged = {**c["training"], **{k: v for k, v in m.items() if k not in ("groups", "name", "base_method")}}
        assert args.as_dict() == merged and args.trainer == m["trainer"], run
    args = cfg.training_args(c, "ppo")
    assert (args.beta, args.vf_coef) == (c["training"]["beta"], c["methods"]["ppo"]["vf_coef"])
    assert args.train_stages == tuple(c["training"]["train_stages"])   # lists frozen as tuples
    assert pickle.loads(pickle.dumps(args)) == args and args.replace(beta=0.5).beta == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        args.beta = 0.5
    with pytest.raises(AttributeError, match="'betta' is no training argument of a ppo method.*'beta'"):
        args.betta
    assert not hasattr(cfg.training_args(c, "grpo"), "vf_coef")   # each trainer's own keys only
    # the defaults are the schema's, declared nowhere else; a key without one is unset until given
    schema = yaml.safe_load(cfg.SCHEMA.read_text())["properties"]["training"]["properties"]
    fields = {f.name: f for f in dataclasses.fields(cfg.args_class("grpo"))}
    assert list(fields) == cfg.training_keys() + ["trainer"]
    for key, prop in schema.items():
        f = fields[key]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert default == prop["default"] if "default" in prop else default is not prop.get("default"), key
        assert f.metadata["schema"]
    bare = cfg.args_class("grpo")(steps=3)
    assert bare.scale_rewards == "group" and "save_steps" not in bare.as_dict()
    with pytest.raises(AttributeError, match="'save_steps' is not set"):
        bare.save_steps


def test_generated_source_params_match_the_generator():
    from ilr.tiny.task import DEFAULTS

    schema = cfg.schema._schema_cached()
    params = schema["definitions"]["data_spec"]["properties"]["params"]["properties"]
    assert set(params) == set(DEFAULTS)


def test_both_study_configs_are_valid():
    for name in ("config.yaml", "paper.yaml"):
        c = study.load(REPO / "config" / name)
        assert c["methods"]["ppo"]["vf_coef"] == 0.5


def test_validation_is_idempotent():
    """Jobs load the effective config (already validated, defaults filled): the same config again."""
    c = study.validate(tiny())
    again = study.validate(copy.deepcopy(c))
    assert again == c
    assert cfg.parse_yaml(cfg.dump_yaml(c), "dump") == c
