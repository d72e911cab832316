"""Hostile programs: each is contained, graded false with a reason, and grading goes on.

Nothing here can harm the machine: the delete/write targets are a sentinel in a temporary directory
made by the test (outside the sandbox's own directory), the fork bomb is bounded (a fixed number of
rounds, under RLIMIT_NPROC and the wall-time limit), and the output and allocation tests are cut off
by the sandbox's limits well before they matter."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

from ilr.grading import grade, grade_many
from ilr.grading.sandbox import Limits, check_program, run_python

FAST = Limits(wall_seconds=4, cpu_seconds=2, memory_bytes=512 << 20, output_bytes=256 << 10)
TESTS = ["assert f(2) == 4"]


def record(tests=TESTS):
    return {"kind": "code", "benchmark": "mbpp", "answer": "", "tests": tests, "test_setup": ""}


def hostile(body: str) -> str:
    """A program that does something hostile when its function is called by the test."""
    return "def f(x):\n" + "\n".join("    " + ln for ln in body.splitlines()) + "\n    return 2 * x\n"


def check(body: str, limits=FAST):
    t = time.monotonic()
    g = grade(record(), hostile(body), limits)
    return g, time.monotonic() - t


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
    time.sleep(0.5)
    if os.geteuid() == 0:  # nothing left running as the sandbox user
        left = subprocess.run(["ps", "-u", "nobody", "-o", "pid="], capture_output=True, text=True).stdout.split()
        assert left == [], left


def test_allocating_10_gb():
    g, _ = check("x = bytearray(10 * 1024 ** 3)")
    assert not g.correct and "MemoryError" in g.reason


def test_printing_a_gigabyte():
    g, dt = check("import sys\nb = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(b)")
    assert not g.correct and "output limit" in g.reason and dt < FAST.wall_seconds + 5


def test_writing_a_huge_file():
    g, _ = check("open('big', 'w').write('x' * (64 << 20))")
    assert not g.correct and ("File too large" in g.reason or "file size" in g.reason)


@pytest.mark.skipif(os.geteuid() != 0, reason="file protection relies on dropping root to nobody")
def test_delete_and_write_outside_its_dir(tmp_path):
    guard = tmp_path / "guard"
    guard.mkdir()
    sentinel = guard / "sentinel"
    sentinel.write_text("keep")
    g, _ = check(f"import os\nos.remove({str(sentinel)!r})")
    assert not g.correct and "Permission" in g.reason
    g, _ = check(f"open({str(guard / 'evil')!r}, 'w').write('x')")
    assert not g.correct and "Permission" in g.reason
    assert sentinel.read_text() == "keep" and not (guard / "evil").exists()
    project_file = os.path.abspath(__file__)
    token = "# " + uuid.uuid4().hex
    g, _ = check(f"open({project_file!r}, 'a').write({token!r})")
    assert not g.correct and "Permission" in g.reason
    assert token not in open(project_file).read()


def test_environment_is_clean(monkeypatch):
    monkeypatch.setenv("ILR_TEST_SECRET", "s3cret")
    g = grade(record(["assert f() == 's3cret'"]), "import os\ndef f():\n    return os.environ.get('ILR_TEST_SECRET')\n",
              FAST)
    assert not g.correct and "AssertionError" in g.reason
    res = run_python("import os; print(sorted(os.environ))", FAST)
    assert set(eval(res.stdout)) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONHASHSEED", "LC_CTYPE"}


def test_no_network():
    res = run_python("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)", FAST)
    assert not res.ok
    if "netns" not in res.isolation:
        pytest.skip("no network namespace here (unshare not permitted); network is not blocked")
    assert "unreachable" in res.reason or "Network" in res.reason


def test_early_exit_does_not_pass():
    g = grade(record(["assert f(2) == 5"]), "import os\ndef f(x):\n    os._exit(0)\n", FAST)
    assert not g.correct and "ended before the tests finished" in g.reason


def test_killing_its_parent_kills_only_the_wrapper():
    # with the namespaces and the drop to nobody the kill is refused or cannot reach the wrapper;
    # without them (here forced off) the wrapper dies, and the grader reports it and goes on
    body = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(2)"
    g, _ = check(body)
    assert g.reason is None or not g.correct
    weak = Limits(wall_seconds=4, cpu_seconds=2, network_namespace=False, pid_namespace=False, drop_to="root")
    g = grade(record(), hostile(body), weak)
    assert not g.correct and "wrapper was killed" in g.reason
    assert grade(record(), hostile("pass"), FAST).correct  # grading goes on


def test_grading_goes_on_after_hostile_batch():
    bodies = ["while True:\n    pass", "x = bytearray(10 * 1024 ** 3)", "pass", "raise SystemExit(3)", "pass"]
    grades = grade_many([record()] * len(bodies), [hostile(b) for b in bodies], workers=2, limits=FAST)
    assert [g.correct for g in grades] == [False, False, True, False, True]
    assert all(g.reason for g in grades if not g.correct)
    assert check_program("def f(x):\n    return 2 * x", TESTS, "", FAST).ok
