"""Preemption: save a checkpoint at the end of the current step on SIGTERM / SIGUSR1 / SIGINT, then exit non-zero.

Slurm sends SIGTERM before it preempts a job or kills it at its time limit (then SIGKILL after the
cluster's GraceTime / KillWait), and the signal of `sbatch --signal=...@<seconds>` that many seconds
before the time limit (the profile asks for SIGTERM 10 minutes ahead: workflow/profiles/slurm). Ctrl-C
(SIGINT) does the same; a second Ctrl-C stops at once. The handler, installed by `python -m ilr train`
in the main thread, only sets a flag; each trainer looks at it at the end of every optimizer step, and
the processes of a multi-process job agree on it (a signal may reach only some of them):

- TRL trainers (grpo, ILR members): `StopCallback.on_step_end` sets `control.should_save` and
  `control.should_training_stop`, so transformers writes `checkpoints/checkpoint-<step>` and leaves
  the loop. The ILR members run in threads: the first member decides for the step and the others
  follow (`decide`, ilr/train/ilr.py), so that every member stops after the same step.
- ppo: its own loop checks `requested()` after each step, saves and stops.

The trainer then raises `Interrupted`; the stage exits with 128 + the signal number, Snakemake marks
the job failed, and the retry (or Slurm's requeue) resumes from that checkpoint (a run resumes from
its newest complete checkpoint whenever it starts).
"""

from __future__ import annotations

import signal
import sys
import threading

from ilr.train import dist

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
_flag = threading.Event()
_received: list[int] = []


class Interrupted(Exception):
    """Training stopped early on a signal; a checkpoint of `step` was saved."""

    def __init__(self, step: int):
        self.step = step
        signum = _received[0] if _received else signal.SIGTERM
        self.exit_code = 128 + int(signum)
        super().__init__(f"stopped on {signal.Signals(signum).name} after step {step}; "
                         f"checkpoint saved, exiting {self.exit_code} (the rerun resumes from it)")


def _handler(signum, frame) -> None:
    if signum == signal.SIGINT and _received:   # Ctrl-C twice: stop now, without a checkpoint
        signal.default_int_handler(signum, frame)
    if not _received:
        print(f"[ilr train] received {signal.Signals(signum).name}: saving a checkpoint at the end of the "
              "current step, then exiting", file=sys.stderr, flush=True)
    _received.append(signum)
    _flag.set()


def install() -> None:
    """Install the handlers (main thread only, as Python requires)."""
    for s in SIGNALS:
        signal.signal(s, _handler)


def requested() -> bool:
    return _flag.is_set()


def reset() -> None:
    """For tests in one process."""
    _flag.clear()
    _received.clear()


def agreed() -> bool:
    """Whether any process of the job received a signal (a collective: every process asks at the same point)."""
    return dist.any_rank(requested())


def stop_callback(decide=None):
    """A transformers TrainerCallback that saves and stops at the end of the step when a signal came.

    `decide(step)` (ILR members) returns the group's common decision; by default `agreed()`.
    """
    from transformers import TrainerCallback

    decide = decide or (lambda step: agreed())

    class StopCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if decide(state.global_step) and state.global_step < state.max_steps:
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopCallback()
