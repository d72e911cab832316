"""Run model-written Python programs in a contained process.

Each program runs in its own process, started through an intermediate wrapper process
(`_sandbox_wrapper.py`) so that a program that kills its parent kills only the wrapper. Limits:
- wall time (the wrapper's timer, plus a guard in this process), CPU time (RLIMIT_CPU), address
  space (RLIMIT_AS/RLIMIT_DATA), file size (RLIMIT_FSIZE), open files (RLIMIT_NOFILE), processes
  (RLIMIT_NPROC; enforced for non-root users only, hence the drop to nobody below), no core dumps;
- output: stdout/stderr are read through pipes up to `output_bytes`; past that the program is killed;
- its own temporary working directory (HOME and TMPDIR point there), deleted afterwards;
- a clean environment: only PATH, HOME, TMPDIR, LANG (nothing inherited), Python in isolated mode (-I);
- network: a new network namespace (no interfaces but a down loopback) where unshare is permitted
  (root, or CAP_SYS_ADMIN), with a new pid namespace too, so that every process the program
  started dies with it;
- when run as root: the program runs as user/group nobody (setgroups([]), setgid, setuid before
  exec), so root-owned files (the project, the data) can be neither written nor deleted.
`SandboxResult.isolation` lists what was in force. What it cannot do is in docs/grading.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

WRAPPER = Path(__file__).with_name("_sandbox_wrapper.py")


@dataclasses.dataclass
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30          # 1 GiB of address space
    file_bytes: int = 16 << 20           # largest file the program may write
    output_bytes: int = 1 << 20          # stdout + stderr kept; more kills the program
    nproc: int = 64                      # processes beyond those the sandbox user already has
    network_namespace: bool = True
    pid_namespace: bool = True
    drop_to: str = "nobody"              # user when running as root
    python: str | None = None            # interpreter; default: this one, or a system python3 that
                                         # the sandbox user can execute (e.g. when the venv is under /root)


@dataclasses.dataclass
class SandboxResult:
    ok: bool                 # exited with status 0, in time, within limits
    exit_code: int | None
    signal: int | None
    timed_out: bool
    output_exceeded: bool
    stdout: str
    stderr: str
    reason: str | None       # set when not ok
    wall: float
    isolation: list[str]


def _others_can_exec(path: str) -> bool:
    real = os.path.realpath(path)
    p = Path(real)
    try:
        if not os.stat(p).st_mode & 0o001:
            return False
        return all(os.stat(d).st_mode & 0o001 for d in p.parents)
    except OSError:
        return False


def pick_python(dropping: bool) -> str:
    """The interpreter for sandboxed programs: this one unless the sandbox user cannot reach it."""
    if not dropping:
        return sys.executable
    for cand in (sys.executable, shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or ""):
        if cand and _others_can_exec(cand):
            return cand
    raise RuntimeError("no Python interpreter that user nobody can execute; set Limits.python")


def _count_procs(uid: int) -> int:
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


def _kill_group(pid: int | None) -> None:
    if pid:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _reason(res: dict | None, stderr: str, output_exceeded: bool, limits: Limits) -> str | None:
    if output_exceeded:
        return f"output limit exceeded (> {limits.output_bytes} bytes)"
    if res is None or "exit" not in res:
        return "sandbox wrapper was killed (did the program kill its parent?)"
    if res.get("timed_out"):
        return f"timeout (wall time > {limits.wall_seconds:g} s)"
    sig = res.get("signal")
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and res.get("cpu", 0) >= limits.cpu_seconds - 0.05):
        return f"CPU time limit exceeded (> {limits.cpu_seconds} s)"
    if sig == signal.SIGXFSZ:
        return f"file size limit exceeded (> {limits.file_bytes} bytes)"
    if sig is not None:
        return f"killed by signal {signal.Signals(sig).name}"
    if res.get("exit") != 0:
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        tail = last[-1].strip() if last else ""
        if "MemoryError" in stderr:
            tail = "MemoryError (memory limit)" if not tail.startswith("MemoryError") else tail + " (memory limit)"
        return f"exit status {res.get('exit')}" + (f": {tail[:300]}" if tail else "")
    return None


def run_python(code: str, limits: Limits | None = None, stdin: str | None = None) -> SandboxResult:
    """Run `code` as a Python program (file main.py in a fresh directory) under `limits`."""
    limits = limits or Limits()
    workdir = tempfile.mkdtemp(prefix="ilr-sandbox-")
    t0 = time.monotonic()
    uid = gid = None
    try:
        prog = Path(workdir) / "main.py"
        prog.write_text(code, encoding="utf-8")
        if os.geteuid() == 0:
            pw = pwd.getpwnam(limits.drop_to)
            uid, gid = pw.pw_uid, pw.pw_gid
            os.chown(workdir, uid, gid)
            os.chown(prog, uid, gid)
            os.chmod(workdir, 0o700)
        nproc = limits.nproc + _count_procs(uid if uid is not None else os.getuid())
        status_r, status_w = os.pipe()
        cfg = {
            "status_fd": status_w, "workdir": workdir, "wall_seconds": limits.wall_seconds,
            "cpu_seconds": int(limits.cpu_seconds), "memory_bytes": int(limits.memory_bytes),
            "file_bytes": int(limits.file_bytes), "nproc": nproc, "uid": uid, "gid": gid,
            "network_namespace": limits.network_namespace, "pid_namespace": limits.pid_namespace,
            "argv": [limits.python or pick_python(uid is not None), "-I", "-B", "main.py"],
            "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
                    "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"},
        }
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", str(WRAPPER), repr(cfg)],
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(status_w,),
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd=workdir, close_fds=True)
        finally:
            os.close(status_w)
        if stdin is not None:
            try:
                proc.stdin.write(stdin.encode())
                proc.stdin.close()
            except OSError:
                pass
        out, err, status_buf = bytearray(), bytearray(), bytearray()
        streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err, status_r: status_buf}
        open_fds = set(streams)
        child_pid, final, output_exceeded = None, None, False
        guard = t0 + limits.wall_seconds + 5.0
        while open_fds:
            left = guard - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(list(open_fds), [], [], min(left, 1.0))
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.discard(fd)
                    continue
                buf = streams[fd]
                buf += chunk
                if fd == status_r:
                    lines = bytes(buf).split(b"\n")
                    for ln in lines[:-1]:
                        msg = json.loads(ln)
                        if "pid" in msg:
                            child_pid, isolation = msg["pid"], msg["isolation"]
                        else:
                            final = msg
                    del buf[:len(bytes(buf)) - len(lines[-1])]
                elif len(out) + len(err) > limits.output_bytes:
                    output_exceeded = True
            if output_exceeded:
                _kill_group(child_pid)
                break
            if final is not None and status_r not in open_fds:
                # the wrapper is done; pipes may still be held by stray descendants: take what is there
                rest = [fd for fd in open_fds if fd != status_r]
                if not rest or not select.select(rest, [], [], 0.05)[0]:
                    break
        _kill_group(child_pid)
        try:
            proc.kill()
        except OSError:
            pass
        proc.wait()
        os.close(status_r)
        proc.stdout.close()
        proc.stderr.close()
        if proc.stdin:
            try:
                proc.stdin.close()
            except OSError:
                pass
        stdout = bytes(out[:limits.output_bytes]).decode("utf-8", "replace")
        stderr = bytes(err[:limits.output_bytes]).decode("utf-8", "replace")
        if final is None and not output_exceeded and time.monotonic() >= guard:
            reason = f"timeout (wall time > {limits.wall_seconds:g} s)"
        else:
            reason = _reason(final, stderr, output_exceeded, limits)
        return SandboxResult(
            ok=reason is None, exit_code=(final or {}).get("exit"), signal=(final or {}).get("signal"),
            timed_out=bool((final or {}).get("timed_out")), output_exceeded=output_exceeded,
            stdout=stdout, stderr=stderr, reason=reason, wall=time.monotonic() - t0,
            isolation=(locals().get("isolation") or []) + (["user:" + limits.drop_to] if uid is not None else []))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def check_program(program: str, tests: list[str], setup: str = "", limits: Limits | None = None) -> SandboxResult:
    """Run the program, `setup`, then the assert lines; ok only if every test passes and the run reaches
    its end (a random marker printed after the last test guards against an early `exit(0)`)."""
    marker = "ILR-TESTS-PASSED-" + uuid.uuid4().hex
    # the setup goes after the program: MBPP's one setup (task 367) builds trees with the program's class
    code = "\n".join([program, "", setup or "", *tests, "", f"print({marker!r})", ""])
    res = run_python(code, limits)
    if res.ok and marker not in res.stdout.splitlines()[-1:]:
        res.ok = False
        res.reason = "the program ended before the tests finished (exit during the tests?)"
    return res
