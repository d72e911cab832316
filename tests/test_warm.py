"""The warm start (ilr/warm.py): a job forked from the server behaves as the plain `python -m` process would:
the same output, exit status, environment, working directory, threads and signals; a job the server cannot
reproduce runs plain; a stage writes the same bytes either way. (The whole demo through it: make check-reference.)"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ilr import numerics, warm

NUMERICS = {"cpu_isa": "avx2", "threads": 1}
PROBE = textwrap.dedent("""
    import json, os, signal, sys, time
    import torch
    if sys.argv[1:2] == ["sleep"]:
        signal.signal(signal.SIGTERM, lambda *a: (print("TERM", flush=True), sys.exit(143)))
        print("ready", os.getpid(), flush=True)
        time.sleep(60)
    if sys.argv[1:2] == ["raise"]:
        raise ValueError("a bug")
    torch.manual_seed(0)
    x = torch.randn(128, 128)
    sys.stderr.write("to stderr\\n")
    print(json.dumps({"ppid": os.getppid(), "cwd": os.getcwd(), "var": os.environ.get("PROBE_VAR"),
                      "threads": torch.get_num_threads(), "sum": (x @ x).sum().item(),
                      "stdin": sys.stdin.read()}))
    sys.exit(int(sys.argv[1]) if sys.argv[1:2] and sys.argv[1].isdigit() else 0)
""")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("warm")
    (d / "probe.py").write_text(PROBE)
    saved = dict(os.environ)
    proc = warm.start(NUMERICS)
    deadline = time.time() + 180
    while not os.path.exists(proc.ilr_socket):
        assert proc.poll() is None and time.time() < deadline, "the warm server did not come up"
        time.sleep(0.2)
    env = dict(os.environ, **numerics.environment(NUMERICS), PYTHONPATH=str(d))
    yield proc, d, env
    warm.stop(proc)
    os.environ.clear()
    os.environ.update(saved)
    assert proc.poll() is not None and not os.path.exists(proc.ilr_socket)


def probe(d, env, *args, warm_start=True, **kw):
    cmd = [sys.executable, "-m", "ilr.warm" if warm_start else "probe", *(["probe"] if warm_start else []), *args]
    return subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=120, **kw)


def test_a_fork_runs_as_the_plain_process(server):
    proc, d, env = server
    env = dict(env, PROBE_VAR="x", OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    forked = probe(d, env, "3", input="stdin text")
    plain = probe(d, dict(env, **{warm.SOCKET_ENV: ""}), "3", input="stdin text")
    import json

    f, p = json.loads(forked.stdout), json.loads(plain.stdout)
    assert f["ppid"] == proc.pid and p["ppid"] != proc.pid        # forked from the server / not
    assert forked.returncode == plain.returncode == 3
    assert forked.stderr == plain.stderr == "to stderr\n"
    for k in ("cwd", "var", "threads", "sum", "stdin"):
        assert f[k] == p[k], k
    assert f["threads"] == 2 and f["stdin"] == "stdin text" and f["cwd"] == str(d)


def test_an_uncaught_exception_exits_1_with_its_traceback(server):
    _, d, env = server
    r = probe(d, env, "raise")
    assert r.returncode == 1 and "ValueError: a bug" in r.stderr


def test_signals_reach_the_fork_and_a_killed_client_takes_it_along(server):
    _, d, env = server
    c = subprocess.Popen([sys.executable, "-m", "ilr.warm", "probe", "sleep"], cwd=d, env=env,
                         stdout=subprocess.PIPE, text=True)
    pid = int(c.stdout.readline().split()[1])
    c.send_signal(signal.SIGTERM)
    assert c.stdout.read() == "TERM\n" and c.wait(timeout=30) == 143

    c = subprocess.Popen([sys.executable, "-m", "ilr.warm", "probe", "sleep"], cwd=d, env=env,
                         stdout=subprocess.PIPE, text=True)
    pid = int(c.stdout.readline().split()[1])
    c.kill()
    c.wait()
    deadline = time.time() + 30
    while Path(f"/proc/{pid}").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_what_the_server_cannot_reproduce_runs_plain(server):
    import json

    proc, d, env = server
    other_isa = dict(env, **numerics.environment({"cpu_isa": "default", "threads": 1}))
    import_time = dict(env, HF_HUB_OFFLINE="1" if env.get("HF_HUB_OFFLINE") != "1" else "0")
    threads_unknown = {k: v for k, v in env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for e in (other_isa, import_time, threads_unknown):
        r = probe(d, e)
        assert r.returncode == 0 and json.loads(r.stdout)["ppid"] != proc.pid


def test_the_server_exits_with_its_parent(tmp_path):
    code = ("import os, sys, time; from ilr import warm; p = warm.start({'threads': 1}); "
            "print(p.pid, p.ilr_socket, flush=True); time.sleep(1)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.split()
    pid, sock = int(out[0]), out[1]
    deadline = time.time() + 120   # it notices once its imports are done and it listens
    while Path(f"/proc/{pid}").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() and not os.path.exists(sock)


def test_a_stage_forked_writes_the_bytes_of_a_plain_run(server, tmp_path):
    """`ilr build-model` (torch training, the config's numerics pins): the same weights forked or plain."""
    import hashlib

    import yaml

    _, _, env = server
    repo = Path(__file__).resolve().parents[1]
    c = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    assert c["numerics"] == NUMERICS        # the server's pins: else the job would run plain
    c["models"]["tiny-llama"]["build"]["warmup_steps"] = 30
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(c))
    env = {k: v for k, v in env.items() if k not in numerics.environment(NUMERICS)}   # as a rule's shell has it
    env.update(PYTHONPATH=str(repo), OMP_NUM_THREADS="1", ILR_WARM_VERBOSE="1")
    digests = []
    for socket_path in (env[warm.SOCKET_ENV], ""):
        out = tmp_path / f"model{len(digests)}"
        r = subprocess.run([sys.executable, "-m", "ilr.warm", "ilr", "build-model", "--config", "c.yaml",
                            "--model", "tiny-llama", "--out", str(out)], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600, env=dict(env, **{warm.SOCKET_ENV: socket_path}))
        assert r.returncode == 0, r.stderr[-2000:]
        assert ("ilr.warm: forked" if socket_path else "ilr.warm: plain process") in r.stderr
        digests.append(hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
