"""The `train` stage: one method, one group (or one model for single-agent methods), one seed.

A method's `trainer` (config `methods.<name>.trainer`) names a trainer of ilr/trainers.py (TRAINERS:
its module, single or group, the extra models it loads, its memory estimate); each module defines
`train(config, args)` with the arguments below. Every trained model lands in
`<out-dir>/<model>/final/` (model + tokenizer, save_pretrained), written once by the main process of a
multi-process job (ilr/train/dist.py). On SIGTERM / SIGUSR1 / SIGINT (Slurm preemption, time limit,
Ctrl-C) the run saves a checkpoint at the end of the current step and exits with 128 + the signal
number; rerun, it resumes there (ilr/train/preempt.py).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ilr.trainers import TRAINERS

NOT_TRAINING_INPUTS = ("report_to",)   # training args left out of the rerun trigger (config_slice)


def config_slice(config: dict, method: str, group: str, seed=None) -> dict:
    """The config one training job reads (Snakemake's rerun trigger, ilr.study.stage_spec): the method's
    training args (TrainingArgs.as_dict(): `training:` + its keys, p a scalar; not NOT_TRAINING_INPUTS), the trained
    models' paths (and AIPO's helper's), the interaction settings and members of a group run."""
    from ilr import config as cfg

    # report_to only says where the curves go (ilr/train/trackers.py), not what is trained: a change reruns nothing
    args = {k: v for k, v in cfg.training_args(config, method).as_dict().items() if k not in NOT_TRAINING_INPUTS}
    spec = {"training": args, "prompts": config["prompts"],
            "data": config["data"]["train"],
            "models": {n: config["models"][n]["path"] for n in cfg.trained_names(config, method, group)},
            "generation": config["generation"], "numerics": config["numerics"]}
    if seed is not None:
        spec["seed"] = int(seed)
    if cfg.is_group_run(config, method):
        spec["interaction"] = config["interaction"]
        spec["members"] = list(config["groups"][group])
    m = cfg.method_config(config, method)
    for key in TRAINERS[m["trainer"]].extra_models:   # AIPO's helper model, loaded for inference
        if m.get(key) is not None:
            spec[f"{key}_path"] = config["models"][m[key]]["path"]
    return spec


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
    from ilr.train import dist, preempt

    preempt.install()  # main thread: the trainers only look at the flag it sets
    dist.init()
    config = cfg.load(args.config)
    method = cfg.method_config(config, args.method)
    if TRAINERS[method["trainer"]].vllm and config["generation"]["engine"] == "vllm":
        from ilr.vllm_engine import check_engine_here

        for name in cfg.trained_names(config, args.method, args.group):
            check_engine_here(config, config["models"][name]["path"], args.config)
    torch.manual_seed(args.seed)
    try:
        importlib.import_module(TRAINERS[method["trainer"]].module).train(config, args)
    except preempt.Interrupted as e:
        print(f"[ilr train] {e}", file=sys.stderr, flush=True)
        return e.exit_code
    if dist.is_main():
        from ilr.layout import RunPaths
        from ilr.report.curves import plot_training_curve

        plot_training_curve(args.out_dir, title=f"{args.method} / {args.group} / seed {args.seed}")
        # finished: running this job again means retraining (a forced rerun), not resuming (train.smk)
        RunPaths(args.out_dir).done.write_text("finished\n")
    return 0
