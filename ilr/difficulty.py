"""Question difficulty D_q for every training question of a group (METHOD.md section 2).

Methods (config `difficulty.method`):
- self_rank (paper's "self-ranking", choice of protocol): each model of the group rates each question
  from 1 to 10 with the `rate_difficulty` prompt (greedy); the integer s gives (s - 1) / 9; an
  unparseable rating is missing; D_q is the mean over the models that rated it, and a question no
  model rated gets the median of the others.
- empirical: D_q = 1 - mean pass rate over `samples` completions per model of the group.
- level: the MATH level / 5 (metadata `level`, e.g. "Level 3").
Output: one JSON line per question {id, difficulty, ratings: {model: value or null}} and the
histogram (0.01 bins, the paper's Fig. 4).
"""

from __future__ import annotations

import argparse
import re
import statistics

from ilr.io import read_jsonl, write_jsonl

NUMBER = r"(10(?:\.0+)?|[1-9](?:\.\d+)?)"
# "a scale from 1 to 10", "1-10", "between 1 and 10": the scale, not a rating
SCALE = re.compile(r"\b1\s*(?:\([^)]*\)\s*)?(?:to|-|–|and)\s*10\b", re.IGNORECASE)
EXPLICIT = [re.compile(NUMBER + r"\s*(?:/|out of)\s*10\b", re.IGNORECASE),                 # "7/10", "7 out of 10"
            re.compile(r"(?:rating|difficulty|score|rate(?: it)?(?: as| at)?|would say)\W{0,5}(?:is\W{0,3})?"
                       + NUMBER + r"\b", re.IGNORECASE)]                                     # "Rating: 7"
STANDALONE = re.compile(r"(?<![\d.])" + NUMBER + r"(?![\d.]*\d)")


def parse_rating(text: str) -> float | None:
    """A model's difficulty rating from 1 to 10, scaled to [0, 1]; None when the reply holds none or several.

    An explicit rating ("7/10", "Rating: 7") wins; otherwise, with the scale itself ("from 1 to 10")
    taken out, the reply must hold exactly one number from 1 to 10 (possibly repeated): "7" or
    "I'd say 7." parse, "On a scale of 1 to 10, 4 or 5" does not.
    """
    for pattern in EXPLICIT:
        found = pattern.findall(text)
        if found:
            return (float(found[-1]) - 1) / 9
    values = {float(v) for v in STANDALONE.findall(SCALE.sub(" ", text))}
    return (values.pop() - 1) / 9 if len(values) == 1 else None


def parse_level(record: dict) -> float | None:
    m = re.search(r"\d+", str(record.get("metadata", {}).get("level", "")))
    return None if m is None else int(m.group()) / 5


def combine(ratings: list[dict[str, float | None]]) -> list[float | None]:
    """Mean over models that gave a rating; a question nobody rated gets the median of the rest."""
    means = [None if not (v := [x for x in r.values() if x is not None]) else sum(v) / len(v) for r in ratings]
    known = [d for d in means if d is not None]
    fill = statistics.median(known) if known else 0.5
    return [fill if d is None else d for d in means]


def rate_with_models(config: dict, models: list[str], records: list[dict]) -> list[dict[str, float | None]]:
    import torch

    from ilr.evaluate import answer_and_grade
    from ilr.generation import open_engine
    from ilr.prompts import load as load_prompts
    from ilr.seeding import stable_seed

    spec = config["difficulty"]
    prompts = load_prompts(config["prompts"])
    ratings: list[dict[str, float | None]] = [{} for _ in records]
    for name in models:
        engine = open_engine(config, config["models"][name]["path"], config["models"][name]["size"])
        # sampled ratings (T > 0) are the same in every run and whatever the group's order
        torch.manual_seed(stable_seed("difficulty", name))
        if spec["method"] == "self_rank":
            outs = engine.sample_texts([prompts.rate_difficulty(r) for r in records], n=1,
                                       max_new_tokens=spec["max_new_tokens"], temperature=spec["temperature"],
                                       progress=True)
            values = [parse_rating(o[0].text) for o in outs]
        else:  # empirical
            graded = answer_and_grade(engine, prompts, records, spec["samples"], spec["temperature"],
                                      spec["max_new_tokens"], progress=True)
            k = spec["samples"]
            values = [1.0 - sum(g["correct"] for g in graded[i * k:(i + 1) * k]) / k for i in range(len(records))]
        for row, v in zip(ratings, values):
            row[name] = v
        del engine
    return ratings


def save_histogram(difficulties: list[float], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    import textwrap

    d = np.asarray(difficulties, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    counts, edges, _ = ax.hist(d, bins=np.linspace(0, 1, 101), color="#4477aa")
    nonzero = np.flatnonzero(counts)
    if 0 < len(nonzero) <= 25:  # few distinct values (empirical D_q): label each bar, small ones stay visible
        for i in nonzero:
            ax.annotate(f"{int(counts[i])}", ((edges[i] + edges[i + 1]) / 2, counts[i]), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 1), textcoords="offset points")
    ax.set_xlabel("question difficulty $D_q$ (0.01 bins)")
    ax.set_ylabel("questions")
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=9)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(0, max(counts.max(), 1) * 1.12)
    if len(d):
        ax.text(0.02, 0.95, f"n = {len(d)}\nmean = {d.mean():.3f}\nmedian = {np.median(d):.3f}",
                transform=ax.transAxes, va="top", ha="left", fontsize=8,
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"})
    fig.tight_layout()
    from ilr.io import atomic_path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def config_slice(config: dict, group: str) -> dict:
    """The config this stage reads for one group (Snakemake's rerun trigger, ilr.config.stage_spec)."""
    return {"difficulty": config["difficulty"], "prompts": config["prompts"], "data": config["data"]["train"],
            "models": {n: config["models"][n]["path"] for n in config["groups"][group]},
            "generation": config["generation"], "numerics": config["numerics"]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--train", required=True, help="training records (JSONL)")
    p.add_argument("--out", required=True)
    p.add_argument("--figure", help="histogram PNG (0.01 bins)")


def main(args: argparse.Namespace) -> int:
    from ilr import config as cfg

    config = cfg.load(args.config)
    method = config["difficulty"]["method"]
    models = config["groups"][args.group]
    records = read_jsonl(args.train)
    if method == "level":
        ratings = [{"level": parse_level(r)} for r in records]
    else:
        ratings = rate_with_models(config, models, records)
    difficulties = combine(ratings)
    write_jsonl(args.out, ({"id": r["id"], "difficulty": d, "ratings": rt}
                           for r, d, rt in zip(records, difficulties, ratings)))
    if args.figure:
        save_histogram(difficulties, args.figure,
                       f"Difficulty of the training questions ({method}, {args.group}: {' + '.join(models)})")
    print(f"difficulty[{args.group}] ({method}): mean {statistics.mean(difficulties):.3f} over {len(records)}")
    return 0
