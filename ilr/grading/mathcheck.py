"""Math answer equivalence: cheap string and number checks here, then math-verify in a worker process
under a time limit.

Each side of a comparison is a `Form`: ("answer", s), an answer alone, parsed by math-verify as
`\\boxed{s}`; or ("text", s), a whole completion (or a gold written as prose), read by math-verify's own
extraction (`parse` with its default LatexExtractionConfig and ExprExtractionConfig, as TRL's accuracy
reward and Open-R1 use it).

math-verify's own timeout uses signal.alarm, which works only in the main thread; here it is turned
off and each comparison runs in a worker process (ilr.grading._mathworker, JSON lines over a socket).
The caller waits at most `timeout` seconds; a worker that overruns is killed and replaced, so a
pathological expression costs one comparison, not the run. Workers are forked from one warmed-up
zygote process (one start-up for all of them, and a replacement in milliseconds), shared through a
pool, and safe to use from any thread; `warm(n)` readies n of them before a batch.
"""

from __future__ import annotations

import atexit
import dataclasses
from decimal import Decimal, InvalidOperation
import json
import os
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ilr.grading import numeric

DEFAULT_TIMEOUT = 10.0
STARTUP_TIMEOUT = 120.0
_ROOT = str(Path(__file__).resolve().parents[2])

Form = tuple  # (mode, text): mode "answer" (an answer alone) or "text" (math-verify extracts from it)

# ---------------------------------------------------------------------------------------- strings
_DROP = [r"\left", r"\right", r"\!", r"\,", r"\;", r"\:", r"\ ", "$", r"\displaystyle", r"^\circ", r"^{\circ}",
         r"\%", "%", r"\$"]


# a comma and a space before three digits (`1, 234`) is a list, not a thousands separator (`1,234`):
# marked before spaces go, so that the two never compare equal
_LIST_COMMA = re.compile(r"(?<=\d),\s+(?=\d{3}(?!\d))")


def normalize(s: str) -> str:
    """Light, safe normalisation for the exact-match fast path (no semantic rewriting)."""
    s = str(s).strip()
    s = _LIST_COMMA.sub(";", s)
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


_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_THOUSANDS = re.compile(r"-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")


def plain_number(s: str) -> Decimal | None:
    """The value of an answer that is only a decimal number, thousands separators allowed as
    math-verify reads them (`10,455`, `10{,}455`, `1\\,000`); None otherwise."""
    t = normalize(_unwrap_dollars(s)).replace("{,}", ",")
    if _THOUSANDS.fullmatch(t):
        t = t.replace(",", "")
    if not _PLAIN_NUMBER.fullmatch(t):
        return None
    try:
        return Decimal(t)
    except InvalidOperation:
        return None


# ------------------------------------------------------------------------------------------ workers
_LAUNCH = "import sys; sys.path.insert(0, {root!r}); from ilr.grading._mathworker import {fn}; {fn}({fd})"


def _launch(fn: str, fd: int) -> subprocess.Popen:
    """A Python process running ilr.grading._mathworker.`fn`(fd), with `fd` its end of a socket."""
    code = _LAUNCH.format(root=_ROOT, fn=fn, fd=fd)
    return subprocess.Popen([sys.executable, "-c", code], pass_fds=(fd,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)


def _readline(sock: socket.socket, buf: bytearray, timeout: float) -> str | None:
    """One line from `sock` within `timeout` seconds (None on timeout or end of file); `buf` keeps
    what was read past the line."""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if select.select([sock], [], [], left)[0]:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
    i = buf.index(b"\n")
    line = bytes(buf[:i]).decode()
    del buf[:i + 1]
    return line


class _Zygote:
    """One process that imported math-verify and warmed up; it forks ready workers on request."""

    def __init__(self):
        self.ctl, theirs = socket.socketpair()
        self.proc = _launch("zygote_main", theirs.fileno())
        theirs.close()
        self.lock = threading.Lock()
        self.buf = bytearray()
        if _readline(self.ctl, self.buf, STARTUP_TIMEOUT) != "ready":
            self.close()
            raise RuntimeError("math-verify zygote did not start")

    def fork(self) -> tuple[socket.socket, int]:
        ours, theirs = socket.socketpair()
        with self.lock:
            try:
                socket.send_fds(self.ctl, [b"w"], [theirs.fileno()])
                line = _readline(self.ctl, self.buf, 30)
            finally:
                theirs.close()
        if not line or not line.isdigit():
            ours.close()
            raise RuntimeError("math-verify zygote did not fork a worker")
        return ours, int(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self):
        self.ctl.close()  # the zygote sees end of file, reaps its workers (their sockets are closed) and exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_zygote: _Zygote | None = None
_zygote_lock = threading.Lock()


def _get_zygote() -> _Zygote | None:
    """The shared zygote, started on first use; None where it cannot run (workers then start alone)."""
    global _zygote
    with _zygote_lock:
        if _zygote is None or not _zygote.alive():
            try:
                _zygote = _Zygote()
            except (RuntimeError, OSError):
                _zygote = None
        return _zygote


class MathWorker:
    """A math-verify worker process and its socket: forked from the zygote when there is one, else
    started on its own."""

    def __init__(self):
        self.sock: socket.socket | None = None
        self.pid: int | None = None
        self.pidfd: int | None = None  # signals go through it: never to a recycled pid
        self.proc: subprocess.Popen | None = None  # set when started on its own
        self.buf = bytearray()
        self._start()

    def _start(self):
        self.buf = bytearray()
        zygote = _get_zygote()
        if zygote is not None:
            try:
                self.sock, self.pid = zygote.fork()
            except (RuntimeError, OSError):
                zygote = None
        if zygote is None:
            self.sock, theirs = socket.socketpair()
            self.proc = _launch("worker_main", theirs.fileno())
            theirs.close()
            self.pid = self.proc.pid
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # before Linux 5.3: plain pids
            self.pidfd = None
        if _readline(self.sock, self.buf, STARTUP_TIMEOUT) != "ready":
            self.close()
            raise RuntimeError("math-verify worker did not start")

    def alive(self) -> bool:
        if self.sock is None or self.pid is None:
            return False
        if self.proc is not None:
            return self.proc.poll() is None
        if self.pidfd is not None:  # readable once the process has ended
            return not select.select([self.pidfd], [], [], 0)[0]
        try:
            os.kill(self.pid, 0)
            return True
        except OSError:
            return False

    def request(self, gold: Form, preds: list, first_found: bool, timeout: float) -> dict:
        """The worker's verdict {"ok", "extracted", ...}; "error" is "math-verify timeout" (or says the
        worker died) when the check did not finish in `timeout` seconds. A worker that overran is
        killed and replaced."""
        msg = {"gold": list(gold), "preds": [list(p) for p in preds], "first_found": first_found}
        try:
            self.sock.sendall((json.dumps(msg) + "\n").encode())
            line = _readline(self.sock, self.buf, timeout)
        except OSError:
            line = None
        if line is None:
            timed_out = self.alive()
            self.close()
            self._start()
            return {"ok": False, "extracted": None,
                    "error": "math-verify timeout" if timed_out else "math-verify worker died"}
        return json.loads(line)

    def compare(self, gold: str, pred: str, timeout: float) -> tuple[bool, str | None]:
        """(equivalent, problem) for two answers alone; problem is "math-verify timeout" or an error text."""
        res = self.request(("answer", gold), [("answer", pred)], True, timeout)
        return bool(res["ok"]), res.get("error")

    def close(self):
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            elif self.proc is not None:
                self.proc.kill()
            elif self.pid is not None:
                os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self.proc is not None:
            self.proc.wait()
            self.proc = None
        if self.sock is not None:
            self.sock.close()
        self.sock, self.pid = None, None


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


def _release(w: MathWorker) -> None:
    if w.alive():
        _pool.put(w)


def warm(n: int) -> None:
    """Have at least `n` idle workers (forked from the zygote: one start-up for all of them)."""
    for _ in range(n - _pool.qsize()):
        w = MathWorker()
        with _lock:
            _all.append(w)
        _pool.put(w)


def _forget_after_fork() -> None:
    """In a forked child (a data-loader worker, say): start afresh. The parent's workers and zygote are
    the parent's: the child must neither use their sockets (answers would interleave) nor kill them."""
    global _pool, _all, _lock, _zygote, _zygote_lock
    _pool, _all, _lock = queue.LifoQueue(), [], threading.Lock()
    _zygote, _zygote_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


@atexit.register
def shutdown() -> None:
    """Kill every worker and the zygote (also registered at exit)."""
    global _zygote
    with _lock:
        for w in _all:
            w.close()
        _all.clear()
    while not _pool.empty():
        _pool.get_nowait()
    with _zygote_lock:
        if _zygote is not None:
            _zygote.close()
            _zygote = None


def _check(gold: Form, preds: list, first_found: bool, cache: dict | None = None) -> dict:
    """In this process (math-verify imported here): see _mathworker.check."""
    from ilr.grading._mathworker import check as check_here

    return check_here(gold, preds, first_found, cache)


def _compare(gold: str, pred: str) -> bool:
    """Two answers alone, in this process (kept for callers of the old interface)."""
    return _check(("answer", gold), [("answer", pred)], True)["ok"]


# ------------------------------------------------------------------------------------------ verdicts
@dataclasses.dataclass
class Verdict:
    ok: bool
    extracted: str | None     # the answer that was compared (math-verify's reading for "text" forms)
    note: str | None = None   # why it is not ok beyond "wrong answer" (timeout, nothing found, ...)


def quick_check(gold: Form, preds: list) -> Verdict | None:
    """The verdict when cheap checks decide it, in this process: an answer that is the gold up to
    spacing and markup is accepted; answers that are all plain numbers are compared by value with a
    plain-number gold; simple numeric answers (fractions, roots, pi) are compared by value when the
    comparison is certain (ilr.grading.numeric) — math-verify's verdict in each case. None:
    math-verify must decide."""
    answers = [p[1] for p in preds if p[0] == "answer"]
    shown = preds[0][1] if preds and preds[0][0] == "answer" else None
    g = normalize(_unwrap_dollars(gold[1]))
    for a in answers:
        if g and normalize(_unwrap_dollars(a)) == g:
            return Verdict(True, a)
    if gold[0] == "answer" and preds and all(p[0] == "answer" for p in preds):
        g_num = plain_number(gold[1])
        nums = [plain_number(a) for a in answers]
        if g_num is not None and all(x is not None for x in nums):
            return Verdict(any(x == g_num for x in nums), shown)
        # fractions, roots, pi: compared here when it is certain; a number against a list or a word is
        # wrong (ilr.grading.numeric)
        g_val = numeric.value(gold[1])
        if g_val is not None:
            verdicts = [numeric.same(g_val, v) if (v := numeric.value(a)) is not None
                        else (False if numeric.not_a_number(a) else None) for a in answers]
            for a, same in zip(answers, verdicts):
                if same:
                    return Verdict(True, a)
            if all(same is False for same in verdicts):
                return Verdict(False, shown)
        elif numeric.not_a_number(gold[1]) and all(numeric.value(a) is not None for a in answers):
            return Verdict(False, shown)
    return None


def worker_check(gold: Form, preds: list, first_found: bool = False, timeout: float = DEFAULT_TIMEOUT,
                 worker: MathWorker | None = None) -> Verdict:
    """The verdict of math-verify, in a worker process under `timeout` seconds (`worker`, held by the
    caller, or one from the pool)."""
    shown = preds[0][1] if preds and preds[0][0] == "answer" else None
    w = worker or _acquire()
    try:
        res = w.request(gold, preds, first_found, timeout)
    finally:
        if worker is None:
            _release(w)
    note = res.get("error")
    if not res["ok"] and note is None and res.get("nothing"):
        note = "no answer found (math-verify read nothing it could parse)"
    return Verdict(bool(res["ok"]), res.get("extracted") or shown, note)


def check(gold: Form, preds: list, first_found: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    """Is one of `preds` (Forms, in order) the same answer as `gold` (a Form)? Cheap checks first
    (quick_check), then math-verify (worker_check). `first_found`: see _check."""
    return quick_check(gold, preds) or worker_check(gold, preds, first_found, timeout)


def equivalent(gold: str, pred: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str | None]:
    """Is the answer `pred` the same mathematical answer as the gold answer `gold`? (equal, note)."""
    if pred is None or gold is None:
        return False, None
    v = check(("answer", gold), [("answer", pred)], True, timeout)
    return v.ok, v.note
