"""The math-verify side of ilr.grading.mathcheck: what runs in the worker processes.

A worker answers JSON lines on a socket: {"gold": Form, "preds": [Form, ...], "first_found": bool} ->
{"ok": bool, "extracted": str | None, "nothing": bool} (or "error"). Forms are ("answer", s), parsed as
`\\boxed{s}`, or ("text", s), read by math-verify's own extraction (`parse` with its default
LatexExtractionConfig and ExprExtractionConfig).

Workers are forked from one zygote process that has imported math-verify and run a warm-up (the first
parse and verify of a process import much of sympy and build the LaTeX parser's tables: about a
second): n workers then cost one start-up, and a worker killed after a timeout is replaced at once.
The zygote takes a socket per worker over its control socket (SCM_RIGHTS), forks, and reports the pid.

math-verify's own timeouts (signal.alarm) are off here (`parsing_timeout=None`, `timeout_seconds=None`):
the caller enforces its limit by killing the worker.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket

_CACHE_MAX = 4096


def _unwrap_dollars(s: str) -> str:
    s = s.strip()
    if s.startswith("$") and s.endswith("$"):  # "$x$" -> "x"; "$a$,$b$" -> "a,b"
        s = s.replace("$", "")
    return s.strip()


def parse_form(form, cache: dict | None = None):
    from math_verify import parse

    mode, s = form
    key = (mode, s)
    if cache is not None and key in cache:
        return cache[key]
    if mode == "answer":
        inner = _unwrap_dollars(s)
        out = parse("\\boxed{" + inner + "}", parsing_timeout=None)
        if not any(not isinstance(x, str) for x in out):  # e.g. \boxed{35\%} does not parse, $35\%$ does
            alt = parse("$" + inner + "$", parsing_timeout=None)
            if any(not isinstance(x, str) for x in alt):
                out = alt
    else:  # math-verify's own extraction over the whole text (its default targets and priorities)
        out = parse(s, parsing_timeout=None)
    # answers and golds recur (a record's gold is another pair's answer; RL groups share a gold);
    # parsing is most of a check's time. Long completions are not worth keeping.
    if cache is not None and len(s) < 2000:
        if len(cache) > _CACHE_MAX:
            cache.clear()
        cache[key] = out
    return out


def _shown(parsed: list, form) -> str:
    """What an answer read as `form` looks like in the output's `extracted`."""
    if form[0] == "answer":
        return form[1]
    strings = [x for x in parsed if isinstance(x, str)]
    return strings[-1] if strings else str(parsed[0])


def check(gold, preds, first_found: bool, cache: dict | None = None) -> dict:
    """Is one of `preds` the gold? `first_found`: only the first pred that math-verify can read counts
    (a completion read by math-verify, with text fallbacks); otherwise any (the last box, or all boxes)."""
    from math_verify import verify

    g = parse_form(tuple(gold), cache)
    shown = None
    for form in preds:
        p = parse_form(tuple(form), cache)
        if not p:
            continue
        shown = _shown(p, tuple(form))
        if g and verify(g, p, timeout_seconds=None):
            return {"ok": True, "extracted": shown}
        if first_found:
            break
    return {"ok": False, "extracted": shown, "nothing": shown is None}


def _warm_up() -> None:
    """Import what the first check would import (much of sympy, the LaTeX parser) before any time limit
    runs. One check: priming the parser further costs the zygote more than it saves its workers."""
    try:
        check(("answer", "x+1"), [("answer", "\\frac{1}{2}")], True)
    except Exception:  # noqa: BLE001  (a warm-up, nothing depends on it)
        pass


def serve(fd: int) -> None:
    """Answer requests on the socket `fd` until it closes."""
    sock = socket.socket(fileno=fd)
    rfile, wfile = sock.makefile("rb"), sock.makefile("wb")
    cache: dict = {}
    wfile.write(b"ready\n")
    wfile.flush()
    for line in rfile:
        req = json.loads(line)
        try:
            res = check(req["gold"], req["preds"], req["first_found"], cache)
        except Exception as e:  # noqa: BLE001
            res = {"ok": False, "extracted": None, "error": f"{type(e).__name__}: {e}"[:200]}
        wfile.write((json.dumps(res) + "\n").encode())
        wfile.flush()


def _quiet() -> None:
    logging.disable(logging.WARNING)  # math-verify warns that its own timeout is off: the caller enforces one
    import math_verify  # noqa: F401


def worker_main(fd: int) -> None:
    """A worker started on its own (when no zygote is available)."""
    _quiet()
    _warm_up()
    serve(fd)


def _reap(signum, frame) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def zygote_main(ctl_fd: int) -> None:
    """Import and warm up once, then fork a worker for every socket received on `ctl_fd`; when the
    grader closes its end, wait for the workers (their sockets are closed too) and exit."""
    _quiet()
    _warm_up()
    signal.signal(signal.SIGCHLD, _reap)  # reaped here, so that their CPU time counts as ours (rusage)
    ctl = socket.socket(fileno=ctl_fd)
    ctl.sendall(b"ready\n")
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 16, 1)
        except OSError:
            break
        if not msg or not fds:
            break  # the grader closed its end (or exited)
        pid = os.fork()
        if pid == 0:
            try:
                ctl.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                serve(fds[0])
            finally:
                os._exit(0)
        os.close(fds[0])
        ctl.sendall(f"{pid}\n".encode())
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
