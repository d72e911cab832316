"""The intermediate process between the grader and a sandboxed program (run as a script, stdlib only).

argv[1] is the limits as a Python dict literal (no json/ctypes import unless needed: startup time
counts for every program graded). The wrapper starts a new session, detaches from the
network (and pid) namespace where the kernel lets it, forks the program's process, and in that
child: its own session, resource limits, the working directory, user nobody when started as root,
and exec of the interpreter with a clean environment. It reports the child's pid and then its exit
status as JSON lines on fd `status_fd`. A program that kills its parent kills only this wrapper.
"""

import os
import resource
import signal
import sys
import time

CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000


def _dumps(obj):
    """JSON for flat dicts of numbers, bools, None, str and lists of str (the status lines)."""
    def one(v):
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return "[" + ", ".join(one(x) for x in v) + "]"
    return "{" + ", ".join(f'"{k}": {one(v)}' for k, v in obj.items()) + "}"


def _unshare(flags):
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(flags) == 0
    except Exception:  # noqa: BLE001
        return False


def main():
    cfg = eval(sys.argv[1], {"__builtins__": {}})  # noqa: S307  (a literal written by sandbox.py)
    status = os.fdopen(cfg["status_fd"], "w")
    os.setsid()
    isolation = []
    if cfg.get("network_namespace", True):
        flags = CLONE_NEWNET | (CLONE_NEWPID if cfg.get("pid_namespace", True) else 0)
        if _unshare(flags):
            isolation += ["netns"] + (["pidns"] if flags & CLONE_NEWPID else [])
        elif _unshare(CLONE_NEWNET):
            isolation.append("netns")
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            status.close()
            os.setsid()
            os.chdir(cfg["workdir"])
            mem = cfg["memory_bytes"]
            limits = [
                (resource.RLIMIT_CPU, (cfg["cpu_seconds"], cfg["cpu_seconds"] + 1)),
                (resource.RLIMIT_AS, (mem, mem)),
                (resource.RLIMIT_DATA, (mem, mem)),
                (resource.RLIMIT_FSIZE, (cfg["file_bytes"], cfg["file_bytes"])),
                (resource.RLIMIT_NOFILE, (64, 64)),
                (resource.RLIMIT_CORE, (0, 0)),
                (resource.RLIMIT_STACK, (min(mem, 64 << 20), min(mem, 64 << 20))),
            ]
            if cfg.get("nproc") is not None:
                limits.append((resource.RLIMIT_NPROC, (cfg["nproc"], cfg["nproc"])))
            for which, value in limits:
                try:
                    resource.setrlimit(which, value)
                except (ValueError, OSError):
                    pass
            if cfg.get("uid") is not None:
                os.setgroups([])
                os.setgid(cfg["gid"])
                os.setuid(cfg["uid"])
            os.umask(0o077)
            os.execve(cfg["argv"][0], cfg["argv"], cfg["env"])
        except BaseException as e:  # noqa: BLE001
            os.write(2, f"sandbox setup failed: {type(e).__name__}: {e}\n".encode())
        os._exit(126)
    status.write(_dumps({"pid": pid, "isolation": isolation}) + "\n")
    status.flush()
    timed_out = []

    def on_alarm(signum, frame):  # kill; the wait4 below then returns (PEP 475 retries it meanwhile)
        timed_out.append(True)
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(cfg["wall_seconds"] - (time.monotonic() - t0), 0.001))
    _, st, ru = os.wait4(pid, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)
    timed_out = bool(timed_out)
    try:  # whatever the program left in its process group
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    out = {"exit": os.WEXITSTATUS(st) if os.WIFEXITED(st) else None,
           "signal": os.WTERMSIG(st) if os.WIFSIGNALED(st) else None,
           "timed_out": timed_out, "cpu": ru.ru_utime + ru.ru_stime,
           "wall": time.monotonic() - t0, "maxrss_kb": ru.ru_maxrss}
    status.write(_dumps(out) + "\n")
    status.flush()


if __name__ == "__main__":
    main()
