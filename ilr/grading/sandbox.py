"""Run model-written Python programs in a contained process that cannot see the machine.

Each program runs in its own process, started through an intermediate wrapper process
(`_sandbox_wrapper.py`) so that a program that kills its parent kills only the wrapper.

What the program sees (Linux with namespaces: as root, or as a user where unprivileged user
namespaces are allowed): its own root file system, a size-limited tmpfs that holds read-only views of
the OS runtime (/usr, the /lib and /bin links, /etc/ld.so.cache) and of the interpreter's install
prefix with its site-packages hidden (the standard library only), its own /proc (its own processes
only), a minimal /dev with its own /dev/shm, its own /tmp, and its working directory /sandbox. Nothing
else of the host: no project, no data, no results, no /home, /root, /etc or /sys. Everything it writes
is in that tmpfs and vanishes with its last process. New pid, network (no interface up), IPC and UTS
namespaces too; as root the program runs as user nobody.

Limits (`Limits`): wall time (the wrapper's timer, plus a guard in this process), CPU time
(RLIMIT_CPU), address space (RLIMIT_AS/RLIMIT_DATA), file size (RLIMIT_FSIZE), scratch space (the
tmpfs size), open files, processes (RLIMIT_NPROC; binding for non-root users only, hence nobody),
output (stdout/stderr read through pipes up to `output_bytes`, more kills the program), no core
files, no new privileges (setuid programs gain nothing); a clean environment, Python in isolated mode.

Where the platform allows no namespaces (`probe()` finds out once per process), programs still run,
with the older, weaker containment (own directory, limits, nobody when root) — and every result says
so: `SandboxResult.warning` is set, a RuntimeWarning is issued once, and the grade's reason carries it.
`Limits.require_isolation` refuses to run instead. What it cannot do is in docs/grading.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pwd
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

WRAPPER = Path(__file__).with_name("_sandbox_wrapper.py")
_ROOT = str(Path(__file__).resolve().parents[2])  # the project: must not be visible to programs
log = logging.getLogger("ilr.grading.sandbox")


@dataclasses.dataclass
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30          # 1 GiB of address space
    file_bytes: int = 16 << 20           # largest file the program may write
    scratch_bytes: int = 64 << 20        # all it may write together (its tmpfs: /sandbox, /tmp, /dev/shm)
    output_bytes: int = 1 << 20          # stdout + stderr kept; more kills the program
    nproc: int = 64                      # processes beyond those the sandbox user already has
    hide_machine: bool = True            # own root file system (mount namespace); False: the weaker mode
    network_namespace: bool = True
    pid_namespace: bool = True
    drop_to: str = "nobody"              # user when running as root
    require_isolation: bool = False      # refuse to run (rather than warn) where the machine cannot be hidden
    mode: str | None = None              # force a wrapper mode ("root", "userns", "none"): tests
    python: str | None = None            # interpreter; default: this one's base interpreter where it can
                                         # be mounted, else a system python3 the sandbox user can execute


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
    warning: str | None = None   # set when the program could see the machine (no mount namespace)


# ----------------------------------------------------------------------------------- interpreter
def _others_can_exec(path: str) -> bool:
    real = os.path.realpath(path)
    p = Path(real)
    try:
        if not os.stat(p).st_mode & 0o001:
            return False
        return all(os.stat(d).st_mode & 0o001 for d in p.parents)
    except OSError:
        return False


def _system_python() -> str:
    return shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or ""


def pick_python(dropping: bool) -> str:
    """The interpreter for the weaker mode: this one unless the sandbox user cannot reach it."""
    if not dropping:
        return sys.executable
    for cand in (sys.executable, _system_python()):
        if cand and _others_can_exec(cand):
            return cand
    raise RuntimeError("no Python interpreter that user nobody can execute; set Limits.python")


def _base_python() -> str:
    """The real interpreter binary behind this (virtual-environment) one: what gets mounted."""
    return os.path.realpath(sys.executable)


_site_cache: dict[str, list[str]] = {}


def _site_dirs(python: str) -> list[str]:
    """The interpreter's site-packages directories (hidden in the sandbox: the standard library only)."""
    if python not in _site_cache:
        code = "import json, site; print(json.dumps(site.getsitepackages()))"
        try:
            out = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, timeout=60).stdout
            _site_cache[python] = [os.path.realpath(p) for p in json.loads(out)]
        except (OSError, ValueError, subprocess.SubprocessError):
            _site_cache[python] = []
    return _site_cache[python]


def _prefix_of(python: str) -> str:
    """The install prefix of an interpreter binary (…/bin/python3.11 -> …)."""
    return str(Path(python).parent.parent)


def _binds(python: str) -> list[str]:
    """Host paths the program sees, read-only, at the same place: the OS runtime and the interpreter."""
    out = [p for p in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache")
           if os.path.lexists(p)]
    prefix = _prefix_of(python)
    if not any(prefix == b or prefix.startswith(b + "/") for b in out):
        out.append(prefix)
    return out


# ----------------------------------------------------------------------------------------- probe
_PROBE = f"""
import json, os
print(json.dumps({{"uid": os.getuid(), "project": os.path.exists({_ROOT!r}), "root": sorted(os.listdir("/")),
                  "proc": sorted(p for p in os.listdir("/proc") if p.isdigit()) if os.path.isdir("/proc/self")
                  else None}}))
"""
_probe_lock = threading.Lock()
_probed: dict = {}
_warned: set = set()


@dataclasses.dataclass
class Platform:
    mode: str                 # "root" | "userns" | "none"
    python: str               # the interpreter programs run with
    notes: list[str]          # what is missing, e.g. "no /proc"
    warning: str | None       # set when the machine cannot be hidden


def _candidate_modes() -> list[str]:
    if os.geteuid() == 0:
        return ["root", "userns"]
    return ["userns"]


def probe(limits: Limits | None = None) -> Platform:
    """Which wrapper mode hides the machine here (tried once per process and cached): a tiny program
    runs in each candidate mode and must see neither the project nor the host's processes."""
    limits = limits or Limits()
    key = (limits.mode, limits.hide_machine, limits.drop_to, limits.python)
    with _probe_lock:
        if key in _probed:
            return _probed[key]
        root = os.geteuid() == 0
        failures = []
        modes = [limits.mode] if limits.mode else (_candidate_modes() if limits.hide_machine else [])
        found = None
        for mode in modes:
            if mode == "none":
                break
            python = limits.python or (_base_python() if mode == "root" or not root else
                                       pick_python(dropping=True))
            res = _run(_PROBE, dataclasses.replace(limits, wall_seconds=30, cpu_seconds=10, output_bytes=1 << 16),
                       mode, python)
            try:
                seen = json.loads(res.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                failures.append(f"{mode}: {(res.stderr.strip().splitlines() or [res.reason or '?'])[-1][:200]}")
                continue
            if seen["project"]:
                failures.append(f"{mode}: the project was still visible")
                continue
            notes = [] if seen["proc"] is not None else ["no /proc (the platform refused a new one)"]
            found = Platform(mode, python, notes, None)
            break
        if found is None:
            why = "; ".join(failures) or ("Limits.hide_machine is False" if not limits.hide_machine
                                          else "forced mode 'none'")
            warning = ("sandbox cannot hide the machine (no mount namespace: " + why + "): the program can read "
                       "every world-readable file (project, data) and leave files in /tmp and /dev/shm")
            python = limits.python or pick_python(dropping=root and limits.drop_to != "root")
            found = Platform("none", python, [], warning)
        _probed[key] = found
        return found


def _warn_once(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


# ------------------------------------------------------------------------------------------- run
def _count_procs(uid: int) -> int:
    """Processes of `uid` now (RLIMIT_NPROC counts them all, not just the program's)."""
    n = 0
    if not os.path.isdir("/proc"):
        return 0
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
    if res.get("setup"):
        return res["setup"]
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
        elif "No space left on device" in stderr:
            tail += f" (scratch space limit, {limits.scratch_bytes} bytes)"
        return f"exit status {res.get('exit')}" + (f": {tail[:300]}" if tail else "")
    return None


def run_python(code: str, limits: Limits | None = None, stdin: str | None = None) -> SandboxResult:
    """Run `code` as a Python program (main.py in its own working directory) under `limits`."""
    limits = limits or Limits()
    platform = probe(limits)
    if platform.warning:
        if limits.require_isolation:
            return SandboxResult(False, None, None, False, False, "", "", "refused: " + platform.warning, 0.0, [],
                                 platform.warning)
        _warn_once(platform.warning)
    res = _run(code, limits, platform.mode, platform.python, stdin)
    res.warning = platform.warning
    res.isolation += [f"note: {n}" for n in platform.notes]
    return res


def _run(code: str, limits: Limits, mode: str, python: str, stdin: str | None = None) -> SandboxResult:
    """One run in a given wrapper mode (see _sandbox_wrapper.py)."""
    # main.py, the mount point of the new root (and, in mode none, the program's directory)
    staging = tempfile.mkdtemp(prefix=f"ilr-sandbox-{os.getpid()}-")
    t0 = time.monotonic()
    uid = gid = None
    isolation: list[str] = []
    try:
        prog = Path(staging) / "main.py"
        prog.write_text(code, encoding="utf-8")
        os.mkdir(Path(staging) / "root")  # the mount point of the program's new root
        if os.geteuid() == 0 and limits.drop_to != "root":
            pw = pwd.getpwnam(limits.drop_to)
            uid, gid = pw.pw_uid, pw.pw_gid
            if mode != "root":  # the wrapper (userns) or the program (none) reads it as that user
                for p in (staging, prog, Path(staging) / "root"):
                    os.chown(p, uid, gid)
            os.chmod(staging, 0o700)
        nproc = limits.nproc + _count_procs(uid if uid is not None else os.getuid())
        workdir = "/sandbox" if mode in ("root", "userns") else staging
        status_r, status_w = os.pipe()
        cfg = {
            "mode": mode, "status_fd": status_w, "workdir": staging, "root": str(Path(staging) / "root"),
            "program": str(prog), "binds": _binds(python), "hide": _site_dirs(python),
            "scratch_bytes": int(limits.scratch_bytes), "scratch_inodes": 4096,
            "wall_seconds": limits.wall_seconds,
            "cpu_seconds": int(limits.cpu_seconds), "memory_bytes": int(limits.memory_bytes),
            "file_bytes": int(limits.file_bytes), "nproc": nproc, "uid": uid, "gid": gid,
            "network_namespace": limits.network_namespace, "pid_namespace": limits.pid_namespace,
            "argv": [python, "-I", "-B", "main.py"],
            "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": "/tmp" if mode != "none"
                    else workdir, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"},
        }
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", str(WRAPPER), repr(cfg)],
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, pass_fds=(status_w,),
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd=staging, close_fds=True)
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
            isolation=isolation + (["user:" + limits.drop_to] if uid is not None else []))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def compose(program: str, tests: list[str], setup: str = "") -> tuple[str, str]:
    """The text `check_program` runs: the program, `setup`, the assert lines, then a random marker printed after
    the last test (it guards against an early `exit(0)`); returns (text, marker)."""
    marker = "ILR-TESTS-PASSED-" + uuid.uuid4().hex
    # the setup goes after the program: MBPP's one setup (task 367) builds trees with the program's class
    return "\n".join([program, "", setup or "", *tests, "", f"print({marker!r})", ""]), marker


def run_composed(code: str, marker: str, limits: Limits | None = None) -> SandboxResult:
    """Run a `compose`d text: ok only if every test passes and the run reaches its end (prints `marker`)."""
    res = run_python(code, limits)
    if res.ok and marker not in res.stdout.splitlines()[-1:]:
        res.ok = False
        res.reason = "the program ended before the tests finished (exit during the tests?)"
    return res


def check_program(program: str, tests: list[str], setup: str = "", limits: Limits | None = None) -> SandboxResult:
    """Run the program, `setup`, then the assert lines (`compose`, `run_composed`)."""
    return run_composed(*compose(program, tests, setup), limits)


# ------------------------------------------------------------------------------ compile-only pass
# A program Python refuses to compile fails before its first line runs: exit status 1 and the SyntaxError on
# stderr, whatever its tests. Small models write many such programs (47 of the 50 a tiny model wrote for
# arith_code), and a sandbox costs two interpreters and a set of namespaces each (~40 ms here), so
# `syntax_errors` compiles a batch of programs in one sandboxed run, never executing them, and gives each
# refused one the result its own run would give. Compiling happens inside the sandbox too: a program crafted to
# crash or stall the compiler ends that one run (then every program of the batch runs on its own, as without
# this pass). compile() reads a string where the interpreter reads a file, and the two report a source's
# encoding problems in other words ("unknown encoding" / "encoding problem"): sources that declare an encoding
# or start with a BOM, hold a NUL byte or cannot be written as UTF-8 are not judged here. Nor is a source that
# names MemoryError or a full disk: a run's stderr shows the offending line, which `_reason` reads for them.
# They run (tests/test_sandbox.py holds the pass to each program's own run).
SYNTAX_BATCH = 64                 # programs a compile-only run takes (its output: at most 64 x SYNTAX_TEXT_MAX)
SYNTAX_TEXT_MAX = 4096            # an error text longer than this (a message quoting a long name): the program runs
_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=]", re.M)   # PEP 263's declaration, on the first two lines
_COMPILE_ONLY = f"""
import json, sys
verdicts = []
for source in json.loads(sys.stdin.read()):
    try:
        compile(source, "main.py", "exec", dont_inherit=True)   # no flags of this file
        verdicts.append(None)
    except SyntaxError as e:   # IndentationError and TabError too: the last line the interpreter prints
        text = f'  File "main.py", line {{e.lineno}}\\n{{type(e).__name__}}: {{e.msg}}\\n'
        verdicts.append(text if len(text) <= {SYNTAX_TEXT_MAX} else False)
    except BaseException:      # MemoryError, RecursionError, ...: the program's own run tells
        verdicts.append(False)
print(json.dumps(verdicts))
"""


def _judgeable(code: str) -> bool:
    """Whether compile() reads this source as the interpreter reads its file (see above)."""
    try:
        code.encode("utf-8")
    except UnicodeEncodeError:
        return False
    head = "\n".join(code.split("\n", 2)[:2])
    return not (_CODING.search(head) or code.startswith("\ufeff") or "\x00" in code
                or "MemoryError" in code or "No space left on device" in code)


def syntax_errors(codes: list[str], limits: Limits | None = None) -> list[SandboxResult | None]:
    """For each program text (as `compose` makes it): the result of its own run if Python refuses to compile it
    (not ok, exit status 1, the SyntaxError as stderr and reason), else None (run it)."""
    limits = limits or Limits()
    out: list[SandboxResult | None] = [None] * len(codes)
    todo = [i for i, c in enumerate(codes) if _judgeable(c)]
    for k in range(0, len(todo), SYNTAX_BATCH):
        batch = todo[k:k + SYNTAX_BATCH]
        res = run_python(_COMPILE_ONLY, limits, stdin=json.dumps([codes[i] for i in batch]))
        try:
            verdicts = json.loads(res.stdout.strip().splitlines()[-1]) if res.ok else None
        except (ValueError, IndexError):
            verdicts = None
        if not isinstance(verdicts, list) or len(verdicts) != len(batch):
            continue   # the pass itself failed (a hostile source, a refusal): these programs run one by one
        for i, text in zip(batch, verdicts):
            if isinstance(text, str):
                out[i] = SandboxResult(
                    ok=False, exit_code=1, signal=None, timed_out=False, output_exceeded=False, stdout="",
                    stderr=text, reason=_reason({"exit": 1}, text, False, limits), wall=0.0,
                    isolation=res.isolation + ["compiled only"], warning=res.warning)
    return out
