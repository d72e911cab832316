"""One tiny job as a plain process and forked from the warm server (ilr/warm.py), side by side.

The job is `ilr build-model` on the tiny default's tiny-llama with few warm-up steps: torch, transformers
and a little training, like most of the demo's jobs. Each run is timed from the client's start to its exit
(what Snakemake waits for), plain and forked alternately, `--repeat` times each; the server's own start-up
(its imports, once per Snakemake run) is printed apart. Both runs must write the same weights.

    python benchmarks/warm_start.py [--repeat 5] [--warmup-steps 30]

Last line: `ratio X.XX` (median forked over median plain).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup-steps", type=int, default=30)
    a = ap.parse_args()

    from ilr import warm

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["models"]["tiny-llama"]["build"]["warmup_steps"] = a.warmup_steps
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "c.yaml").write_text(yaml.safe_dump(config))
        t = time.perf_counter()
        server = warm.start(config["numerics"])
        while not os.path.exists(server.ilr_socket):
            if server.poll() is not None:
                sys.exit("the warm server exited")
            time.sleep(0.05)
        print(f"server start-up (once per Snakemake run): {time.perf_counter() - t:.2f} s")
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(config["numerics"]["threads"]))
        times, digests = {"plain": [], "forked": []}, set()
        try:
            for i in range(a.repeat):
                for kind in ("plain", "forked"):
                    out = Path(d) / f"{kind}{i}"
                    e = dict(env, **{warm.SOCKET_ENV: server.ilr_socket if kind == "forked" else ""})
                    t = time.perf_counter()
                    r = subprocess.run([sys.executable, "-m", "ilr.warm", "ilr", "build-model", "--config", "c.yaml",
                                        "--model", "tiny-llama", "--out", str(out)], cwd=d, env=e,
                                       capture_output=True, text=True)
                    times[kind].append(time.perf_counter() - t)
                    if r.returncode:
                        sys.exit(f"{kind} run failed:\n{r.stderr[-2000:]}")
                    digests.add(hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest())
        finally:
            warm.stop(server)
    if len(digests) != 1:
        sys.exit("plain and forked runs wrote different weights")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    print(f"{datetime.date.today()} commit {commit}; build-model, {a.warmup_steps} warm-up steps, "
          f"{a.repeat} runs each, the same weights")
    for kind, ts in times.items():
        print(f"{kind:7s} median {statistics.median(ts):.2f} s  ({', '.join(f'{x:.2f}' for x in ts)})")
    print(f"ratio {statistics.median(times['forked']) / statistics.median(times['plain']):.2f}")


if __name__ == "__main__":
    main()
