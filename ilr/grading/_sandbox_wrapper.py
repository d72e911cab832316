"""The intermediate process between the grader and a sandboxed program (run as a script, stdlib only).

argv[1] is the configuration as a Python dict literal (written by sandbox.py). The wrapper starts a
new session, moves into new namespaces, forks the program's process, and reports the child's pid and
then its exit status as JSON lines on fd `status_fd`. A program that kills its parent kills only this
wrapper. Modes (`cfg["mode"]`):
  root    started as root: new pid, network, IPC and UTS namespaces here; the child gets its own
          mount namespace and a new root (below), then drops to user nobody before exec.
  userns  an ordinary user (or root emulating one, after dropping to nobody first): the same, inside a
          new user namespace that maps only the user's own uid and gid.
  none    no namespaces for the file system (the platform allows none): network and pid namespaces if
          permitted, the program runs in the host's file system; sandbox.py says so in every result.
A mode that cannot be set up ends the run with status 125 ("sandbox setup failed"), never with less
isolation than asked for.
The new root (`_build_root`) is a size-limited tmpfs holding: read-only binds of the OS runtime
(/usr and the /lib*, /bin, /sbin links or directories, /etc/ld.so.cache) and of the interpreter's
prefix, with its site-packages hidden under empty read-only mounts; a fresh /proc of the new pid
namespace; a minimal /dev (null, zero, full, random, urandom, an own /dev/shm); an own /tmp; the
working directory /sandbox with main.py. Everything the program writes lands in that tmpfs and is gone
when its last process ends. Any failure to build it ends the child with status 125 and a
"sandbox setup failed" line on stderr (sandbox.py probes for this once and falls back, loudly).
"""

import os
import resource
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
# pivot_root has no libc wrapper: its system call number per architecture
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "ppc64": 203, "s390x": 217,
                  "i686": 217, "i386": 217, "armv7l": 218, "loongarch64": 41}
SETUP_FAILED = 125
NEW_ROOT_WORKDIR = "/sandbox"

_libc = None


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
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
        return "[" + ", ".join(one(x) for x in v) + "]"
    return "{" + ", ".join(f'"{k}": {one(v)}' for k, v in obj.items()) + "}"


def libc():
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret, what):
    if ret != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags):
    try:
        return libc().unshare(flags) == 0
    except Exception:  # noqa: BLE001
        return False


def _mount(src, target, fstype, flags, data=None):
    enc = (lambda s: None if s is None else s.encode())
    _check(libc().mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _locked_flags(path):
    """The per-mount flags of the mount holding `path` that a user namespace may not drop on a
    read-only remount (nosuid, nodev, noexec, atime), as mount(2) flags."""
    f = os.statvfs(path).f_flag
    out = 0
    for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                   (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)):
        if f & st:
            out |= ms
    return out


def _bind_ro(src, dst):
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    _mount(src, dst, None, MS_BIND | MS_REC)
    _mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | _locked_flags(src))


def _build_root(cfg):
    """Make a new root file system in a tmpfs and pivot into it (runs in the child, pid 1 of the new
    pid namespace, inside its own new mount namespace)."""
    _check(libc().unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates back to the host
    root = cfg["root"]
    with open(cfg["program"], "rb") as f:  # read before the host's file system goes away
        program = f.read()
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={cfg['scratch_bytes']},nr_inodes={cfg['scratch_inodes']},mode=755")
    for src in cfg["binds"]:
        dst = root + src
        if os.path.islink(src):  # merged /usr: /bin -> usr/bin
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.symlink(os.readlink(src), dst)
        elif os.path.exists(src):
            _bind_ro(src, dst)
    for path in cfg["hide"]:  # the interpreter's site-packages: the standard library only
        if os.path.isdir(root + path):
            _mount("tmpfs", root + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,nr_inodes=16")
    os.makedirs(root + "/proc")
    try:
        _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        pass  # some containers forbid a new proc: the program then has an empty /proc (the probe notes it)
    os.makedirs(root + "/dev/shm")
    os.chmod(root + "/dev/shm", 0o1777)
    for dev in ("null", "zero", "full", "random", "urandom"):
        open(root + "/dev/" + dev, "a").close()
        _mount("/dev/" + dev, root + "/dev/" + dev, None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, root + "/dev/" + name)
    os.makedirs(root + "/tmp")
    os.chmod(root + "/tmp", 0o1777)
    work = root + NEW_ROOT_WORKDIR
    os.makedirs(work)
    with open(work + "/main.py", "wb") as f:
        f.write(program)
    if cfg.get("uid") is not None and cfg["mode"] == "root":
        os.chown(work, cfg["uid"], cfg["gid"])
        os.chown(work + "/main.py", cfg["uid"], cfg["gid"])
    os.chmod(work, 0o700)
    os.chdir(root)
    nr = SYS_PIVOT_ROOT.get(os.uname().machine)
    if nr is None:
        raise OSError(0, f"pivot_root: unknown system call number on {os.uname().machine}")
    _check(libc().syscall(nr, b".", b"."), "pivot_root")
    _check(libc().umount2(b".", MNT_DETACH), "umount old root")
    os.chdir(NEW_ROOT_WORKDIR)


def _enter_user_namespace(cfg):
    """Drop to the sandbox user first when root (emulating an ordinary user), then a new user
    namespace mapping only our own uid and gid (as `unshare --map-current-user` does)."""
    if cfg.get("uid") is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
        libc().prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # a uid change hides /proc/self/*_map from ourselves
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if not _unshare(flags):
        return False
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")
    return True


def main():
    cfg = eval(sys.argv[1], {"__builtins__": {}})  # noqa: S307  (a literal written by sandbox.py)
    status = os.fdopen(cfg["status_fd"], "w")
    os.setsid()
    isolation, mode = [], cfg["mode"]
    libc()  # load ctypes now: after a drop to nobody the interpreter's own files may be out of reach
    # a mode that cannot be set up ends the run (never a silent fall back to less isolation: sandbox.py
    # chose the mode after probing it, and reports a failure here as a setup failure)
    try:
        if mode == "root":
            _check(libc().unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
            isolation += ["pidns", "netns", "ipcns", "utsns"]
        elif mode == "userns":
            if not _enter_user_namespace(cfg):
                raise OSError(0, "unshare(CLONE_NEWUSER) refused")
            isolation += ["userns", "pidns", "netns", "ipcns", "utsns"]
    except (OSError, ValueError) as e:
        msg = f"sandbox setup failed ({mode} namespaces): {e}"
        os.write(2, (msg + "\n").encode())
        status.write(_dumps({"exit": SETUP_FAILED, "signal": None, "timed_out": False, "cpu": 0.0, "wall": 0.0,
                             "setup": msg}) + "\n")
        status.flush()
        return
    if mode == "none" and cfg.get("network_namespace", True):
        flags = CLONE_NEWNET | (CLONE_NEWPID if cfg.get("pid_namespace", True) else 0)
        if _unshare(flags):
            isolation += ["netns"] + (["pidns"] if flags & CLONE_NEWPID else [])
        elif _unshare(CLONE_NEWNET):
            isolation.append("netns")
    if "utsns" in isolation:
        try:
            libc().sethostname(b"sandbox", 7)
        except Exception:  # noqa: BLE001
            pass
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        stage = "setup"
        try:
            status.close()
            os.setsid()
            if mode in ("root", "userns"):
                stage = "new root"
                _build_root(cfg)
            else:
                os.chdir(cfg["workdir"])
            stage = "limits"
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
            if cfg.get("uid") is not None and mode in ("root", "none") and os.geteuid() == 0:
                stage = "user"
                os.setgroups([])
                os.setgid(cfg["gid"])
                os.setuid(cfg["uid"])
            try:
                libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # setuid programs (su, mount) gain nothing
            except AttributeError:  # not Linux
                pass
            os.umask(0o077)
            stage = "exec"
            os.execve(cfg["argv"][0], cfg["argv"], cfg["env"])
        except BaseException as e:  # noqa: BLE001
            os.write(2, f"sandbox setup failed ({stage}): {type(e).__name__}: {e}\n".encode())
        os._exit(SETUP_FAILED)
    status.write(_dumps({"pid": pid, "isolation": isolation + (["mountns"] if mode in ("root", "userns") else [])})
                 + "\n")
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
