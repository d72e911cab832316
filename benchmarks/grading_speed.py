"""Grading speed. `python benchmarks/grading_speed.py [--data DIR] [--workers N] [--repeat R] [--skip-mbpp]`

1. MBPP: all 500 test-split reference programs, each in the sandbox; then the first 200 cut at half their
   length (most do not compile), graded by `grade_many` (a compile-only pass) and by a sandboxed run each.
2. The 1,000 MATH-500 pairs (each reference solution against its own gold and against the next
   record's gold), graded three ways side by side:
   - a plain serial math-verify loop in this process: `verify(parse("\\boxed{gold}"), parse(solution))`,
     math_verify already imported (the baseline);
   - `grade_many(..., workers=N)` in this process, its math-verify workers already started;
   - end to end, each in a fresh interpreter: `python -m ilr grade IN OUT --workers N` against a
     script that imports math_verify and runs the same serial loop.
   Each is run `--repeat` times (default 3) and the fastest run counts (the machine is shared; the
   minimum is the least disturbed). End to end, the CPU time of each process tree is printed too (it
   does not depend on what else runs). The last line is the ratio ilr grade / serial loop, end to end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ilr.benchmarks import load_records  # noqa: E402
from ilr.grading import _MathJob, _math_plan, grade, grade_many  # noqa: E402
from ilr.grading import mathcheck  # noqa: E402
from ilr.grading.sandbox import Limits  # noqa: E402

DATA = REPO.parent / "shared" / "data"

SERIAL_SCRIPT = """
import json, logging, sys, time
t0 = time.perf_counter()
logging.disable(logging.WARNING)
from math_verify import parse, verify
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    g = parse("\\\\boxed{" + r["answer"] + "}", parsing_timeout=None)
    p = parse(r["completion"], parsing_timeout=None)
    n += bool(verify(g, p, timeout_seconds=None))
print(json.dumps({"correct": n, "seconds": time.perf_counter() - t0}))
"""


def math_pairs(data: Path) -> tuple[list[dict], list[str]]:
    math = load_records({"source": "math500", "path": str(data / "math500/test.jsonl")})
    sols = [r["metadata"]["solution"] for r in math]
    shifted = [dict(r, answer=math[(i + 1) % len(math)]["answer"]) for i, r in enumerate(math)]
    return math + shifted, sols + sols


def serial_loop(records: list[dict], completions: list[str]) -> tuple[float, int]:
    from math_verify import parse, verify

    t = time.perf_counter()
    n = 0
    for r, c in zip(records, completions):
        g = parse("\\boxed{" + r["answer"] + "}", parsing_timeout=None)
        n += bool(verify(g, parse(c, parsing_timeout=None), timeout_seconds=None))
    return time.perf_counter() - t, n


def ours(records: list[dict], completions: list[str], workers: int) -> tuple[float, int]:
    t = time.perf_counter()
    grades = grade_many(records, completions, workers=workers)
    return time.perf_counter() - t, sum(g.correct for g in grades)


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def end_to_end(records: list[dict], completions: list[str], workers: int, tmp: Path) -> tuple:
    """(wall ours, wall serial, correct ours, correct serial, CPU ours, CPU serial): each a fresh process
    (its workers included in its CPU time)."""
    src = tmp / "pairs.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for r, c in zip(records, completions):
            f.write(json.dumps({"kind": "math", "answer": r["answer"], "completion": c}) + "\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t, c = time.perf_counter(), _cpu_children()
    subprocess.run([sys.executable, "-m", "ilr", "grade", str(src), str(tmp / "out.jsonl"), "--workers", str(workers)],
                   check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_ours, c_ours = time.perf_counter() - t, _cpu_children() - c
    n_ours = sum(json.loads(ln)["correct"] for ln in open(tmp / "out.jsonl", encoding="utf-8"))
    t, c = time.perf_counter(), _cpu_children()
    out = subprocess.run([sys.executable, "-c", SERIAL_SCRIPT, str(src)], check=True, capture_output=True, text=True,
                         env=env, cwd=tmp)
    t_serial, c_serial = time.perf_counter() - t, _cpu_children() - c
    return t_ours, t_serial, n_ours, json.loads(out.stdout)["correct"], c_ours, c_serial


def cut_programs(recs: list[dict], workers: int) -> None:
    """The reference programs cut at half their length (where a length-limited model stops; most do not compile):
    `grade_many` (one compile-only sandboxed run for those, ilr/grading/sandbox.py) against a sandboxed run each.
    Wall time and the CPU time of the sandbox processes; the grades must be the same."""
    # the CPU limit, far below the wall limit, ends the cut programs that loop forever (one reason however loaded)
    limits = Limits(wall_seconds=60, cpu_seconds=1, memory_bytes=512 << 20)
    cut = [r["answer"][:len(r["answer"]) // 2] for r in recs]
    figures = {}
    for name, run in (("a run each", lambda: [grade(r, c, limits) for r, c in zip(recs, cut)]),
                      ("grade_many", lambda: grade_many(recs, cut, workers=workers, limits=limits))):
        c0, t = _cpu_children(), time.perf_counter()
        grades = run()
        figures[name] = (time.perf_counter() - t, _cpu_children() - c0, grades)
    alone, batch = figures["a run each"][2], figures["grade_many"][2]
    refused = sum(1 for g in alone if g.reason and ("SyntaxError" in g.reason or "IndentationError" in g.reason))
    print(f"MBPP reference programs cut at half: {len(recs)}, {refused} do not compile; same grades both ways: "
          f"{batch == alone}")
    for name, (dt, cpu, _) in figures.items():
        print(f"  {name}: {dt:.2f} s, sandbox CPU {cpu:.2f} s")
    print(f"  ratio grade_many / a run each: {figures['grade_many'][0] / figures['a run each'][0]:.2f} (wall), "
          f"{figures['grade_many'][1] / figures['a run each'][1]:.2f} (sandbox CPU)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-mbpp", action="store_true")
    a = ap.parse_args()
    logging.disable(logging.WARNING)
    data = Path(a.data)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, commit {commit or '?'}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}, workers={a.workers}, best of {a.repeat}")

    if not a.skip_mbpp:
        mbpp = load_records({"source": "mbpp", "path": str(data / "mbpp/test.jsonl")})
        t = time.perf_counter()
        grades = grade_many(mbpp, [r["answer"] for r in mbpp], workers=a.workers)
        dt = time.perf_counter() - t
        for r, g in zip(mbpp, grades):
            if not g.correct:
                print(f"  {r['id']}: {g.reason}")
        print(f"MBPP reference programs, sandboxed: {len(mbpp)} in {dt:.2f} s ({len(mbpp) / dt:.1f}/s), "
              f"{sum(g.correct for g in grades)} pass")
        cut_programs(mbpp[:200], a.workers)

    records, completions = math_pairs(data)
    plans = [_math_plan(r, c) for r, c in zip(records, completions)]
    n_jobs = sum(isinstance(p, _MathJob) for p in plans)
    print(f"MATH-500 pairs: {len(records)} ({len(records) // 2} own gold, {len(records) // 2} next record's gold); "
          f"{len(records) - n_jobs} decided without math-verify (same answer up to markup, equal or different "
          f"numbers, a number against a list or a word), "
          f"{n_jobs} through math-verify workers")
    t_serial, t_ours, n_serial, n_ours = [], [], 0, 0
    for _ in range(a.repeat):
        dt, n_serial = serial_loop(records, completions)
        t_serial.append(dt)
        # fresh workers each time (their parse caches would carry over), started outside the timing
        # as math_verify is imported outside the serial loop's
        mathcheck.shutdown()
        mathcheck.warm(a.workers)
        dt, n_ours = ours(records, completions, a.workers)
        t_ours.append(dt)
    print(f"  in-process, serial math-verify loop: {min(t_serial):.2f} s ({n_serial} correct)")
    print(f"  in-process, grade_many, {a.workers} workers (started): {min(t_ours):.2f} s ({n_ours} correct)")
    mathcheck.shutdown()
    e2e_ours, e2e_serial, cpu_ours, cpu_serial = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.repeat):
            to, ts, no, ns, co, cs = end_to_end(records, completions, a.workers, Path(tmp))
            e2e_ours.append(to)
            e2e_serial.append(ts)
            cpu_ours.append(co)
            cpu_serial.append(cs)
    print(f"  end to end, python serial math-verify loop: {min(e2e_serial):.2f} s, CPU {min(cpu_serial):.2f} s "
          f"({ns} correct)")
    print(f"  end to end, python -m ilr grade --workers {a.workers}: {min(e2e_ours):.2f} s, CPU {min(cpu_ours):.2f} s "
          f"({no} correct)")
    print(f"RATIO in-process grade_many / serial loop: {min(t_ours) / min(t_serial):.2f}")
    print(f"RATIO end to end ilr grade / serial loop: {min(e2e_ours) / min(e2e_serial):.2f}")


if __name__ == "__main__":
    main()
