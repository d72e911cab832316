"""Hostile programs: each is contained, graded false with a reason (or, when harmless, simply graded),
nothing of it is left behind, and grading goes on.

Nothing here can harm the machine: the delete/write targets are sentinels in a temporary directory made
by the test, the fork bombs are bounded (a fixed number of rounds, under RLIMIT_NPROC and the wall-time
limit), the signals are sent from inside the sandbox's own pid namespace, and the output, allocation and
disk tests are cut off by the sandbox's limits well before they matter.

Where the platform cannot hide the machine (no mount namespace: probe() says why), the tests that need
it are skipped with that reason, and test_weak_mode_says_so_loudly checks that grading then says so.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
import warnings
from pathlib import Path

import pytest

from ilr.grading import grade, grade_many
from ilr.grading.sandbox import Limits, check_program, probe, run_python, syntax_errors

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FAST = Limits(wall_seconds=4, cpu_seconds=2, memory_bytes=512 << 20, output_bytes=256 << 10)
TESTS = ["assert f(2) == 4"]
PLATFORM = probe(FAST)
hides = pytest.mark.skipif(PLATFORM.mode == "none", reason=f"no mount namespace here: {PLATFORM.warning}")


def record(tests=TESTS):
    return {"kind": "code", "benchmark": "mbpp", "answer": "", "tests": tests, "test_setup": ""}


def hostile(body: str) -> str:
    """A program that does something hostile when its function is called by the test."""
    return "def f(x):\n" + textwrap.indent(body, "    ") + "\n    return 2 * x\n"


def check(body: str, limits=FAST):
    t = time.monotonic()
    g = grade(record(), hostile(body), limits)
    return g, time.monotonic() - t


def seen_by(code: str, limits=FAST) -> dict:
    """Run `code`, which prints one JSON object as its last line; that object."""
    res = run_python(code, limits)
    assert res.stdout.strip(), (res.reason, res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture
def fresh_warnings(monkeypatch):
    """The once-per-process warning of the weak mode, issued again for this test."""
    from ilr.grading import sandbox

    monkeypatch.setattr(sandbox, "_warned", set())


def _host_leftovers() -> set[str]:
    """Entries in the host's shared scratch places that a sandbox could have left."""
    out = set()
    for d in ("/tmp", "/dev/shm", "/var/tmp"):
        try:
            out |= {f"{d}/{n}" for n in os.listdir(d)}
        except OSError:
            pass
    return out


@pytest.fixture(autouse=True, scope="module")
def nothing_left_behind():
    """After all the hostile programs: no sandbox directory, no planted file, no process of the sandbox
    user left on the host."""
    before = _host_leftovers()
    yield
    time.sleep(0.5)
    mine = f"ilr-sandbox-{os.getpid()}-"  # other sessions may be grading at the same time
    new = {p for p in _host_leftovers() - before if mine in p or "planted" in p}
    assert not new, new
    if os.geteuid() == 0 and shutil.which("ps"):
        for _ in range(20):  # processes being torn down (a pid namespace ends its members) take a moment
            left = subprocess.run(["ps", "-u", "nobody", "-o", "pid=,ppid=,stat=,etime=,args="], capture_output=True,
                                  text=True).stdout
            if not left.strip():
                break
            time.sleep(0.5)
        assert left.strip() == "", left


# ------------------------------------------------------------------------------ limits
def test_ok_program_passes():
    g, _ = check("pass")
    assert g.correct and g.reason is None


def test_infinite_loop():
    g, dt = check("while True:\n    pass")
    assert not g.correct and ("CPU time" in g.reason or "timeout" in g.reason)
    assert dt < FAST.wall_seconds + 5


def test_sleeping_forever():
    g, dt = check("import time\ntime.sleep(1000)")
    assert not g.correct and "timeout" in g.reason and dt < FAST.wall_seconds + 5


def test_fork_bomb_bounded():
    body = ("import os\nfor _ in range(12):\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
            "import time\ntime.sleep(30)")
    g, dt = check(body)
    assert not g.correct and g.reason and dt < FAST.wall_seconds + 5


@hides
def test_daemon_grandchild_dies_with_the_program(tmp_path):
    # a double-forked, setsid'd grandchild that would outlive its parent and write a file later
    target = tmp_path / "late-write"
    body = (f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(2)\n"
            f"        open({str(target)!r}, 'w').write('x')\n        os._exit(0)\n    os._exit(0)\n")
    g, _ = check(body)
    assert g.correct  # the program itself is harmless to the tests; what matters is what follows
    time.sleep(3)
    assert not target.exists()


def test_allocating_10_gb():
    g, _ = check("x = bytearray(10 * 1024 ** 3)")
    assert not g.correct and "MemoryError" in g.reason


def test_printing_a_gigabyte():
    g, dt = check("import sys\nb = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(b)")
    assert not g.correct and "output limit" in g.reason and dt < FAST.wall_seconds + 5


def test_flooding_stderr():
    g, dt = check("import sys\nb = 'y' * (1 << 20)\nfor _ in range(1024):\n    sys.stderr.write(b)")
    assert not g.correct and "output limit" in g.reason and dt < FAST.wall_seconds + 5


def test_writing_a_huge_file():
    g, _ = check("open('big', 'w').write('x' * (64 << 20))")
    assert not g.correct and ("File too large" in g.reason or "file size" in g.reason)


@hides
def test_filling_the_scratch_space():
    # many files under the per-file limit: the scratch tmpfs is full long before the host disk
    body = "for i in range(40):\n    open(f'/tmp/fill{i}', 'wb').write(b'z' * (8 << 20))"
    g, _ = check(body, Limits(wall_seconds=10, cpu_seconds=5, scratch_bytes=32 << 20))
    assert not g.correct and "No space left" in g.reason and "scratch space" in g.reason


def test_early_exit_does_not_pass():
    g = grade(record(["assert f(2) == 5"]), "import os\ndef f(x):\n    os._exit(0)\n", FAST)
    assert not g.correct and "ended before the tests finished" in g.reason


# ------------------------------------------------------------------------------ the machine
@hides
def test_cannot_read_the_project_or_the_data():
    targets = [str(REPO / "README.md"), str(Path(__file__)), str(REPO / "ilr" / "grading" / "sandbox.py"),
               str(DATA / "SOURCES.md"), "/etc/passwd", "/etc/hostname", sys.executable]
    code = textwrap.dedent(f"""
        import json, os
        found = {{}}
        for p in {targets!r}:
            try:
                found[p] = open(p, 'rb').read(64).hex()
            except OSError as e:
                pass
        for d in {[str(REPO), str(DATA), "/home", "/root", "/work", "/var", "/opt", "/srv", "/mnt", "/sys"]!r}:
            try:
                found[d] = os.listdir(d)
            except OSError:
                pass
        print(json.dumps(found))
    """)
    found = seen_by(code)
    # /root may hold the mount point of the interpreter's own prefix (e.g. /root/.pyenv), nothing else
    prefix = Path(PLATFORM.python).parts
    if set(found.get("/root", [])) <= ({prefix[2]} if prefix[:2] == ("/", "root") else set()):
        found.pop("/root", None)
    assert found == {}, found


@hides
def test_cannot_read_a_project_file_to_pass_its_tests():
    secret = (REPO / "README.md").read_text(encoding="utf-8")[:40]
    prog = f"def f():\n    return open({str(REPO / 'README.md')!r}).read()[:40]\n"
    g = grade(record([f"assert f() == {secret!r}"]), prog, FAST)
    assert not g.correct and ("FileNotFoundError" in g.reason or "No such file" in g.reason)


@hides
def test_sees_only_its_own_processes():
    code = textwrap.dedent("""
        import json, os
        procs = {}
        for p in os.listdir('/proc'):
            if p.isdigit():
                try:
                    procs[p] = open(f'/proc/{p}/cmdline', 'rb').read().replace(b'\\0', b' ').decode()
                except OSError:
                    pass
        print(json.dumps({"procs": procs, "pid": os.getpid(), "ppid": os.getppid()}))
    """)
    seen = seen_by(code)
    assert seen["pid"] == 1 and seen["ppid"] == 0, seen
    assert set(seen["procs"]) == {"1"}, seen["procs"]
    assert "main.py" in seen["procs"]["1"] and "pytest" not in json.dumps(seen)


@hides
def test_planted_files_do_not_reach_a_later_program():
    token = "planted-" + uuid.uuid4().hex
    plant = textwrap.dedent(f"""
        import os
        for d in ['/tmp', '/dev/shm', '.', os.environ.get('HOME', '.'), '/var/tmp']:
            try:
                open(os.path.join(d, {token!r}), 'w').write('bait')
            except OSError:
                pass
        print('planted')
    """)
    assert run_python(plant, FAST).ok
    look = textwrap.dedent(f"""
        import json, os
        hits = [os.path.join(d, n) for d in ['/tmp', '/dev/shm', '.', '/var/tmp'] if os.path.isdir(d)
                for n in os.listdir(d) if {token!r} in n]
        print(json.dumps({{"hits": hits}}))
    """)
    assert seen_by(look)["hits"] == []
    assert not [p for p in _host_leftovers() if token in p]


@hides
def test_shared_memory_is_its_own():
    token = "planted" + uuid.uuid4().hex[:12]
    code = (f"from multiprocessing import shared_memory\nm = shared_memory.SharedMemory(name={token!r}, create=True, "
            f"size=4096)\nm.buf[:4] = b'bait'\nm.close()\nprint('ok')")  # never unlinked: it would outlive us
    res = run_python(code, FAST)
    assert res.ok, res.reason
    assert not os.path.exists(f"/dev/shm/{token}")


@pytest.mark.skipif(os.geteuid() != 0, reason="file protection outside a mount namespace relies on dropping root")
def test_delete_and_write_outside_its_dir(tmp_path):
    guard = tmp_path / "guard"
    guard.mkdir()
    sentinel = guard / "sentinel"
    sentinel.write_text("keep")
    g, _ = check(f"import os\nos.remove({str(sentinel)!r})")
    assert not g.correct and ("Permission" in g.reason or "No such file" in g.reason)
    g, _ = check(f"open({str(guard / 'evil')!r}, 'w').write('x')")
    assert not g.correct and ("Permission" in g.reason or "No such file" in g.reason)
    assert sentinel.read_text() == "keep" and not (guard / "evil").exists()
    project_file = os.path.abspath(__file__)
    token = "# " + uuid.uuid4().hex
    g, _ = check(f"open({project_file!r}, 'a').write({token!r})")
    assert not g.correct and ("Permission" in g.reason or "No such file" in g.reason)
    assert token not in open(project_file).read()


@hides
def test_system_files_are_read_only():
    g, _ = check("import os\nopen(os.__file__, 'a').write('# evil')")
    assert not g.correct and ("Read-only" in g.reason or "Permission" in g.reason)
    g, _ = check("open('/usr/evil', 'w').write('x')")
    assert not g.correct and ("Read-only" in g.reason or "Permission" in g.reason)


def test_cannot_become_root():
    g, _ = check("import os\nos.setuid(0)")
    assert not g.correct and "PermissionError" in g.reason


def test_environment_is_clean(monkeypatch):
    monkeypatch.setenv("ILR_TEST_SECRET", "s3cret")
    g = grade(record(["assert f() == 's3cret'"]), "import os\ndef f():\n    return os.environ.get('ILR_TEST_SECRET')\n",
              FAST)
    assert not g.correct and "AssertionError" in g.reason
    res = run_python("import os; print(sorted(os.environ))", FAST)
    assert set(eval(res.stdout)) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONHASHSEED", "LC_CTYPE"}


def test_standard_library_only():
    res = run_python("import json, sys\nmods = []\nfor m in ['numpy', 'sympy', 'math_verify', 'pytest', 'ilr']:\n"
                     "    try:\n        __import__(m)\n        mods.append(m)\n    except ImportError:\n        pass\n"
                     "print(json.dumps(mods))", FAST)
    if PLATFORM.mode == "none":
        pytest.skip("without a mount namespace the interpreter's own site-packages stay visible")
    assert json.loads(res.stdout.strip().splitlines()[-1]) == [], res.stderr


# ------------------------------------------------------------------------------ network and signals
def test_no_network():
    res = run_python("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)", FAST)
    assert not res.ok
    if "netns" not in res.isolation:
        pytest.skip("no network namespace here (unshare not permitted); network is not blocked")
    assert "unreachable" in res.reason or "Network" in res.reason


def test_no_host_services():
    """A TCP server on the host's loopback and an abstract unix socket: out of reach."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    name = "\0ilr-test-" + uuid.uuid4().hex
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(name)
    unix.listen(1)
    try:
        code = textwrap.dedent(f"""
            import json, socket
            got = []
            try:
                socket.create_connection(('127.0.0.1', {tcp.getsockname()[1]}), timeout=2); got.append('tcp')
            except OSError:
                pass
            try:
                s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect({name!r}); got.append('unix')
            except OSError:
                pass
            print(json.dumps({{"got": got}}))
        """)
        res = run_python(code, FAST)
        if "netns" not in res.isolation:
            pytest.skip("no network namespace here: host services are reachable")
        assert json.loads(res.stdout.strip().splitlines()[-1])["got"] == []
    finally:
        tcp.close()
        unix.close()


def test_killing_its_parent_and_everyone():
    body = ("import os, signal\nfor pid in (-1, os.getppid()):\n    try:\n        os.kill(pid, signal.SIGKILL)\n"
            "    except OSError:\n        pass\nimport time\ntime.sleep(2)")
    g, _ = check(body)
    assert g.reason is None or not g.correct
    assert grade(record(), hostile("pass"), FAST).correct  # grading goes on


def test_signalling_the_grader():
    body = f"import os, signal\nos.kill({os.getpid()}, signal.SIGTERM)"
    g, _ = check(body)
    assert not g.correct and ("ProcessLookupError" in g.reason or "PermissionError" in g.reason)


def test_a_killed_wrapper_is_reported(fresh_warnings):
    # without namespaces and without the drop to nobody (forced here) a program can kill the wrapper:
    # the grader reports it and goes on
    body = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(2)"
    weak = Limits(wall_seconds=4, cpu_seconds=2, mode="none", network_namespace=False, pid_namespace=False,
                  drop_to="root")
    with pytest.warns(RuntimeWarning, match="cannot hide the machine"):
        g = grade(record(), hostile(body), weak)
    assert not g.correct and "wrapper was killed" in g.reason
    assert grade(record(), hostile("pass"), FAST).correct


def test_grading_goes_on_after_hostile_batch():
    bodies = ["while True:\n    pass", "x = bytearray(10 * 1024 ** 3)", "pass", "raise SystemExit(3)", "pass"]
    grades = grade_many([record()] * len(bodies), [hostile(b) for b in bodies], workers=2, limits=FAST)
    assert [g.correct for g in grades] == [False, False, True, False, True]
    assert all(g.reason for g in grades if not g.correct)
    assert check_program("def f(x):\n    return 2 * x", TESTS, "", FAST).ok


# ------------------------------------------------------------------------------ the compile-only pass
# grade_many judges the programs Python refuses to compile in one compile-only sandboxed run
# (sandbox.syntax_errors): each must get the grade its own run gives, reason included.
def test_compile_only_pass_judges_as_the_interpreter_does():
    codes = {
        "compiles": "x = 1\n",
        "syntax": "def f(:\n    return 1\n",
        "indent": " x = 1\n",
        "tabs": "if 1:\n\tx = 1\n        y = 2\n",
        "unknown codec": "# -*- coding: no-such-codec -*-\nx = 1\n",
        "latin-1 cookie": "# -*- coding: latin-1 -*-\nx = '\u00e9'\n",
        "BOM": "\ufeffdef f(:\n",
        "unclosed string": "def f(x):\n    return '''\n\nassert f(2) == 4\n",
        "names MemoryError": "raise MemoryError(\n",
        "NUL byte": "x = 1\x00\n",
    }
    judged = syntax_errors(list(codes.values()), FAST)
    for name, res in zip(codes, judged):
        if res is not None:
            own = run_python(codes[name], FAST)
            assert (res.ok, res.exit_code, res.signal, res.reason) == \
                (own.ok, own.exit_code, own.signal, own.reason), name
            assert res.stderr.strip().splitlines()[-1] == own.stderr.strip().splitlines()[-1], name
    refused = {n for n, r in zip(codes, judged) if r is not None}
    assert {"syntax", "indent", "tabs", "unclosed string"} <= refused
    # these run: the pass never judges a declared encoding, a BOM or a NUL byte (compile() words a source's encoding
    # problems otherwise than the interpreter reading its file: "unknown encoding" / "encoding problem"), nor a
    # source naming MemoryError (a run's stderr shows the line, and the reason then says "(memory limit)")
    assert not refused & {"compiles", "unknown codec", "latin-1 cookie", "BOM", "NUL byte", "names MemoryError"}
    assert "memory limit" in run_python(codes["names MemoryError"], FAST).reason


def test_compile_only_pass_that_fails_leaves_every_program_to_its_own_run():
    # its answer (an error text a program) does not fit in 64 bytes of output: the pass fails, nothing is judged
    tight = Limits(wall_seconds=4, cpu_seconds=2, memory_bytes=512 << 20, output_bytes=64)
    codes = ["def f(:\n", " x = 1\n", "x = (\n"]
    assert syntax_errors(codes, tight) == [None, None, None]
    grades = grade_many([record()] * 3, codes, workers=2, limits=tight)
    assert grades == [grade(record(), c, tight) for c in codes]


def test_compile_only_pass_never_runs_a_program():
    scratch = Path(tempfile.mkdtemp())
    os.chmod(scratch, 0o777)
    sentinel = scratch / "ran"
    # the first compiles, and would leave a file where the test can see it (no mount namespace) if it ran
    codes = [f"open({str(sentinel)!r}, 'w').close()\n", "def f(:\n"]
    weak = Limits(wall_seconds=4, cpu_seconds=2, mode="none")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            judged = syntax_errors(codes, weak)
            assert judged[0] is None and judged[1] is not None and not judged[1].ok
            assert not sentinel.exists()
            assert run_python(codes[0], weak).ok and sentinel.exists()   # the premise: a run would leave it
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.skipif(not DATA.is_dir(), reason=f"real benchmark files not found at {DATA}")
def test_batch_grades_of_cut_mbpp_programs_are_their_own_runs():
    """Real MBPP reference programs, whole, cut where a length-limited model would stop, and indented by one
    space: graded as a batch (the compile-only pass, then the rest one by one), each grade is its own run's."""
    from ilr.benchmarks import load_records

    recs = load_records({"source": "mbpp", "path": str(DATA / "mbpp/test.jsonl"), "n": 12, "seed": 5})
    pairs = []
    for r in recs:
        prog = r["answer"]
        pairs += [(r, prog[:k]) for k in (len(prog) // 3, len(prog) // 2, 2 * len(prog) // 3, len(prog))]
        pairs.append((r, " " + prog))
    # two of the cut programs loop forever: the CPU limit, far below the wall limit, ends them (one reason on
    # any machine, however loaded)
    limits = Limits(wall_seconds=60, cpu_seconds=1, memory_bytes=512 << 20)
    batch = grade_many([r for r, _ in pairs], [c for _, c in pairs], workers=2, limits=limits)
    alone = [grade(r, c, limits) for r, c in pairs]
    assert batch == alone
    refused = sum(1 for g in alone if g.reason and ("SyntaxError" in g.reason or "IndentationError" in g.reason))
    assert sum(g.correct for g in alone) >= 10 and refused >= 20   # both kinds in the set


# ------------------------------------------------------------------------------ modes and platforms
def test_weak_mode_says_so_loudly(fresh_warnings):
    weak = Limits(wall_seconds=4, cpu_seconds=2, mode="none")
    with pytest.warns(RuntimeWarning, match="cannot hide the machine"):
        res = run_python("print('hi')", weak)
    assert res.ok and res.warning and "cannot hide the machine" in res.warning
    g = grade(record(), hostile("pass"), weak)
    assert g.correct and g.reason and "warning: sandbox cannot hide the machine" in g.reason
    g = grade(record(["assert f(2) == 5"]), hostile("pass"), weak)
    assert not g.correct and "AssertionError" in g.reason and "cannot hide the machine" in g.reason


def test_require_isolation_refuses_to_run_unhidden():
    strict = Limits(wall_seconds=4, cpu_seconds=2, mode="none", require_isolation=True)
    res = run_python("print('hi')", strict)
    assert not res.ok and res.reason.startswith("refused") and res.stdout == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="emulating an unprivileged user needs root to drop to nobody")
def test_user_namespace_mode_hides_the_machine_too():
    """The mode an ordinary user gets (a user namespace), emulated from root by dropping to nobody first."""
    limits = Limits(wall_seconds=4, cpu_seconds=2, mode="userns")
    if probe(limits).mode != "userns":
        pytest.skip(f"no unprivileged user namespaces here: {probe(limits).warning}")
    token = "planted-" + uuid.uuid4().hex
    code = textwrap.dedent(f"""
        import json, os
        open('/tmp/{token}', 'w').write('x'); open('/dev/shm/{token}', 'w').write('x')
        print(json.dumps({{"root": sorted(os.listdir('/')), "procs": [p for p in os.listdir('/proc') if p.isdigit()],
                          "project": os.path.exists({str(REPO)!r}), "data": os.path.exists({str(DATA)!r})}}))
    """)
    res = run_python(code, limits)
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert "userns" in res.isolation and "mountns" in res.isolation
    assert not seen["project"] and not seen["data"] and seen["procs"] == ["1"]
    assert "work" not in seen["root"] and "home" not in seen["root"]
    assert not [p for p in _host_leftovers() if token in p]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
                    reason="needs root, setpriv and a system python3 to run the grader as an ordinary user")
def test_grader_run_by_an_ordinary_user():
    """The sandbox module run by user nobody (no root anywhere): a user namespace, or a loud warning.
    It runs a copy of the package in a folder every user can read, so the test holds wherever the clone
    lies (a clone under `mktemp -d` is a 0700 folder that user nobody cannot enter)."""
    root = Path(tempfile.mkdtemp(prefix="ilr-nobody-", dir="/tmp"))
    shutil.copytree(REPO / "ilr", root / "ilr", ignore=shutil.ignore_patterns("__pycache__"))
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    script = textwrap.dedent(f"""
        import json, sys, warnings
        sys.path.insert(0, {str(root)!r})
        from ilr.grading.sandbox import run_python, Limits
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            res = run_python("import os; print(os.path.exists({str(root)!r}))", Limits(wall_seconds=5))
        print(json.dumps({{"out": res.stdout.strip(), "iso": res.isolation, "warning": res.warning,
                          "warned": [str(x.message) for x in w]}}))
    """)
    try:
        out = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                              "/usr/bin/python3", "-c", script], capture_output=True, text=True, timeout=60, cwd="/")
    finally:
        shutil.rmtree(root)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    if "userns" in seen["iso"]:
        assert seen["out"] == "False" and seen["warning"] is None
    else:  # no namespaces for ordinary users here: then it must say so
        assert seen["warning"] and seen["warned"], seen


def test_hostile_programs_through_the_command_line(tmp_path):
    """`python -m ilr grade` on a file of hostile programs: one output line each, all graded false."""
    secret = (REPO / "README.md").read_text(encoding="utf-8")[:40]
    bodies = {"read": f"return open({str(REPO / 'README.md')!r}).read()[:40]", "loop": "while True:\n    pass",
              "bomb": "import os\nfor _ in range(10):\n    try:\n        os.fork()\n    except OSError:\n        pass"}
    src = tmp_path / "in.jsonl"
    with open(src, "w") as f:
        for name, body in bodies.items():  # the test passes only if the program read the project's file
            f.write(json.dumps({"id": name, "kind": "code", "answer": "", "tests": [f"assert f(1) == {secret!r}"],
                                "completion": "def f(x):\n" + textwrap.indent(body, "    ")}) + "\n")
    out = subprocess.run([sys.executable, "-m", "ilr", "grade", str(src), str(tmp_path / "out.jsonl")],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(ln) for ln in open(tmp_path / "out.jsonl")]
    assert [r["id"] for r in rows] == list(bodies) and not any(r["correct"] for r in rows)
    assert all(r["reason"] for r in rows)
