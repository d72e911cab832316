"""What every trainer shares: the question schedule, the rule-based reward, and run bookkeeping.

All methods see the same questions in the same order with the same number of updates (METHOD.md
section 6): `question_schedule` fixes that order once from the seed, and every trainer consumes it
without shuffling.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from ilr.io import read_jsonl


def stable_seed(*parts) -> int:
    """A seed from any values, stable across processes (Python's hash() of a str is salted)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def question_schedule(train_path: str | Path, steps: int, questions_per_step: int, seed: int) -> list[dict]:
    """steps * questions_per_step training records, in the order every method trains on them.

    The training set is shuffled with the seed and cycled through (a new shuffle each epoch).
    """
    records = read_jsonl(train_path)
    if not records:
        raise ValueError(f"{train_path}: no training questions")
    rng = random.Random(stable_seed("schedule", seed))
    need, out = steps * questions_per_step, []
    while len(out) < need:
        epoch = records[:]
        rng.shuffle(epoch)
        out.extend(epoch)
    return out[:need]


def rule_reward(record: dict, completion: str) -> float:
    """R = 1 for a correct final answer, 0 otherwise ((choice) no format reward)."""
    from ilr.grading import grade

    return 1.0 if grade(record, completion).correct else 0.0


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The newest complete `checkpoint-N` directory (transformers' layout), or None."""
    d = Path(checkpoint_dir)
    if not d.is_dir():
        return None
    done = [p for p in d.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)
