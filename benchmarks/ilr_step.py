"""One ILR step of a group of m models against m TRL GRPO steps (one per model), side by side, with a profile.

Same models, prompts, questions and G. A step's time is the wall time from one optimizer step to the next
(generation, loss, backward, optimizer, logging; for ILR the whole group: every member's update and the group
rollout they wait for), median over the steps after the first. GRPO's runs then ILR's make a round; the ratio
is the median of the rounds' (this host's speed drifts by a third from one run to the next, whole runs at a
time). The profile splits the steps after the first into phases (wall time, each exclusive of the phases it
calls; ILR's members run one at a time, so the phases of all threads add up to the step; the time a member
waits for its peers is not a phase) and counts tokens.

    python benchmarks/ilr_step.py [--models results/models/tiny-llama results/models/tiny-qwen-s]
                                  [--sizes 64x2 256x4] [--stages fusion] [--rounds 5] [--shared-prefix on|off]

Idea3 generates about (G + 2) / G times the tokens of GRPO if every stage's answers were as long as a solo
answer: that ratio is the token floor (with `--stages sharing,fusion`, G solo answers per model too:
(2G + 1) / G). The profile prints the tokens actually generated and trained on, with and without the padding TRL
adds to a step's rows (the Fusion prompt, with the peers' ideas and the analysis, is several times a solo
prompt, and a member trains on it; with `sharing,fusion` its solo rows are padded to the Fusion prompts'
width), and the positions the loss forward runs where each prompt runs once for its completions
(`training.shared_prefix`, ilr/train/shared_prefix.py; `--shared-prefix off`: TRL's forward). `--sizes
HIDDENxLAYERS` repeats the comparison on untrained models of the first model's architecture at those sizes
(their answers run to max_new_tokens at every stage, the floor's premise), to show the ratio's trend with
model size.
Last line: `ratio X.XX` (the ILR step over the m GRPO steps, on --models).
"""

from __future__ import annotations

import argparse
import collections
import copy
import datetime
import functools
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class Profile:
    """Wall time per phase, exclusive of the wrapped calls it makes, and the trainers' optimizer-step times per
    thread. `wrap(owner, attr, phase)` times every call of owner.attr until `restore()`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.local = threading.local()
        self.events: list[tuple[float, str, float]] = []        # (start, phase, exclusive seconds)
        self.tokens: list[tuple[float, str, int]] = []          # (time, counter, tokens)
        self.step_ends: dict[str, list[float]] = collections.defaultdict(list)
        self.patched: list[tuple[object, str, object]] = []

    def stack(self) -> list:
        if not hasattr(self.local, "stack"):
            self.local.stack = []
        return self.local.stack

    def wrap(self, owner, attr: str, phase: str, after=None) -> None:
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            frame = [time.perf_counter(), 0.0, phase]           # start, time in nested phases, phase
            stack = self.stack()
            stack.append(frame)
            try:
                out = fn(*args, **kwargs)
            finally:
                stack.pop()
                total = time.perf_counter() - frame[0]
                if stack:
                    stack[-1][1] += total
                with self.lock:
                    self.events.append((frame[0], phase, total - frame[1]))
            if after is not None:
                after(self, args, kwargs, out)
            return out

        setattr(owner, attr, timed)
        self.patched.append((owner, attr, fn))

    def watch(self, owner, attr: str, after) -> None:
        """Call after(profile, args, kwargs, result) after every call of owner.attr (not a phase of its own)."""
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def watched(*args, **kwargs):
            out = fn(*args, **kwargs)
            after(self, args, kwargs, out)
            return out

        setattr(owner, attr, watched)
        self.patched.append((owner, attr, fn))

    def count(self, counter: str, n: int) -> None:
        with self.lock:
            self.tokens.append((time.perf_counter(), counter, n))

    def current_phase(self) -> str:
        stack = self.stack()
        return stack[-1][2] if stack else "?"

    def restore(self) -> None:
        for owner, attr, fn in reversed(self.patched):
            setattr(owner, attr, fn)
        self.patched.clear()

    def per_step(self, thread: str) -> tuple[list[float], dict[str, float], dict[str, float]]:
        """The optimizer-step intervals of `thread` after its first step, and per phase and token counter the
        mean per interval."""
        ends = self.step_ends[thread]
        steps = list(zip(ends, ends[1:]))
        phases: dict[str, float] = collections.defaultdict(float)
        tokens: dict[str, float] = collections.defaultdict(float)
        for start, end in steps:
            for t, phase, seconds in self.events:
                if start <= t < end:
                    phases[phase] += seconds / len(steps)
            for t, counter, n in self.tokens:
                if start <= t < end:
                    tokens[counter] += n / len(steps)
        return [b - a for a, b in steps], phases, tokens


WAITING = "(waiting for peers)"


def profiled(run, step_thread: str) -> tuple[float, dict, dict]:
    """Run `run()` (one training run) under a Profile; (median step seconds, phases, tokens) of `step_thread`."""
    import accelerate
    import accelerate.optimizer
    import transformers
    from trl import GRPOTrainer

    from ilr import idea3
    from ilr.generation import Engine
    from ilr.train import ilr as ilr_trainer, shared_prefix

    prof = Profile()

    def count_generated(p, args, kwargs, out):
        stage = p.current_phase().removeprefix("generate: ")
        p.count(f"generated: {stage}", sum(len(s.completion_ids) for ss in out for s in ss))

    def count_trained(p, args, kwargs, out):
        inputs = args[2]
        p.count("trained: completion tokens", int(inputs["completion_mask"].sum()))
        p.count("trained: positions (padded)", inputs["prompt_ids"].numel() + inputs["completion_ids"].numel())
        # the rest of the padded positions is padding: TRL pads a step's rows to its longest prompt and completion
        p.count("trained: positions (unpadded)", int(inputs["prompt_mask"].sum() + inputs["completion_mask"].sum()))

    def count_packed(p, args, kwargs, out):
        # with training.shared_prefix each prompt runs once for its completions: the positions the forward runs
        p.count("trained: positions run (shared prefix)", out.input_ids.numel())

    def step_end(p, args, kwargs, out):
        with p.lock:
            p.step_ends[threading.current_thread().name].append(time.perf_counter())

    for stage in ("sharing", "analysis", "fusion"):
        prof.wrap(idea3, stage, f"generate: Idea3 {stage}")
    prof.watch(Engine, "sample_texts", count_generated)
    prof.wrap(GRPOTrainer, "_generate", "TRL: prompts, generation, padding")
    prof.wrap(ilr_trainer.GroupCoordinator, "group_rollout", "ILR: rewards, calibration, rollout log")
    prof.wrap(ilr_trainer.Turns, "wait", WAITING)
    prof.wrap(threading.Barrier, "wait", WAITING)
    prof.wrap(GRPOTrainer, "compute_loss", "loss forward", after=count_trained)
    prof.watch(shared_prefix, "pack", count_packed)
    prof.wrap(accelerate.Accelerator, "backward", "backward")
    prof.wrap(accelerate.optimizer.AcceleratedOptimizer, "step", "optimizer step")
    prof.wrap(transformers.trainer_callback.CallbackHandler, "on_log", "logging (TensorBoard, trainer log)")
    prof.wrap(transformers.trainer_callback.CallbackHandler, "on_step_end", "callbacks", after=step_end)
    try:
        run()
    finally:
        prof.restore()
    intervals, phases, tokens = prof.per_step(step_thread)
    phases.pop(WAITING, None)
    phases["other (hand-offs, TRL bookkeeping)"] = statistics.mean(intervals) - sum(phases.values())
    return statistics.median(intervals), dict(phases), dict(tokens)


def study_config(paths: list[str], a) -> dict:
    from ilr import study

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    names = [Path(p).name for p in paths]
    config["models"] = {n: {"path": str(p), "size": "small"} for n, p in zip(names, paths)}
    config["groups"] = {"bench": names}
    config["methods"] = {"grpo": {"trainer": "grpo"},
                         "ilr": dict(config["methods"]["ilr"], groups=["bench"])}
    config["tables"] = {"main": {"benchmarks": ["arith"]}}
    config.pop("multi_agent")
    config["training"].update(steps=a.steps, questions_per_step=a.questions, num_generations=a.G,
                              save_steps=10 ** 6, train_stages=a.stages.split(","))
    if a.shared_prefix:
        config["training"]["shared_prefix"] = a.shared_prefix == "on"
    return study.validate(config)   # the schema's defaults filled in, as every stage sees them


def compare(paths: list[str], a, tmp: Path, warm_up: bool = True) -> dict:
    """GRPO on each model, then ILR on the group: step times, phases and tokens per step."""
    from ilr.io import write_json, write_jsonl
    from ilr.tiny.task import generate
    from ilr.train.grpo import train_grpo
    from ilr.train.ilr import train_ilr

    config = study_config(paths, a)
    names = list(config["models"])
    records = generate("tiny_arith", a.steps * a.questions, 11, **config["data"]["train"]["params"])
    write_jsonl(tmp / "train.jsonl", records)
    abilities = []
    for n in names:
        write_json(tmp / f"{n}.json", {"model": n, "gamma": 0.5})
        abilities.append(str(tmp / f"{n}.json"))
    write_jsonl(tmp / "d.jsonl", [{"id": r["id"], "difficulty": 0.5} for r in records])
    main = threading.current_thread().name
    if warm_up:   # one untimed run: what a process does once, at its first training (lazy set-up), is no step's
        short = copy.deepcopy(config)
        short["training"]["steps"] = 2
        train_grpo(short, "grpo", names[0], 0, str(tmp / "train.jsonl"), str(tmp / "warm-up"))
    out = {"grpo": {}, "shared_prefix": config["training"]["shared_prefix"]}
    for n in names:
        out["grpo"][n] = profiled(lambda n=n: train_grpo(copy.deepcopy(config), "grpo", n, 0, str(tmp / "train.jsonl"),
                                                         str(tmp / f"grpo-{n}")), main)
    out["ilr"] = profiled(lambda: train_ilr(config, "ilr", "bench", 0, str(tmp / "train.jsonl"), abilities,
                                            str(tmp / "d.jsonl"), str(tmp / "ilr")), f"ilr-{names[0]}")
    return out


def generated_tokens(tokens: dict[str, float]) -> float:
    # TRL's GRPO generates without ilr's engines: every token it generates is a completion token it trains on
    ours = [v for k, v in tokens.items() if k.startswith("generated")]
    return sum(ours) if ours else tokens["trained: completion tokens"]


def generated_ratio(result: dict) -> float:
    return generated_tokens(result["ilr"][2]) / sum(generated_tokens(r[2]) for r in result["grpo"].values())


def untrained_models(template: str, sizes: list[str], tmp: Path) -> list[list[str]]:
    """Per HIDDENxLAYERS: two untrained models of the template's architecture (seeds 0 and 1) and its tokenizer."""
    from transformers import AutoConfig

    from ilr.generation import load_tokenizer
    from ilr.tiny.build import make_model

    arch = AutoConfig.from_pretrained(template).model_type
    tokenizer = load_tokenizer(template)
    groups = []
    for size in sizes:
        hidden, layers = (int(x) for x in size.split("x"))
        paths = []
        for seed in (0, 1):
            path = tmp / f"untrained-{size}-{seed}"
            model = make_model({"arch": arch, "hidden": hidden, "layers": layers, "heads": max(4, hidden // 32),
                                "seed": seed}, tokenizer)
            model.save_pretrained(path)
            tokenizer.save_pretrained(path)
            paths.append(str(path))
        groups.append(paths)
    return groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["results/models/tiny-llama", "results/models/tiny-qwen-s"])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--questions", type=int, default=8, help="questions per step")
    ap.add_argument("--G", type=int, default=4)
    ap.add_argument("--stages", default="fusion", choices=["fusion", "sharing,fusion"],
                    help="training.train_stages of the ILR run (default: the paper's, fusion; "
                         "the demo's: sharing,fusion)")
    ap.add_argument("--shared-prefix", choices=["on", "off"],
                    help="training.shared_prefix of both sides (default: config/config.yaml's): off is TRL's forward")
    ap.add_argument("--rounds", type=int, default=5,
                    help="GRPO's runs then ILR's, this many times: the ratio is the rounds' median (the host's speed "
                         "drifts from run to run)")
    ap.add_argument("--sizes", nargs="*", default=["64x2", "256x4"],
                    help="HIDDENxLAYERS of untrained models for the trend with model size (none: skip)")
    a = ap.parse_args()

    import gc
    import importlib

    import torch

    from ilr.warm import PRELOAD

    # As in a job forked from ilr/warm.py's server (every local job of the study): its libraries imported before the
    # first step (else the first run's steps import them lazily) and frozen out of the garbage collector's full
    # collections (0.4 s each otherwise, at steps that vary from run to run)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    gc.collect()
    gc.freeze()
    torch.set_num_threads(1)
    for path in a.models:
        if not (Path(path) / "config.json").is_file():
            sys.exit(f"{path}: no model there; run `make demo` (or pass --models DIR DIR)")
    names = [Path(m).name for m in a.models]
    m, G = len(names), a.G
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rounds = []
        for r in range(a.rounds):
            (tmp / f"trained-{r}").mkdir()
            rounds.append(compare(a.models, a, tmp / f"trained-{r}", warm_up=r == 0))
        trend = []
        for size, paths in zip(a.sizes, untrained_models(a.models[0], a.sizes, tmp)):
            (tmp / size).mkdir()
            r = compare(paths, a, tmp / size)
            trend.append((size, sum(g[0] for g in r["grpo"].values()), r["ilr"][0], generated_ratio(r)))

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    print(f"date {datetime.date.today()}  commit {commit}  torch threads 1  steps {a.steps} (median of the "
          f"{a.steps - 1} after the first)  questions/step {a.questions}  G {G}  train_stages {a.stages}  "
          f"shared_prefix {rounds[0]['shared_prefix']}")
    # per round: each side's median step; the profile and tokens: means over the rounds
    grpo = {n: statistics.median(r["grpo"][n][0] for r in rounds) for n in names}
    ratios = [r["ilr"][0] / sum(g[0] for g in r["grpo"].values()) for r in rounds]
    ilr_step = statistics.median(r["ilr"][0] for r in rounds)
    grpo_phases: dict[str, float] = collections.defaultdict(float)
    grpo_tokens: dict[str, float] = collections.defaultdict(float)
    ilr_phases: dict[str, float] = collections.defaultdict(float)
    ilr_tokens: dict[str, float] = collections.defaultdict(float)
    for r in rounds:
        for phase_sum, token_sum, (_, phases, tokens) in [(grpo_phases, grpo_tokens, g) for g in r["grpo"].values()] \
                + [(ilr_phases, ilr_tokens, r["ilr"])]:
            for k, v in phases.items():
                phase_sum[k] += v / len(rounds)
            for k, v in tokens.items():
                token_sum[k] += v / len(rounds)
    print(f"\nprofile, seconds per step (mean over the {len(rounds)} rounds' steps; the GRPO column adds the {m} "
          f"models' steps)")
    print(f"{'phase':44s}{'GRPO':>10s}{'ILR':>10s}")
    for k in sorted(set(grpo_phases) | set(ilr_phases), key=lambda k: (k.startswith("other"), k)):
        print(f"{k:44s}{grpo_phases.get(k, 0.0):10.3f}{ilr_phases.get(k, 0.0):10.3f}")
    print(f"{'step (mean)':44s}{sum(grpo_phases.values()):10.3f}{sum(ilr_phases.values()):10.3f}")
    print("(a mean over the steps: an occasional slow step, of no phase named here, lands in `other`; "
          "the step times below are medians)")
    print(f"\ntokens per step{'':29s}{'GRPO':>10s}{'ILR':>10s}")
    for k in sorted(set(grpo_tokens) | set(ilr_tokens)):
        print(f"{k:44s}{grpo_tokens.get(k, 0):10.0f}{ilr_tokens.get(k, 0):10.0f}")
    padded, unpadded = "trained: positions (padded)", "trained: positions (unpadded)"
    padding = {side: 1 - t[unpadded] / t[padded] for side, t in (("GRPO", grpo_tokens), ("ILR", ilr_tokens))}
    print(f"generated tokens, ILR / GRPO {generated_ratio(rounds[0]):.2f}; trained positions "
          f"{ilr_tokens[padded] / grpo_tokens[padded]:.2f} "
          f"(unpadded {ilr_tokens[unpadded] / grpo_tokens[unpadded]:.2f}); "
          f"padding GRPO {padding['GRPO']:.0%}, ILR {padding['ILR']:.0%}")
    run = "trained: positions run (shared prefix)"
    if run in ilr_tokens and run in grpo_tokens:
        print(f"positions the loss forward runs (training.shared_prefix): GRPO "
              f"{grpo_tokens[run] / grpo_tokens[padded]:.0%}, ILR {ilr_tokens[run] / ilr_tokens[padded]:.0%} of "
              f"TRL's padded rows; ILR / GRPO "
              f"{ilr_tokens[run] / grpo_tokens[run]:.2f}")

    floor = (G + 2) / G if a.stages == "fusion" else (2 * G + 1) / G
    if trend:
        print(f"\ntrend with model size (untrained models, median seconds per step)")
        print(f"{'HIDDENxLAYERS':16s}{'GRPO, all':>12s}{'ILR':>10s}{'ratio':>8s}{'/ floor':>9s}{'gen. tokens':>13s}")
        for size, g, i, tokens in trend:
            print(f"{size:16s}{g:12.3f}{i:10.3f}{i / g:8.2f}{i / g / floor:9.2f}{tokens:13.2f}")
    print(f"\n{'':28s}{'seconds/step':>14s}  (median over the rounds of each round's median)")
    for n in names:
        print(f"GRPO {n:23s}{grpo[n]:14.3f}")
    print(f"GRPO, all {m} models{'':9s}{sum(grpo.values()):14.3f}")
    print(f"ILR, group of {m}{'':11s}{ilr_step:14.3f}")
    ratio = statistics.median(ratios)
    for k, r in enumerate(rounds, start=1):
        steps = " + ".join(f"{r['grpo'][n][0]:.3f} ({generated_tokens(r['grpo'][n][2]):.0f} tok)" for n in names)
        print(f"round {k} (GRPO's runs, then ILR's): GRPO {steps}, ILR {r['ilr'][0]:.3f}, ratio {ratios[k - 1]:.2f}")
    formula = "(G + 2) / G" if a.stages == "fusion" else "(2G + 1) / G"
    print(f"token floor {formula} = {floor:.2f}; ILR / GRPO over the floor {ratio / floor:.2f}")
    print(f"ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
