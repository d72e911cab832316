"""Dynamic Interaction (METHOD.md section 3): cooperation or competition for each question and model.

P(q, i) = 1 / (1 + exp(-slope (gamma_i - D_q))), slope = 1.7 (paper). P < 0.5: the question is hard
for model i. `irt_rule` (choice):
- `per_model` (the paper's reading: "P(q, i) for each model i, if P < 0.5, cooperation"): each model's
  Analysis and Fusion follow its own P, so on one question a weak model may cooperate while a strong
  one competes;
- `mean` / `min` / `max`: one type per question for the whole group, cooperation when that aggregate of
  the group's P is < 0.5.
The fixed-ratio alternative makes each question cooperative with probability p, seeded per question, for
every model alike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from ilr.seeding import stable_seed

COOPERATION, COMPETITION = "cooperation", "competition"
MIXED = "mixed"   # a rollout-log row whose models interacted in different modes (irt_rule per_model)
AGGREGATES = {"mean": lambda xs: sum(xs) / len(xs), "min": min, "max": max}
IRT_RULES = ("per_model", *AGGREGATES)


def irt_probability(gamma: float, difficulty: float, slope: float = 1.7) -> float:
    return 1.0 / (1.0 + math.exp(-slope * (gamma - difficulty)))


def mode_of(probability: float) -> str:
    return COOPERATION if probability < 0.5 else COMPETITION


def irt_type(probabilities: Mapping[str, float], rule: str = "mean") -> str:
    """One type for the whole group: the `rule` aggregate (mean, min, max) of the P's against 0.5."""
    return mode_of(AGGREGATES[rule](list(probabilities.values())))


def irt_types(probabilities: Mapping[str, float], rule: str) -> dict[str, str]:
    """Each model's type: its own P's (`per_model`), or the group's one type (`mean`, `min`, `max`)."""
    if rule == "per_model":
        return {name: mode_of(p) for name, p in probabilities.items()}
    if rule not in AGGREGATES:
        raise ValueError(f"interaction.irt_rule: {rule!r} is not one of {IRT_RULES}")
    mode = irt_type(probabilities, rule)
    return {name: mode for name in probabilities}


def common_type(modes: Mapping[str, str | None]) -> str | None:
    """The question's type in the rollout log: the one all models share, or MIXED."""
    distinct = set(modes.values())
    return distinct.pop() if len(distinct) == 1 else MIXED


def ratio_type(p: float, seed: int, question_id: str) -> str:
    """Cooperation with probability p; the draw depends only on (seed, question), so it is reproducible."""
    return COOPERATION if random.Random(stable_seed("ratio", seed, question_id)).random() < p else COMPETITION
