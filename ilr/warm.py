"""A warm start for local jobs: one process imports torch, transformers, TRL and DeepSpeed once; each job forks
from it.

Why: a tiny job spends most of its time importing. Measured on the demo (2026-12-06): an evaluation job takes
10.7 s as `python -m ilr evaluate`, 6 s of it imports, and 2.6 s forked from a process that has them; a
GRPO job 16 s, of which 5 s train. With 81 jobs on 2 cores that start-up is minutes of the demo.

How (a zygote, as Android's and Python's multiprocessing forkserver): when Snakemake runs the jobs on this
machine, the workflow's `onstart` starts `python -m ilr.warm serve` (workflow/rules/common.smk) and every
rule's command is `python -m ilr.warm ilr <stage> ...` instead of `python -m ilr <stage> ...`. That client
is a bare Python (no torch): it hands the server its arguments, environment, working directory, sys.path
and its stdin/stdout/stderr (SCM_RIGHTS); the server forks; the fork takes them over and runs the module as
`python -m` would (`ilr` imported afresh from the client's sys.path); the client forwards the signals it
gets (SIGTERM, SIGINT, SIGUSR1, SIGHUP: Ctrl-C, preemption) to the fork and exits with its status once the
fork has exited. A fork whose client dies (SIGKILL) is killed too; the server exits with Snakemake.

The result is the plain run's, byte for byte (tests/test_warm.py; the demo against tests/reference): a job
the server cannot reproduce exactly runs as a plain process instead ("fallback"): no server (a cluster job,
a dry-run, `ILR_WARM=0`), another Python environment, another CPU numerics pin (ilr/numerics.py: the
libraries chose their kernels when the server imported them), or another value of a variable that the
preloaded libraries read at import (HF_*, TORCH*, ...). Threads follow the job's OMP_NUM_THREADS
(torch.set_num_threads in the fork; a job that sets neither OMP_NUM_THREADS nor MKL_NUM_THREADS, or both
to different counts, runs plain; the server itself never runs an operation, so no OpenMP pool exists before
the fork).
"""

from __future__ import annotations

import array
import gc
import json
import os
import signal
import socket
import sys

SOCKET_ENV = "ILR_WARM_SOCKET"      # set by the workflow's onstart for the jobs it runs locally
DISABLE_ENV = "ILR_WARM"            # ILR_WARM=0: every job a plain process
VERBOSE_ENV = "ILR_WARM_VERBOSE"    # ILR_WARM_VERBOSE=1: each job says on stderr whether it forked, or why not
# deepspeed: transformers' Trainer imports it whenever it is installed (0.9 s of every training job's start here);
# torch.utils.tensorboard: training.report_to's default
PRELOAD = ("torch", "transformers", "transformers.models.llama.modeling_llama", "trl.trainer.grpo_trainer",
           "accelerate", "scipy.stats", "matplotlib.pyplot", "deepspeed", "torch.utils.tensorboard")
# variables the preloaded libraries read when imported: a job that sets any of them otherwise runs plain
IMPORT_TIME_ENV = ("HF_", "TRANSFORMERS_", "TORCH", "PYTORCH_", "TRL_", "ACCELERATE_", "CUDA", "KMP_", "MKL_",
                   "OMP_", "ATEN_", "ONEDNN_", "DNNL_", "MPLBACKEND", "PYTHONHASHSEED", "DS_")
PER_JOB_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")   # applied in the fork with torch.set_num_threads
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP)


def _send(sock: socket.socket, msg: dict, fds: list[int] = ()) -> None:
    data = json.dumps(msg).encode() + b"\n"
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(data)


class _Lines:
    """JSON lines from a socket (and the fds that came with the first)."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf, self.fds = sock, b"", []

    def next(self) -> dict | None:
        while b"\n" not in self.buf:
            data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(3 * array.array("i").itemsize))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                    self.fds.extend(fds)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


# ------------------------------------------------------------------------------------------- the client

def run(argv: list[str]) -> int:
    """`python -m ilr.warm [-m] MODULE ARGS...`: MODULE run as `python -m MODULE ARGS...` would, forked from
    the server where there is one that can, else exec'd as exactly that."""
    if argv[0] == "-m":
        argv = argv[1:]
    module, args = argv[0], argv[1:]
    path, why = os.environ.get(SOCKET_ENV), "no server"
    if path and os.environ.get(DISABLE_ENV, "1") != "0":
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
        except OSError as e:
            why = f"no server listening ({e.strerror})"     # not (yet): plain
        else:
            rc, why = _run_forked(sock, module, args)
            if rc is not None:
                return rc
    _say(f"plain process: {why}")
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


def _say(text: str) -> None:
    if os.environ.get(VERBOSE_ENV) == "1":
        print(f"ilr.warm: {text}", file=sys.stderr, flush=True)


def _run_forked(sock: socket.socket, module: str, args: list[str]) -> tuple[int | None, str]:
    """(the fork's exit status, "") or (None, why the server would not fork it)."""
    # a signal that comes before the fork's pid does is held, then forwarded (not lost with this process)
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    try:
        return _request(sock, module, args)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)


def _request(sock: socket.socket, module: str, args: list[str]) -> tuple[int | None, str]:
    request = {"module": module, "argv": args, "cwd": os.getcwd(), "env": dict(os.environ),
               "path": sys.path, "prefix": sys.prefix}
    _send(sock, request, [fd if _is_open(fd) else os.open(os.devnull, os.O_RDWR) for fd in (0, 1, 2)])
    lines = _Lines(sock)
    reply = lines.next()
    if reply is None or "fallback" in reply:
        return None, (reply or {}).get("fallback", "the server closed the connection")
    pid, rc = reply.get("pid"), reply.get("rc")
    _say(f"forked from the server as pid {pid}")
    if pid is not None:
        def forward(sig, _frame):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass                 # it has just exited

        for sig in FORWARDED:
            signal.signal(sig, forward)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    while True:
        msg = lines.next()       # a forwarded signal interrupts nothing here: Python retries the call (PEP 475)
        if msg is None:          # the fork has exited (its end of the socket closed)
            break
        rc = msg.get("rc", rc)
    if rc is None:
        print(f"ilr.warm: job process {pid} ended without an exit status (killed by a signal?)", file=sys.stderr)
        return 1, ""
    return rc, ""


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------- the server

def serve(path: str, parent: int) -> None:
    """Import PRELOAD (the numerics pinned by `start` in the environment), then fork a job per connection
    until the process `parent` (Snakemake) exits."""
    import importlib

    before = dict(os.environ)
    import_env = _import_time_env(before)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass                 # an optional library: the jobs import it themselves
    # what the imports themselves set (torch: TORCHINDUCTOR_CACHE_DIR): a plain job's imports would set it too
    set_by_imports = {k: v for k, v in os.environ.items() if k not in before}
    # The imports leave ~430,000 objects that live as long as the process. Frozen, the garbage collector never scans
    # them again: in a fork, each full collection (transformers' Trainer forces one at the start of training;
    # Python runs them as a job's objects pile up) took 0.4 s of scanning them, and pages stay shared (gc.freeze).
    gc.collect()
    gc.freeze()
    me = os.getpid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{path}.{os.getpid()}"
    listener.bind(tmp)
    listener.listen(64)
    os.replace(tmp, path)        # clients see the socket only once it listens
    listener.settimeout(1.0)
    try:
        while os.getppid() == parent:
            _reap()
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            _serve_one(conn, listener, import_env, set_by_imports)
    finally:
        if os.getpid() == me:        # never in a fork (they leave by os._exit), but say so
            listener.close()
            if os.path.exists(path):
                os.unlink(path)
            try:
                os.rmdir(os.path.dirname(path))      # start's directory, when stop has not removed it
            except OSError:
                pass


def _import_time_env(env) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV) and k not in PER_JOB_ENV}


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _serve_one(conn: socket.socket, listener: socket.socket, import_env: dict[str, str],
               set_by_imports: dict[str, str]) -> None:
    lines = _Lines(conn)
    conn.settimeout(10.0)            # a client sends its request at once
    try:
        req = lines.next()
    except (OSError, ValueError):
        req = None
    conn.settimeout(None)
    if req is None:
        conn.close()
        return
    env = _job_env(req)
    why = _why_not(req, env, import_env)
    if why:
        _send(conn, {"fallback": why})
        for fd in lines.fds:
            os.close(fd)
        conn.close()
        return
    pid = os.fork()
    if pid == 0:
        listener.close()
        _child(conn, req, {**set_by_imports, **env}, lines.fds)          # never returns
    for fd in lines.fds:
        os.close(fd)
    conn.close()


def _job_env(req: dict) -> dict[str, str]:
    """The environment the job's libraries would see: the client's, plus the numerics that `python -m ilr`
    pins from its `--config` before it imports torch (ilr/numerics.py)."""
    from ilr import numerics

    env = dict(req["env"])
    if req["module"] == "ilr":
        env.update(numerics.environment(numerics.requested(req["argv"], req["cwd"]) or {}))
    return env


def _why_not(req: dict, env: dict[str, str], import_env: dict[str, str]) -> str | None:
    """Why this request cannot run in a fork of this server (None: it can)."""
    if req["prefix"] != sys.prefix:
        return f"another Python environment ({req['prefix']})"
    threads = {env.get(k) for k in PER_JOB_ENV} - {None}
    if len(threads) != 1 or not threads.pop().isdigit():
        return "OMP_NUM_THREADS / MKL_NUM_THREADS unset or different (the thread count torch would take)"
    if _import_time_env(env) != import_env:
        diff = sorted(set(_import_time_env(env).items()) ^ set(import_env.items()))
        return f"the environment differs in {', '.join(sorted({k for k, _ in diff}))}"
    return None


def _child(conn: socket.socket, req: dict, env: dict[str, str], fds: list[int]) -> None:
    rc = 1
    try:
        os.setpgid(0, 0)
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(env)
        sys.path[:] = req["path"]
        for name in [m for m in sys.modules if m == "ilr" or m.startswith("ilr.")]:
            del sys.modules[name]       # the job's own code, from its sys.path, not the server's
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.environ["MKL_NUM_THREADS"]))
        _send(conn, {"pid": os.getpid()})
        _watch_client(conn)
        rc = _run_module(req["module"], req["argv"])
    except BaseException as e:        # anything the job did not handle itself: as an uncaught exception would
        import traceback

        traceback.print_exc()
        rc = 128 + signal.SIGINT if isinstance(e, KeyboardInterrupt) else 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            _send(conn, {"rc": rc})
        except OSError:
            pass
    _exit(rc)


def _exit(rc: int) -> None:
    """An interpreter's exit without its module teardown (~1.5 s with torch loaded, for nothing: the process
    ends): non-daemon threads joined, atexit handlers run, files flushed. `conn` closes with the process,
    which is when the client exits."""
    import atexit
    import threading

    try:
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(rc)


def _run_module(module: str, argv: list[str]) -> int:
    import runpy

    sys.argv = [module, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    return 0


def _watch_client(conn: socket.socket) -> None:
    """Kill this fork when its client goes away (killed) before it: a plain job would have died with it."""
    import threading

    def watch():
        try:
            while conn.recv(1):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="ilr-warm-client").start()


# ------------------------------------------------------------------------------------ start/stop (Snakefile)

def start(numerics: dict):
    """Start a server for this process's jobs (sets SOCKET_ENV here, so the jobs inherit it); returns the
    server's Popen (stop it with `stop`), or None where warm starts are off (ILR_WARM=0)."""
    import subprocess
    import tempfile

    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None
    from ilr import numerics as numerics_mod

    # a short path: a Unix socket's name is limited to ~100 bytes
    path = os.path.join(tempfile.mkdtemp(prefix="ilr-warm-"), "s")
    env = dict(os.environ, **numerics_mod.environment(numerics))
    proc = subprocess.Popen([sys.executable, "-m", "ilr.warm", "serve", path, str(os.getpid())], env=env,
                            start_new_session=True, stdin=subprocess.DEVNULL)
    os.environ[SOCKET_ENV] = path
    proc.ilr_socket = path
    return proc


def stop(proc) -> None:
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except Exception:
        proc.kill()
    os.environ.pop(SOCKET_ENV, None)
    d = os.path.dirname(proc.ilr_socket)
    for name in os.listdir(d) if os.path.isdir(d) else []:
        os.unlink(os.path.join(d, name))
    if os.path.isdir(d):
        os.rmdir(d)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"] and len(argv) == 3:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        serve(argv[1], int(argv[2]))
        return 0
    if not argv or argv[0].startswith("-") and (argv[0] != "-m" or len(argv) < 2):
        print("usage: python -m ilr.warm [-m] MODULE [ARGS...]   (a job)\n"
              "       python -m ilr.warm serve SOCKET PARENT_PID   (the server; the workflow starts it)", file=sys.stderr)
        return 2
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
