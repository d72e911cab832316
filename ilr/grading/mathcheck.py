"""Math answer equivalence: a cheap string check, then math-verify in a worker process under a time limit.

math-verify's own timeout uses signal.alarm, which works only in the main thread; here it is turned
off (`parsing_timeout=None`, `timeout_seconds=None`) and each comparison runs in a separate worker
process (`python -c ... serve()`, JSON lines over pipes). The caller waits at most `timeout` seconds;
a worker that overruns is killed and a fresh one is started, so a pathological expression costs one
comparison, not the run. Safe from any thread; workers are shared through a small pool.
"""

from __future__ import annotations

import atexit
from decimal import Decimal
import json
import os
import queue
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

DEFAULT_TIMEOUT = 10.0
STARTUP_TIMEOUT = 120.0
_ROOT = str(Path(__file__).resolve().parents[2])

# ---------------------------------------------------------------------------------------- strings
_DROP = [r"\left", r"\right", r"\!", r"\,", r"\;", r"\:", r"\ ", "$", r"\displaystyle", r"^\circ", r"^{\circ}",
         r"\%", "%", r"\$"]


def normalize(s: str) -> str:
    """Light, safe normalisation for the exact-match fast path (no semantic rewriting)."""
    s = str(s).strip()
    s = re.sub(r"\\text\{\s*([^{}]*?)\s*\}", r"\1", s)
    s = re.sub(r"\\mbox\{\s*([^{}]*?)\s*\}", r"\1", s)
    s = s.replace(r"\dfrac", r"\frac").replace(r"\tfrac", r"\frac")
    for d in _DROP:
        s = s.replace(d, "")
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".")
    return s


def _unwrap_dollars(s: str) -> str:
    s = s.strip()
    # "$x$" -> "x"; olympiadbench golds such as "$(1,1), (3,2)$" or "$a$,$b$"
    if s.startswith("$") and s.endswith("$"):
        s = s.replace("$", "")
    return s.strip()


# ------------------------------------------------------------------------------------------ worker
def _compare(gold: str, pred: str) -> bool:
    from math_verify import parse, verify

    g = parse("\\boxed{" + _unwrap_dollars(gold) + "}", parsing_timeout=None)
    p = parse("\\boxed{" + _unwrap_dollars(pred) + "}", parsing_timeout=None)
    if not g or not p:
        return False
    return bool(verify(g, p, timeout_seconds=None))


def serve() -> None:  # runs in the worker process
    import logging

    logging.disable(logging.WARNING)  # math-verify warns once that its own timeout is off: we enforce ours
    import math_verify  # noqa: F401  (import before "ready": startup is not counted in the time limit)

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        gold, pred = json.loads(line)
        try:
            res = {"ok": _compare(gold, pred)}
        except Exception as e:  # noqa: BLE001
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"[:200]}
        out.write(json.dumps(res) + "\n")
        out.flush()


class MathWorker:
    def __init__(self):
        self.proc = None
        self._buf = b""
        self._start()

    def _start(self):
        code = f"import sys; sys.path.insert(0, {_ROOT!r}); from ilr.grading.mathcheck import serve; serve()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, close_fds=True)
        self._buf = b""
        line = self._readline(STARTUP_TIMEOUT)
        if line != "ready":
            self.close()
            raise RuntimeError(f"math-verify worker did not start (got {line!r})")

    def _readline(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None  # worker died
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def compare(self, gold: str, pred: str, timeout: float) -> tuple[bool, str | None]:
        """(equivalent, problem); problem is "timeout" or an error text when the check did not finish."""
        try:
            self.proc.stdin.write((json.dumps([gold, pred]) + "\n").encode())
            self.proc.stdin.flush()
            line = self._readline(timeout)
        except (BrokenPipeError, OSError):
            line = None
        if line is None:
            timed_out = self.proc.poll() is None
            self.close()
            self._start()
            return False, ("math-verify timeout" if timed_out else "math-verify worker died")
        res = json.loads(line)
        return bool(res["ok"]), res.get("error")

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass


_pool: "queue.LifoQueue[MathWorker]" = queue.LifoQueue()
_all: list[MathWorker] = []
_lock = threading.Lock()


def _acquire() -> MathWorker:
    try:
        return _pool.get_nowait()
    except queue.Empty:
        w = MathWorker()
        with _lock:
            _all.append(w)
        return w


@atexit.register
def shutdown() -> None:
    """Kill every worker (also registered at exit)."""
    with _lock:
        for w in _all:
            w.close()
        _all.clear()
    while not _pool.empty():
        _pool.get_nowait()


_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def equivalent(gold: str, pred: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str | None]:
    """Is `pred` the same mathematical answer as `gold`? Returns (equal, note)."""
    if pred is None or gold is None:
        return False, None
    g, p = normalize(_unwrap_dollars(gold)), normalize(_unwrap_dollars(pred))
    if g == p and p:
        return True, None
    if _PLAIN_NUMBER.fullmatch(g) and _PLAIN_NUMBER.fullmatch(p):
        # Two plain decimals: their numeric equality is math-verify's answer too, without a worker
        # process (most wrong answers on numeric benchmarks end here).
        return Decimal(g) == Decimal(p), None
    w = _acquire()
    try:
        return w.compare(gold, pred, timeout)
    finally:
        if w.proc is not None and w.proc.poll() is None:
            _pool.put(w)
