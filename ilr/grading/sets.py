"""The shape of math answers: one value, or a set, list or tuple of several; and several `\\boxed{}`
that together make one answer.

- `top_level_parts` splits an answer at its top-level commas and semicolons; a comma is a thousands
  separator only when digits follow it at once in groups of three (`1,234`); a comma and a space
  between digit groups (`1, 234`) is a list of two numbers, as in LaTeX.
- `collection_size` counts the elements of a gold (`1, 2`, `\\{1, 2\\}`, `x=1 \\text{ or } x=2`: 2).
- `box_run` finds the boxes that end a text and are joined only by list connectors (commas, "and",
  "or", spacing, math delimiters, a label such as `x =`): `\\boxed{1} and \\boxed{2}`,
  `$x=\\boxed{-2}$ or $x=\\boxed{5}$`. Such a run is one answer, the set of its boxes; `join` writes it
  as one list (a set, unordered), or as one tuple when the gold is a single tuple (ordered).
"""

from __future__ import annotations

import re

_OPEN, _CLOSE = "([{", ")]}"


def top_level_parts(s: str) -> list[str]:
    """`s` split at the commas (and semicolons) outside brackets and braces; `\\{`, `\\left(` count as
    brackets. "(1,2),(3,4)" -> ["(1,2)", "(3,4)"]; "[0,1)" -> ["[0,1)"]; "1,234" -> ["1,234"];
    "1, 234" -> ["1", "234"]."""
    parts, depth, cur = [], 0, []
    i = 0
    while i < len(s):
        c = s[i]
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(depth - 1, 0)
        elif c in ",;" and depth == 0 and not _thousands_comma(s, i):
            parts.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def _thousands_comma(s: str, i: int) -> bool:
    """Is the comma at s[i] a thousands separator (`10,455`, `1,000,000`)? Not when a space follows it:
    `1, 234` is a list."""
    return bool(re.search(r"(?:^|[^\d.])\d{1,3}(?:,\d{3})*$", s[:i]) and re.match(r",\d{3}(?!\d)", s[i:]))


def strip_set_braces(s: str) -> str:
    s = s.strip()
    for left, right in (("\\left\\{", "\\right\\}"), ("\\{", "\\}")):
        if s.startswith(left) and s.endswith(right):
            return s[len(left):-len(right)].strip()
    return s


_strip_set_braces = strip_set_braces  # the name numeric.py and older callers import

# "and", "or" written between the elements of a gold: `x=1 \text{ or } x=2`, `1 \text{ and } 2`
_WORD_SEPARATOR = re.compile(r"\\(?:text|textrm|mbox|mathrm)\s*\{\s*(?:and|or)\s*\}|\\q?quad|(?<=\s)(?:and|or)(?=\s)")


def list_elements(s: str) -> list[str]:
    """The elements of a set or list answer (one element for a single value, a tuple or an interval):
    `\\{1, 3\\}` -> ["1", "3"]; `x=1 \\text{ or } x=2` -> ["x=1", "x=2"]; `(1,2),(3,4)` -> two tuples."""
    g = strip_set_braces(s.strip().strip("$").strip())
    g = _WORD_SEPARATOR.sub(",", g)
    return top_level_parts(g) or [g]


def collection_size(gold: str) -> int:
    """How many elements a gold answer lists: 1 for a single value, n for a set or list of n values
    ("(1,2),(3,4)" -> 2, "\\{1, 3\\}" -> 2, "x=1 \\text{ or } x=2" -> 2), n for a single tuple
    "(a, b, c)" -> 3. Intervals such as "[0,1)" count as one value."""
    parts = list_elements(gold)
    if len(parts) >= 2:
        return len(parts)
    inner = one_tuple(gold)
    if inner is not None:
        return max(len(top_level_parts(inner)), 1)
    return 1


def one_tuple(gold: str) -> str | None:
    """The inside of a gold that is one flat tuple (`(3, \\frac{\\pi}{2})`), else None."""
    g = strip_set_braces(gold.strip().strip("$").strip())
    if len(top_level_parts(g)) >= 2:
        return None
    m = re.fullmatch(r"\\left\s*\((.*)\\right\s*\)|\((.*)\)", g, re.DOTALL)
    if m:
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        if "(" not in inner and ")" not in inner:
            return inner
    return None


# ------------------------------------------------------------------------- boxes as one answer
# What may stand between two boxes of one answer: math delimiters, spacing, "and"/"or" (also in
# \text{}), commas and semicolons, and a label before the next box (`x =`, `x_2 =`, `\theta =`, `k=`).
_GAP_NOISE = re.compile(r"\$|\\[()\[\]]|\\q?quad|\\[,;:! ]|~|\\(?:text|textrm|mbox|mathrm)\s*\{\s*(and|or|,)?\s*\}")
_LABEL = re.compile(r"(?:(?:\\[A-Za-z]+|\b[A-Za-z])(?:_\{?\w+\}?)?(?:\([^()]*\))?\s*=\s*)$")  # not a word
_CONNECTOR = re.compile(r"[\s,;]*(?:\b(and|or)\b[\s,;]*)?")


def _gap_is_connector(gap: str) -> tuple[bool, bool]:
    """(the text between two boxes only joins them, it says "or")."""
    def keep_word(m: re.Match) -> str:
        return f" {m.group(1)} " if m.group(1) in ("and", "or") else " "

    g = _GAP_NOISE.sub(keep_word, gap)
    g = _LABEL.sub("", g.rstrip())
    m = _CONNECTOR.fullmatch(g)
    if not m:
        return False, False
    return True, m.group(1) == "or"


def box_run(text: str, spans: list[tuple[int, int, str]]) -> tuple[list[str], bool]:
    """The boxes that end `text` joined only by connectors (see the module docstring): their contents,
    in order, and whether an "or" joins them. `spans`: (start, end, content) of the top-level boxes."""
    if not spans:
        return [], False
    run, said_or = [spans[-1][2]], False
    for (_, end, content), (start, _, _) in zip(reversed(spans[:-1]), reversed(spans[1:])):
        joined, is_or = _gap_is_connector(text[end:start])
        if not joined:
            break
        run.insert(0, content)
        said_or = said_or or is_or
    return run, said_or


def flatten(answers: list[str]) -> list[str]:
    """The distinct elements of several answers, each a value or itself a set or list (`\\{1, 2\\}`,
    `1, 2`): `["1, 2", "3", "2"]` -> `["1", "2", "3"]`. A tuple or an interval stays one element."""
    out = []
    for a in answers:
        out.extend(list_elements(a))
    return list(dict.fromkeys(e.strip() for e in out if e.strip()))


def join(elements: list[str], gold: str | None) -> str:
    """Several elements written as one answer: a list (`1, 2`, which math-verify reads as a set), or a
    tuple `(1, 7)` when the gold is one tuple of that many elements (`a=\\boxed{1}`, `b=\\boxed{7}`)."""
    joined = ", ".join(elements)
    inner = one_tuple(gold) if gold is not None else None
    flat = not any(e.lstrip().startswith(("(", "[", "\\left")) for e in elements)  # not a set of pairs
    if inner is not None and flat and len(top_level_parts(inner)) == len(elements):
        joined = "(" + joined + ")"
    return joined
