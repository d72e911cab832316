"""Ability gamma_i (METHOD.md section 1): model i's accuracy on the validation set.

(choice) greedy decoding, one sample per question; `ability.samples` > 1 at `ability.temperature`
gives the mean accuracy over k samples.
"""

from __future__ import annotations

import argparse

from ilr.io import read_jsonl, write_json


def config_slice(config: dict, model: str) -> dict:
    """The config this stage reads for one model (Snakemake's rerun trigger, ilr.study.stage_spec)."""
    return {"ability": config["ability"], "prompts": config["prompts"], "path": config["models"][model]["path"],
            "data": config["data"]["train"], "generation": config["generation"], "numerics": config["numerics"]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--model", required=True, help="the model's name in config `models:`")
    p.add_argument("--val", required=True, help="validation records (JSONL)")
    p.add_argument("--out", required=True)


def main(args: argparse.Namespace) -> int:
    from ilr import config as cfg
    from ilr.evaluate import answer_and_grade
    from ilr.generation import open_engine
    from ilr.prompts import load as load_prompts

    config = cfg.load(args.config)
    ab = config["ability"]
    model = config["models"][args.model]
    engine = open_engine(config, model["path"], model["size"], source=args.config)
    records = read_jsonl(args.val)
    graded = answer_and_grade(engine, load_prompts(config["prompts"]), records, ab["samples"], ab["temperature"],
                              ab["max_new_tokens"], progress=True)
    gamma = sum(r["correct"] for r in graded) / len(graded)
    write_json(args.out, {"model": args.model, "gamma": gamma, "n": len(records), "samples": ab["samples"],
                          "temperature": ab["temperature"],
                          "records": [{k: r[k] for k in ("id", "sample", "correct", "extracted")} for r in graded]})
    print(f"gamma[{args.model}] = {gamma:.3f} on {len(records)} validation questions")
    return 0
