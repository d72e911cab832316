"""The paper study on Slurm, without a cluster: the profile's dry-run, the exact sbatch arguments the
executor plugin builds for each kind of job (its own code, fed the resources Snakemake computed), the
launcher the train rules pick by GPU count (accelerate vs python), and vLLM's tensor parallelism."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ilr import study

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
PROFILE = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())


def dry_run_jobs(*args: str) -> list[dict]:
    """Every job of `snakemake -n -p ...`: rule, wildcards, resources (as Snakemake computed them), shell."""
    r = subprocess.run([SNAKEMAKE, *args, "-n", "-p", "all"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \S+:\n)", r.stdout + r.stderr):
        m = re.match(r"(?:local)?rule (\S+):\n", block)
        if not m:
            continue
        job = {"rule": m.group(1), "wildcards": {}, "resources": {}, "shell": None}
        for key, val in re.findall(r"^    (wildcards|resources): (.*)$", block, re.M):
            job[key] = dict(kv.split("=", 1) for kv in val.split(", "))
        sh = re.search(r"^Shell command: (.*)$", block, re.M)
        job["shell"] = sh.group(1) if sh else None
        jobs.append(job)
    return jobs


class FakeResources(dict):
    __getattr__ = dict.get


def typed(v: str):
    return int(v) if re.fullmatch(r"-?\d+", v) else v


def sbatch_args(job: dict) -> str:
    """The plugin's own submit string for a job with these resources (account and partition formatted as the
    plugin's get_account_arg / get_partition_arg do; they query the cluster, so not called here)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    res = FakeResources({k: typed(v) for k, v in job["resources"].items() if v != "<TBD>"})
    fake = SimpleNamespace(resources=res, threads=res.get("cpus_per_task", 1), name=job["rule"],
                           is_group=lambda: False)
    validate_slurm_extra(fake)
    params = {"run_uuid": "UUID", "slurm_logfile": "log", "comment_str": "c", "workdir": None,
              "account": f" -A {res['slurm_account']}" if res.get("slurm_account") else "",
              "partition": f" -p {res['slurm_partition']}" if res.get("slurm_partition") else ""}
    settings = SimpleNamespace(requeue=PROFILE.get("slurm-requeue", False), no_requeue=False, qos=None,
                               reservation=None)
    return get_submit_command(fake, params, settings=settings) + set_gres_string(fake)


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """config/paper.yaml with a partition and account set (default, and another partition for 14B)."""
    d = tmp_path_factory.mktemp("paper")
    c = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    c["results"] = str(d / "results")
    c["resources"]["default"].update(slurm_partition="gpu", slurm_account="ilr-proj")
    c["resources"]["sizes"]["14b"]["slurm_partition"] = "gpu-large"
    path = d / "paper.yaml"
    path.write_text(yaml.safe_dump(c, sort_keys=False))
    jobs = dry_run_jobs("--profile", "slurm", "--configfile", str(path))
    return study.load(path), jobs


def pick(jobs, rule, **wildcards):
    for j in jobs:
        if j["rule"] == rule and all(j["wildcards"].get(k) == v for k, v in wildcards.items()):
            return j
    raise AssertionError(f"no {rule} job with {wildcards}")


def expected(config, rule, models):
    r = study.resources(config, rule, [config["models"][m]["size"] for m in models] if models else None)
    return r


CASES = [  # (rule in the DAG, rule in config `resources:`, wildcards, models)
    ("train_single", "train_single", {"method": "grpo", "model": "qwen-7b"}, ["qwen-7b"]),
    ("train_single", "train_single", {"method": "ppo", "model": "qwen-14b"}, ["qwen-14b"]),
    ("train_group_group1", "train_group", {"method": "ilr"}, ["llama-8b", "qwen-7b"]),
    ("train_group_group3", "train_group", {"method": "ilr"}, ["qwen-7b", "qwen-14b"]),
    ("evaluate", "evaluate", {"run": "ilr/group1/qwen-7b", "bench": "math500"}, ["qwen-7b"]),
    ("evaluate", "evaluate", {"run": "ilr/group3/qwen-14b", "bench": "math500"}, ["qwen-14b"]),
    ("prepare_train", "prepare_data", {}, []),
    ("tables", "tables", {}, []),
]


@pytest.mark.parametrize("rule,res_rule,wildcards,models", CASES,
                         ids=[f"{c[0]}-{'-'.join(c[3]) or 'cpu'}" for c in CASES])
def test_sbatch_arguments_match_the_config(paper, rule, res_rule, wildcards, models):
    config, jobs = paper
    job = pick(jobs, rule, **wildcards)
    want = expected(config, res_rule, models)
    call = sbatch_args(job)
    assert f" -t {want['runtime']} " in call
    assert f" --mem {want['mem_mb']} " in call
    assert f"--cpus-per-task={want['cpus']}" in call
    assert "--signal=TERM@600" in call and "--requeue" in call   # preemption: checkpoint, then requeue
    assert f"-A {want['slurm_account']}" in call and f"-p {want['slurm_partition']}" in call
    if want.get("gpus", 0) > 0:
        assert f"--gpus={want['gpus']}" in call and "--ntasks" not in call
    else:
        assert "--gpus" not in call and "--gres" not in call and "--ntasks=1" in call
    if models:  # the numbers themselves, from config/paper.yaml
        sizes = [config["models"][m]["size"] for m in models]
        if res_rule == "evaluate":
            assert want["gpus"] == {"7b": 1, "8b": 1, "14b": 2}[sizes[0]]
        elif res_rule == "train_single":   # ZeRO-3 over the GPUs (the memory plan, ilr/plan.py)
            assert want["gpus"] == {"7b": 4, "8b": 4, "14b": 8}[sizes[0]]
        else:                              # a group: both members sharded over the same 8 GPUs
            assert want["gpus"] == 8
        assert ("gpu-large" in call) == (sizes[0] == "14b")   # strings: the first model's (ilr.study.resources)


def test_14b_asks_more_than_7b(paper):
    config, jobs = paper
    for rule, res_rule, small, large in [
        ("train_single", "train_single", {"model": "qwen-7b"}, {"model": "qwen-14b"}),
        ("evaluate", "evaluate", {"run": "base/none/qwen-7b"}, {"run": "base/none/qwen-14b"}),
    ]:
        a, b = pick(jobs, rule, **small)["resources"], pick(jobs, rule, **large)["resources"]
        for k in ("gpu", "mem_mb", "cpus_per_task", "runtime"):
            assert int(b[k]) >= int(a[k]), (rule, k)
        assert int(b["gpu"]) > int(a["gpu"]) and int(b["mem_mb"]) > int(a["mem_mb"])


def launcher(shell: str) -> str:
    """Run the train shell's launcher choice ($(if ...)) in bash: what `exec` would start."""
    m = re.search(r"exec (\$\(if .*?; fi\))", shell)
    assert m, shell
    return subprocess.run(["bash", "-c", "echo " + m.group(1)], capture_output=True, text=True).stdout.strip()


def test_multi_gpu_training_goes_through_accelerate(paper):
    config, jobs = paper
    job = pick(jobs, "train_group_group3", method="ilr")
    n = int(job["resources"]["gpu"])
    assert n == 8
    cmd = launcher(job["shell"])
    assert re.search(r"-m accelerate\.commands\.launch --config_file config/accelerate/deepspeed_zero3\.yaml "
                     rf"--num_processes {n} --main_process_port \d+$", cmd), cmd
    acc = yaml.safe_load((REPO / "config" / "accelerate" / "deepspeed_zero3.yaml").read_text())
    assert acc["distributed_type"] == "DEEPSPEED" and acc["deepspeed_config"]["zero_stage"] == 3
    for name in ("single_gpu", "multi_gpu"):
        assert yaml.safe_load((REPO / "config" / "accelerate" / f"{name}.yaml").read_text())["num_machines"] == 1


def test_cpu_training_runs_plain_python(tmp_path):
    jobs = dry_run_jobs("--cores", "2", "--config", f"results={tmp_path}/r")
    train = [j for j in jobs if j["rule"].startswith("train_")]
    assert train
    for j in train:
        assert j["resources"]["gpu"] == "0"
        cmd = launcher(j["shell"])
        assert "accelerate" not in cmd and Path(cmd).name.startswith("python"), cmd


def test_vllm_tensor_parallel_per_size(paper):
    from ilr.vllm_engine import engine_args

    config, _ = paper
    gen = config["generation"]
    for model, spec in config["models"].items():
        args = engine_args("/ckpt", gen, 0, spec["size"])
        gpus = study.resources(config, "evaluate", [spec["size"]])["gpus"]
        assert args["tensor_parallel_size"] == gpus, model   # vLLM uses every GPU the job asked for
    assert engine_args("/ckpt", dict(gen, tensor_parallel_size=4), 0)["tensor_parallel_size"] == 4
    assert engine_args("/ckpt", dict(gen, tensor_parallel_size={"14b": 2}), 0, "7b")["tensor_parallel_size"] == 1


# ---- ilr/slurm.py without a cluster: the status command on a cluster without accounting, the requeue decision

def test_status_command_is_squeue_without_accounting():
    from ilr import slurm

    settings = SimpleNamespace(status_command="sacct", init_seconds_before_status_checks=40)
    said = []
    none = {"AccountingStorageType": "accounting_storage/none", "MinJobAge": "300 sec"}
    assert slurm.adapt_status_command(settings, said.append, conf=none) == "squeue"
    assert settings.status_command == "squeue" and "accounting" in said[0] and len(said) == 1
    # accounting (slurmdbd): left as it is; no Slurm, or another executor: nothing to do
    settings = SimpleNamespace(status_command="sacct", init_seconds_before_status_checks=40)
    dbd = {"AccountingStorageType": "accounting_storage/slurmdbd", "MinJobAge": "300 sec"}
    assert slurm.adapt_status_command(settings, said.append, conf=dbd) is None and settings.status_command == "sacct"
    assert slurm.adapt_status_command(SimpleNamespace(), said.append, conf=none) is None
    # squeue forgets finished jobs after MinJobAge: a short one is warned about
    said.clear()
    slurm.adapt_status_command(SimpleNamespace(status_command="squeue", init_seconds_before_status_checks=40),
                               said.append, conf=dict(none, MinJobAge="60 sec"))
    assert len(said) == 1 and "MinJobAge=60" in said[0]


def test_requeue_only_after_progress(tmp_path, monkeypatch):
    """A clean stop on a signal inside a Slurm job requeues it while the checkpoint advances; no progress, a
    failure that is not a signal, or no Slurm: the job fails and Snakemake's retries apply."""
    import signal

    from ilr import slurm

    calls = []
    monkeypatch.setattr(slurm.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or SimpleNamespace(returncode=0))
    monkeypatch.setattr(slurm.signal, "signal", lambda *a: None)   # the test process keeps its handlers
    run = tmp_path / "run"
    for m in ("a", "b"):   # a group of two members, both at step 4, one also at 6
        (run / m / "checkpoints" / "checkpoint-4").mkdir(parents=True)
        (run / m / "checkpoints" / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (run / "b" / "checkpoints" / "checkpoint-6").mkdir()
    (run / "b" / "checkpoints" / "checkpoint-6" / "trainer_state.json").write_text("{}")
    env, log = {"SLURM_JOB_ID": "42"}, []
    assert slurm.checkpoint_step(run) == 4
    assert not slurm.requeue(run, 1, env, log.append)               # a failure, not a signal
    assert not slurm.requeue(run, 128 + signal.SIGTERM, {}, log.append)   # not in Slurm
    assert not calls
    assert slurm.requeue(run, 128 + signal.SIGTERM, env, log.append)
    assert calls == [["scontrol", "requeue", "42"]] and "job 42 requeued at step 4" in (run / ".requeued").read_text()
    assert not slurm.requeue(run, 128 + signal.SIGTERM, env, log.append)   # signalled again before a new step
    assert len(calls) == 1 and "no new checkpoint" in log[-1]
    (run / "a" / "checkpoints" / "checkpoint-6").mkdir()
    (run / "a" / "checkpoints" / "checkpoint-6" / "trainer_state.json").write_text("{}")
    assert slurm.requeue(run, 128 + signal.SIGINT, env, log.append) and len(calls) == 2
    monkeypatch.setattr(slurm.subprocess, "run", lambda cmd, **kw: SimpleNamespace(returncode=1, stderr="denied"))
    (run / "a" / "checkpoints" / "checkpoint-8").mkdir()
    (run / "a" / "checkpoints" / "checkpoint-8" / "trainer_state.json").write_text("{}")
    (run / "b" / "checkpoints" / "checkpoint-8").mkdir()
    (run / "b" / "checkpoints" / "checkpoint-8" / "trainer_state.json").write_text("{}")
    assert not slurm.requeue(run, 128 + signal.SIGTERM, env, log.append) and "refused" in log[-1]


def test_requeue_keeps_its_decision_in_the_run_directorys_log(tmp_path, monkeypatch):
    """`python -m ilr.slurm requeue --log L` copies the trainer's log, with its own "requeueing" line, into the run
    directory before it asks Slurm to requeue (which may end the job's shell before the rule's own copy; the
    requeued attempt restores the log from that copy)."""
    import signal

    from ilr import slurm

    run = tmp_path / "run"
    (run / "m" / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (run / "m" / "checkpoints" / "checkpoint-4" / "trainer_state.json").write_text("{}")
    log = tmp_path / "seed0.log"
    log.write_text("== attempt 1\n[ilr train] stopped on SIGTERM after step 4; checkpoint saved, exiting 143\n")
    copied_when_requeued = []
    monkeypatch.setattr(slurm.subprocess, "run", lambda cmd, **kw: copied_when_requeued.append(
        (run / "train.log").read_text()) or SimpleNamespace(returncode=0))
    monkeypatch.setattr(slurm.signal, "signal", lambda *a: None)
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with open(log, "a") as stderr:   # the rule sends the requeue's stderr to the log
        monkeypatch.setattr(sys, "stderr", stderr)
        code = slurm.main(["requeue", "--run-dir", str(run), "--exit-code", str(128 + signal.SIGTERM),
                           "--log", str(log)])
    assert code == 0 and len(copied_when_requeued) == 1
    assert "stopped on SIGTERM after step 4" in copied_when_requeued[0]
    assert "requeueing Slurm job 42" in copied_when_requeued[0]


def test_profile_appends_slurm_logs():
    extra = PROFILE["default-resources"]["slurm_extra"]
    assert "--open-mode=append" in extra and "--signal=TERM@600" in extra


def test_clean_stop_under_accelerate_is_read_from_the_log():
    """Under `accelerate launch` the launcher exits 1 after its processes stopped on the signal: the trainer's
    line in this attempt's log says the checkpoint was saved."""
    from ilr import slurm

    line = "[ilr train] stopped on SIGTERM after step 3; checkpoint saved, exiting 143 (the rerun resumes from it)"
    assert slurm.stopped_cleanly(143) and slurm.stopped_cleanly(1, "...\n" + line + "\n")
    assert not slurm.stopped_cleanly(1, "Traceback (most recent call last):") and not slurm.stopped_cleanly(0, line)


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="no Slurm client here (scontrol)")
def test_down_parks_the_conf_so_slurm_commands_fail_at_once(tmp_path):
    """After `make test-slurm` stops its cluster, a slurm.conf naming the stopped controller made every
    `scontrol` (and so every snakemake start: the slurm executor plugin asks it for MinJobAge) retry for ~9 s."""
    if subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0:
        pytest.skip("a slurmctld runs on this host: down leaves the conf of a running controller")
    conf = tmp_path / "slurm.conf"
    mark = "# written by ilr-repro scripts/slurm-provision.sh"
    conf.write_text(f"{mark} (single node, no accounting)\nClusterName=t\nSlurmctldHost=h(127.0.0.1)\n"
                    "NodeName=h NodeAddr=127.0.0.1 CPUs=1\nPartitionName=p Nodes=h Default=YES\n")
    env = {"ILR_SLURM_CONF": str(conf), "ILR_SLURM_STATE": str(tmp_path / "state"), "SLURM_CONF": str(conf),
           "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    r = subprocess.run([str(REPO / "scripts" / "slurm-provision.sh"), "down"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # still ours (`up` writes the real one again), and naming no controller
    assert conf.read_text().startswith(mark) and "SlurmctldHost" not in conf.read_text()
    r = subprocess.run(["scontrol", "show", "config"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "SlurmctldHost" in r.stderr   # refused at once, not after retrying a controller
    foreign = tmp_path / "foreign.conf"
    foreign.write_text("ClusterName=theirs\nSlurmctldHost=h\n")
    r = subprocess.run([str(REPO / "scripts" / "slurm-provision.sh"), "down"],
                       env=dict(env, ILR_SLURM_CONF=str(foreign)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and foreign.read_text() == "ClusterName=theirs\nSlurmctldHost=h\n"   # not ours
