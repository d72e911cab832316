"""The warm-up's synthetic peers and the targets of the interaction formats (ilr/tiny/build.py): a peer's
answer is the worked solution, or with probability p_wrong one step wrong and the chain carried on
(`noisy`); the analysis target records agreement (`agreement_target`), Fusion's and Debate's target is
the right answer alone (`fusion_target`), drawn only where some idea on the table is right (`resolvable`).
"""

from __future__ import annotations

import random
import re

STEP = re.compile(r"(-?\d+)([-+*])(\d+)=(-?\d+)")


def _work(solution: str) -> str:
    """The comma-separated steps of a tiny solution (math, choice or code)."""
    return ",".join(f"{a}{op}{b}={c}" for a, op, b, c in STEP.findall(solution))


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _corrupt_steps(solution: str, rng: random.Random) -> tuple[list[tuple], int]:
    """The steps with one result wrong and the chain carried on: (steps, final value). The wrong result is
    a slip (off by 1..3; half the time), the step done with another operator (a peer that lacks this skill
    answers so: 7-8=56), or any number. The final value is then wrong too: every operand is >= 1, so a
    changed running value changes every later one."""
    steps = [(int(a), op, int(b), int(c)) for a, op, b, c in STEP.findall(solution)]
    k = rng.randrange(len(steps))
    out = steps[:k]
    a, op, b, c = steps[k]
    u, right = rng.random(), c
    if u < 0.5:
        c = c + rng.choice([-3, -2, -1, 1, 2, 3])
    elif u < 0.75:
        c = _apply(a, rng.choice([o for o in "+-*" if o != op]), b)
    else:
        c = rng.randint(-20, 99)
    if c == right:
        c += rng.choice([-1, 1])
    out.append((a, op, b, c))
    for a, op, b, _ in steps[k + 1:]:
        a = c
        c = _apply(a, op, b)
        out.append((a, op, b, c))
    return out, c


def _steps_text(steps) -> str:
    return ",".join(f"{a}{op}{b}={c}" for a, op, b, c in steps)


def answer_of(record: dict, completion: str) -> str | None:
    """The final answer a tiny completion states (value, letter, or the code's constant)."""
    if record["kind"] == "code":
        m = re.search(r"return x([+-]\d+)\s*$", completion)
        return str(int(m.group(1))) if m else None
    m = re.findall(r"\\boxed\{([^}]*)\}", completion)
    return m[-1] if m else None


def value_answer(record: dict, value: int) -> str | None:
    """The answer a completion whose work ends in `value` states (the option letter for choice)."""
    if record["kind"] != "choice":
        return str(value)
    hit = [L for L, o in zip("ABCD", record["options"]) if o == str(value)]
    return hit[0] if hit else None


def gold_of(record: dict) -> str:
    return answer_of(record, record["metadata"]["solution"])


def noisy(record: dict, rng: random.Random, p_wrong: float = 0.5) -> str:
    """A synthetic peer (or own) answer: the solution, or a plausible wrong one."""
    sol = record["metadata"]["solution"]
    if rng.random() >= p_wrong:
        return sol
    if rng.random() < 0.1:  # a truncated answer, as a sampled completion sometimes is
        return sol[:rng.randrange(1, max(2, len(sol) - 1))]
    steps, value = _corrupt_steps(sol, rng)
    work = _steps_text(steps)
    if record["kind"] == "math":
        return f"{work} \\boxed{{{value}}}"
    if record["kind"] == "choice":
        gold = record["answer"]
        letters = "ABCD"[:len(record["options"])]
        hit = [letters[i] for i, o in enumerate(record["options"]) if o == str(value)]
        letter = hit[0] if hit and hit[0] != gold else rng.choice([x for x in letters if x != gold])
        return f"{work} \\boxed{{{letter}}}"
    return f"def f(x):\n # {work}\n return " + (f"x+{value}" if value >= 0 else f"x-{-value}")


def analysis_target(mode: str, record: dict, own: str, peers: list[str], recomputed: str | None = None,
                    recomputed_answer: str | None = None) -> str:
    """'<work> right: me,P1' (cooperation) or '<work> wrong: P1' (competition), from a recomputation."""
    work = _work(record["metadata"]["solution"]) if recomputed is None else recomputed
    ref = gold_of(record) if recomputed_answer is None else recomputed_answer
    names = ["me"] + [f"P{k}" for k in range(1, len(peers) + 1)]
    answers = [answer_of(record, t) for t in [own] + peers]
    if mode == "cooperation":
        picked = [n for n, a in zip(names, answers) if a == ref]
        return f"{work} right: {','.join(picked) or 'none'}"
    picked = [n for n, a in zip(names, answers) if a != ref]
    return f"{work} wrong: {','.join(picked) or 'none'}"


def fusion_target(record: dict) -> str:
    """Idea Fusion's (and Debate's revision's) target: the final answer alone, "\\boxed{24}" (a code
    question: its worked solution, the program being the answer). The worked steps are in the ideas the
    model reads; what Fusion adds is the decision whose answer to give, and a tiny model learns to copy a
    short answer from the idea it trusts in a few hundred batches, where copying a whole worked solution
    took it thousands (so it recomputed instead, and lost what it read)."""
    if record["kind"] == "code":
        return record["metadata"]["solution"]
    return f"\\boxed{{{gold_of(record)}}}"


def resolvable(record: dict, own: str, peers: list[str]) -> bool:
    """Some idea on the table (the model's own or a peer's) states the right answer."""
    gold = gold_of(record)
    return any(answer_of(record, t) == gold for t in [own] + list(peers))


def agreement_target(mode: str, record: dict, own: str, peers: list[str]) -> str:
    """Idea Analysis in the tiny world: whose final answer agrees with mine (cooperation, "Agree?": "P1") or
    differs from it (competition, "Error?": "P1"), "none" when nobody. It says nothing about who is right:
    that needs the skill the model may lack, and an analysis that recomputes the question is only the
    model's own answer again (its note then talks Fusion into its own mistake). Fusion, which has learnt
    where the model's own answers can be trusted, decides."""
    mine = answer_of(record, own)
    same = [mine is not None and answer_of(record, t) == mine for t in peers]
    names = [f"P{k}" for k in range(1, len(peers) + 1)]
    if mode == "cooperation":
        return ",".join(n for n, s in zip(names, same) if s) or "none"
    return ",".join(n for n, s in zip(names, same) if not s) or "none"
