"""The `train` stage: one method, one group (or one model for single-agent methods), one seed.

Dispatches on the method's `trainer` (config `methods.<name>.trainer`): grpo (TRL's GRPOTrainer),
ppo (a small actor-critic, ilr/train/ppo.py), ilr (the group trainer, ilr/train/ilr.py).
Every trained model lands in `<out-dir>/<model>/final/` (model + tokenizer, save_pretrained).
On SIGTERM / SIGUSR1 (Slurm preemption or time limit) the run saves a checkpoint at the end of the
current step and exits with 128 + the signal number; rerun, it resumes there (ilr/train/preempt.py).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--method", required=True, help="a method of config `methods:` (ratio runs: ilr_ratio_p0.2)")
    p.add_argument("--group", required=True, help="a group of config `groups:` (ILR family) or a model name")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--train", required=True, help="training records (JSONL)")
    p.add_argument("--ability", nargs="*", default=[], help="gamma files of the group's models (ILR family)")
    p.add_argument("--difficulty", help="D_q file of the group (ILR family)")
    p.add_argument("--out-dir", required=True)


def main(args: argparse.Namespace) -> int:
    import torch

    from ilr import config as cfg
    from ilr.train import preempt

    preempt.install()  # main thread: the trainers only look at the flag it sets
    config = cfg.load(args.config)
    method = cfg.method_config(config, args.method)
    torch.manual_seed(args.seed)
    try:
        _dispatch(config, method, args)
    except preempt.Interrupted as e:
        print(f"[ilr train] {e}", file=sys.stderr, flush=True)
        return e.exit_code
    from ilr.report.curves import plot_training_curve

    plot_training_curve(args.out_dir, title=f"{args.method} / {args.group} / seed {args.seed}")
    return 0


def _dispatch(config: dict, method: dict, args: argparse.Namespace) -> None:
    if method["trainer"] == "grpo":
        from ilr.train.grpo import train_grpo
        train_grpo(config, args.method, args.group, args.seed, args.train, args.out_dir)
    elif method["trainer"] == "ppo":
        from ilr.train.ppo import train_ppo
        train_ppo(config, args.method, args.group, args.seed, args.train, args.out_dir)
    elif method["trainer"] == "ilr":
        from ilr.train.ilr import train_ilr
        train_ilr(config, args.method, args.group, args.seed, args.train, args.ability, args.difficulty,
                  args.out_dir)
    else:  # the config schema makes this unreachable
        raise ValueError(f"methods.{args.method}.trainer: unknown trainer {method['trainer']!r}")
