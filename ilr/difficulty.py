"""Question difficulty D_q for every training question of a group (METHOD.md section 2).

Methods (config `difficulty.method`):
- self_rank (paper's "self-ranking", choice of protocol): each model of the group rates each question
  from 1 to 10 with the `rate_difficulty` prompt, `samples` times at `temperature` (once when greedy);
  the integer s gives (s - 1) / 9; a model's value is the mean of its parseable ratings (missing when
  none parses); D_q is the mean over the models that rated it, and a question no model rated gets the
  median of the others.
- empirical: D_q = 1 - mean pass rate over `samples` completions per model of the group.
- level: the MATH level / 5 (metadata `level`, e.g. "Level 3").
Then `difficulty.scale` (choice) refines the raw value (`refine`):
- raw: D_q as above (m models x k samples give only m k + 1 values);
- spread: ties of the raw value broken by a second signal (the mean length of the sampled answers, longer =
  harder; only `empirical` samples answers: the schema refuses spread with another method), each tie group
  spread over the band halfway to its neighbouring raw values: D_q stays within half a step of the raw value,
  on its scale (1 - pass rate, comparable with gamma in IRT's P), and the order of the raw values is kept;
- percentile: the mid-rank percentile of (raw, second signal) over the training set: uniform on (0, 1) by
  construction, so P(q, i) < 0.5 picks the hardest 1 - gamma_i share of the questions (METHOD.md section 2).
Output: one JSON line per question {id, difficulty, raw, tiebreak, ratings: {model: value or null}} and the
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


SCALES = ("raw", "spread", "percentile")


def _mid_ranks(keys: list, within: list[int]) -> dict[int, float]:
    """Mid-rank percentile of each index of `within` among them by `keys`: (#below + #equal / 2) / n, in (0, 1);
    equal keys share one value."""
    n, out = len(within), {}
    ordered = sorted(within, key=lambda i: keys[i])
    start = 0
    while start < n:
        end = start
        while end < n and keys[ordered[end]] == keys[ordered[start]]:
            end += 1
        for i in ordered[start:end]:
            out[i] = (start + (end - start) / 2) / n
        start = end
    return out


def refine(raw: list[float], tiebreak: list[float | None] | None, scale: str) -> list[float]:
    """D_q on `difficulty.scale` (module docstring) from the raw values and a second signal (higher = harder;
    None or missing: no second signal, ties stay ties).

    spread: a tie group of raw value v owns the band from halfway to the next lower distinct raw value to
    halfway to the next higher one (at the ends, the inner half-gap mirrored, clipped to [0, 1]); its
    questions sit at their mid-rank t in (0, 1) by the second signal: D = low + t (high - low). The bands only
    touch at their edges and t never reaches them, so questions of different raw values never swap or tie.
    A group the second signal does not separate at all keeps its raw value.
    """
    if scale not in SCALES:
        raise ValueError(f"difficulty.scale {scale!r}: expected one of {SCALES}")
    if scale == "raw":
        return list(raw)
    second = [0.0 if t is None else float(t) for t in (tiebreak or [None] * len(raw))]
    everyone = list(range(len(raw)))
    # equal means summed in another order ((2 + 4) / 2 vs (1 + 5) / 2, over 9) may differ in the last bit
    key = [round(float(r), 12) for r in raw]
    if scale == "percentile":
        ranks = _mid_ranks([(r, t) for r, t in zip(key, second)], everyone)
        return [ranks[i] for i in everyone]
    values = sorted(set(key))
    if len(values) == 1:  # no neighbouring value to scale a band by: nothing to spread over
        return list(raw)
    out = list(raw)
    for k, v in enumerate(values):
        below = (v - values[k - 1]) / 2 if k > 0 else None
        above = (values[k + 1] - v) / 2 if k + 1 < len(values) else None
        low = max(0.0, v - (below if below is not None else above))
        high = min(1.0, v + (above if above is not None else below))
        group = [i for i in everyone if key[i] == v]
        if len({second[i] for i in group}) == 1:   # nothing separates them: they keep the raw value
            continue
        for i, t in _mid_ranks(second, group).items():
            out[i] = low + t * (high - low)
    return out


def rate_with_models(config: dict, models: list[str], records: list[dict], source: str = "config"
                     ) -> tuple[list[dict[str, float | None]], list[float | None]]:
    """Per question each model's value ({model: value or None}) and the second signal for `refine` (the mean
    length in characters of every model's sampled answers: `empirical`; None for `self_rank`, which samples
    no answer)."""
    import torch

    from ilr.evaluate import answer_and_grade
    from ilr.generation import open_engine
    from ilr.prompts import load as load_prompts
    from ilr.seeding import stable_seed

    spec = config["difficulty"]
    prompts = load_prompts(config["prompts"])
    ratings: list[dict[str, float | None]] = [{} for _ in records]
    lengths: list[list[int]] = [[] for _ in records]
    for name in models:
        engine = open_engine(config, config["models"][name]["path"], config["models"][name]["size"],
                             source=source)
        # sampled ratings (T > 0) are the same in every run and whatever the group's order
        torch.manual_seed(stable_seed("difficulty", name))
        if spec["method"] == "self_rank":
            # several greedy ratings would repeat one another: one, unless sampled
            n = spec.get("samples", 1) if spec["temperature"] > 0 else 1
            outs = engine.sample_texts([prompts.rate_difficulty(r) for r in records], n=n,
                                       max_new_tokens=spec["max_new_tokens"], temperature=spec["temperature"],
                                       progress=True)
            values = [mean_rating([parse_rating(o.text) for o in group]) for group in outs]
        else:  # empirical
            graded = answer_and_grade(engine, prompts, records, spec["samples"], spec["temperature"],
                                      spec["max_new_tokens"], progress=True)
            k = spec["samples"]
            values = [1.0 - sum(g["correct"] for g in graded[i * k:(i + 1) * k]) / k for i in range(len(records))]
            for i in range(len(records)):
                lengths[i] += [len(g["completion"]) for g in graded[i * k:(i + 1) * k]]
        for row, v in zip(ratings, values):
            row[name] = v
        del engine
    tiebreak = [sum(x) / len(x) if x else None for x in lengths]
    return ratings, tiebreak


def mean_rating(values: list[float | None]) -> float | None:
    """A model's value from its sampled ratings: the mean of those that parse; None when none does."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


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
    """The config this stage reads for one group (Snakemake's rerun trigger, ilr.study.stage_spec)."""
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
    scale = config["difficulty"].get("scale", "raw")
    if method == "level":
        ratings, tiebreak = [{"level": parse_level(r)} for r in records], None
    else:
        ratings, tiebreak = rate_with_models(config, models, records, args.config)
    raw = combine(ratings)
    difficulties = refine(raw, tiebreak, scale)
    second = tiebreak or [None] * len(records)
    write_jsonl(args.out, ({"id": r["id"], "difficulty": d, "raw": x, "tiebreak": t, "ratings": rt}
                           for r, d, x, t, rt in zip(records, difficulties, raw, second, ratings)))
    if args.figure:
        save_histogram(difficulties, args.figure,
                       f"Difficulty of the training questions ({method}, scale {scale}, {args.group}: "
                       f"{' + '.join(models)})")
    print(f"difficulty[{args.group}] ({method}, scale {scale}): mean {statistics.mean(difficulties):.3f}, "
          f"{len(set(difficulties))} distinct values over {len(records)} questions")
    return 0
