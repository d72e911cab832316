"""Dynamic Interaction (METHOD.md section 3): cooperation or competition for each question.

P(q, i) = 1 / (1 + exp(-slope (gamma_i - D_q))), slope = 1.7 (paper). P < 0.5: the question is hard
for model i. One type per question for the whole group (choice): cooperation when the group's
aggregate of P (`irt_rule`: mean, min or max) is < 0.5, competition otherwise. The fixed-ratio
alternative makes each question cooperative with probability p, seeded per question.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from ilr.seeding import stable_seed

COOPERATION, COMPETITION = "cooperation", "competition"
AGGREGATES = {"mean": lambda xs: sum(xs) / len(xs), "min": min, "max": max}


def irt_probability(gamma: float, difficulty: float, slope: float = 1.7) -> float:
    return 1.0 / (1.0 + math.exp(-slope * (gamma - difficulty)))


def irt_type(probabilities: Mapping[str, float], rule: str = "mean") -> str:
    return COOPERATION if AGGREGATES[rule](list(probabilities.values())) < 0.5 else COMPETITION


def ratio_type(p: float, seed: int, question_id: str) -> str:
    """Cooperation with probability p; the draw depends only on (seed, question), so it is reproducible."""
    return COOPERATION if random.Random(stable_seed("ratio", seed, question_id)).random() < p else COMPETITION
