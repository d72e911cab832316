"""Generated tiny tasks: multi-step integer arithmetic as math, code and multiple-choice records.

`generate(source, n, seed, **params) -> list[record]` (the record schema of ilr/benchmarks.py) for
  tiny_arith  (math)   question "3+4-2", solution "3+4=7,7-2=5 \\boxed{5}", answer "5"
  tiny_code   (code)   question "f(x)=x+3+4-2", solution "def f(x):\\n # 3+4=7,7-2=5\\n return x+5",
                       answer = reference program "def f(x):\\n return x+3+4-2", tests "assert f(2)==7"
  tiny_choice (choice) question "3+4-2", options ["4", "5", "9", "1"], solution
                       "3+4=7,7-2=5 \\boxed{B}", answer "B"
Every record's metadata has `steps` (the number of operations: the difficulty knob) and `solution`
(the worked solution, the target completion of the warm-up in ilr/tiny/build.py).

Params (all sources): min_steps (1), max_steps (3), max_operand (9), ops ("+-"), families (none).
Operands are drawn from 1..max_operand; with ops containing "*" a product is kept only while its
running value stays within +-99 (resampled otherwise), so numbers stay short.
`families` (a list of op strings, e.g. ["+-", "*"]; it replaces `ops`) makes every question draw one
family, uniformly, and use only its operators: a world of sums and a world of products, two skills a
model can have apart (ilr/tiny/build.py `skills`). The family is in metadata.ops (only with families). tiny_code keeps only
the + and - of a family (a family with neither gives x+const chains of +).

Deterministic: the same (source, n, seed, params) gives the same records, ids included
(`<source>-<seed>-<index>`). Train data and each benchmark use different seeds, so their draws are
independent; short expressions (e.g. the 162 one-step ones of "a+b"/"a-b" with operands <= 9) can
still occur in both, which is intended: it is a sample from the same distribution, like two disjoint
draws that happen to repeat. Nothing here deduplicates across files.
"""

from __future__ import annotations

import random

SOURCES = ("tiny_arith", "tiny_code", "tiny_choice")
KINDS = {"tiny_arith": "math", "tiny_code": "code", "tiny_choice": "choice"}
DEFAULTS = {"min_steps": 1, "max_steps": 3, "max_operand": 9, "ops": "+-", "families": None}
LETTERS = "ABCD"
LIMIT = 99


def task_params(params: dict) -> dict:
    """The tiny task's parameters: `params` over DEFAULTS, checked (ValueError naming the bad one); the config
    checks run this on `data.train.params` and each generated benchmark's."""
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown tiny task params {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    p["min_steps"], p["max_steps"], p["max_operand"] = int(p["min_steps"]), int(p["max_steps"]), int(p["max_operand"])
    if not 1 <= p["min_steps"] <= p["max_steps"]:
        raise ValueError(f"need 1 <= min_steps <= max_steps, got {p['min_steps']}, {p['max_steps']}")
    if p["max_operand"] < 1:
        raise ValueError(f"max_operand must be >= 1, got {p['max_operand']}")
    if not p["ops"] or set(p["ops"]) - set("+-*"):
        raise ValueError(f"ops must be a non-empty string of + - *, got {p['ops']!r}")
    if p["families"] is not None:
        fams = p["families"]
        if (isinstance(fams, str) or not isinstance(fams, (list, tuple)) or not fams
                or any(not isinstance(f, str) or not f or set(f) - set("+-*") for f in fams)):
            raise ValueError(f"families must be a non-empty list of non-empty strings of + - *, got {fams!r}")
        if "ops" in params:
            raise ValueError("give ops or families, not both (families replaces ops)")
        p["families"] = [str(f) for f in fams]
    return p


def _ops(rng, p) -> str:
    """The operators of one question: `ops`, or one family drawn uniformly (no draw without families, so
    the records of a config without families are those of before the knob existed)."""
    return p["ops"] if p["families"] is None else rng.choice(p["families"])


def _family(ops: str, p) -> dict:
    return {} if p["families"] is None else {"ops": ops}


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def expression(rng: random.Random, steps: int, max_operand: int, ops: str = "+-", start: int | None = None):
    """(operands, operators, running values) of a left-to-right chain of `steps` operations."""
    first = rng.randint(1, max_operand) if start is None else start
    operands, operators, values = [first], [], [first]
    while len(operators) < steps:
        op, b = rng.choice(ops), rng.randint(1, max_operand)
        v = _apply(values[-1], op, b)
        if abs(v) > LIMIT:
            continue
        operands.append(b)
        operators.append(op)
        values.append(v)
    return operands, operators, values


def expr_text(operands, operators) -> str:
    return str(operands[0]) + "".join(f"{op}{b}" for op, b in zip(operators, operands[1:]))


def worked(operands, operators, values) -> str:
    """'3+4=7,7-2=5': one 'a op b = c' per step, the running value carried on."""
    return ",".join(f"{values[i]}{op}{operands[i + 1]}={values[i + 1]}" for i, op in enumerate(operators))


def _arith(rng, i, p):
    ops = _ops(rng, p)
    steps = rng.randint(p["min_steps"], p["max_steps"])
    operands, operators, values = expression(rng, steps, p["max_operand"], ops)
    ans = str(values[-1])
    return {"question": expr_text(operands, operators), "answer": ans, "kind": "math",
            "metadata": {"steps": steps, **_family(ops, p),
                         "solution": f"{worked(operands, operators, values)} \\boxed{{{ans}}}"}}


def _code(rng, i, p):
    """f(x) = x op (a chain of constants): the solution folds the constants, with its work as a comment."""
    ops = _ops(rng, p).replace("*", "") or "+"     # x*3+4 does not fold left to right; keep + and -
    steps = rng.randint(p["min_steps"], p["max_steps"])
    operands, operators, values = expression(rng, steps, p["max_operand"], ops)
    const = values[-1]
    question = f"f(x)=x+{expr_text(operands, operators)}"
    reference = f"def f(x):\n return x+{expr_text(operands, operators)}"
    folded = f"x+{const}" if const >= 0 else f"x-{-const}"
    solution = f"def f(x):\n # {worked(operands, operators, values)}\n return {folded}"
    xs = rng.sample(range(-5, 10), 3)
    tests = [f"assert f({x})=={x + const}" for x in xs]
    return {"question": question, "answer": reference, "kind": "code", "tests": tests, "test_setup": "",
            "metadata": {"steps": steps, "solution": solution}}


def _choice(rng, i, p):
    ops = _ops(rng, p)
    steps = rng.randint(p["min_steps"], p["max_steps"])
    operands, operators, values = expression(rng, steps, p["max_operand"], ops)
    gold = values[-1]
    # distractors: the usual slips (an intermediate value, off by one or two, a sign error)
    pool = {values[j] for j in range(len(values) - 1)} | {gold + d for d in (-2, -1, 1, 2, 10, -10)} | {-gold}
    pool.discard(gold)
    pool = sorted(pool)
    distractors = rng.sample(pool, 3)
    options = [gold] + distractors
    rng.shuffle(options)
    letter = LETTERS[options.index(gold)]
    return {"question": expr_text(operands, operators), "answer": letter, "kind": "choice",
            "options": [str(o) for o in options],
            "metadata": {"steps": steps, **_family(ops, p), "value": str(gold),
                         "solution": f"{worked(operands, operators, values)} \\boxed{{{letter}}}"}}


MAKERS = {"tiny_arith": _arith, "tiny_code": _code, "tiny_choice": _choice}


def generate(source: str, n: int, seed: int, **params) -> list[dict]:
    """n records of a tiny source (benchmark = source), deterministic in (source, n, seed, params)."""
    if source not in MAKERS:
        raise ValueError(f"unknown tiny source {source!r}; known: {', '.join(SOURCES)}")
    p = task_params(params)
    rng = random.Random(f"{source}/{seed}")
    records = []
    for i in range(int(n)):
        rec = MAKERS[source](rng, i, p)
        records.append({"id": f"{source}-{seed}-{i}", "benchmark": source, **rec})
    return records
