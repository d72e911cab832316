"""Answer extraction from model completions (and from the datasets' worked solutions).

Math: `find_math_answer(text, steps, gold)` tries the steps of `steps` in order; the first that finds
something decides (docs/grading.md lists them). The default order, `MATH_STEPS`:
  boxed          every `\\boxed{}` (also `\\fbox`, `\\framebox`; braces balanced; ilr.grading.boxes):
                 boxes that end the text joined only by connectors (`\\boxed{1} and \\boxed{2}`,
                 `$x=\\boxed{1}$, $x=\\boxed{2}$`) are one answer, the set of them (ilr.grading.sets;
                 "or" between them also offers the last box alone); else the last box, and the boxes
                 together when the gold is a set or tuple with as many elements
  hashes         the last GSM8K-style `#### N`
  answer_phrase  the last "The (final) answer is X" / "Answer: X" whose X is a formula, not a sentence
                 (`$...$` spans taken whole, with the spans joined to it by "and", "or", commas; "I hope
                 it is correct" and a trailing period dropped)
  bare           a completion that is only a formula (`\\frac{10}{9}`, `$[0,1)$`, `x^2+1`)
  math_verify    math-verify's own extraction over the whole completion (LatexExtractionConfig and
                 ExprExtractionConfig, its defaults, as TRL's accuracy reward and Open-R1 use it);
                 runs in the math-verify worker (ilr.grading.mathcheck), not here
  answer_text    a text answer ("The answer is Evelyn", or a one-line completion that is only words),
                 compared as a string
  last_number    the last number in the text (gsm8k only)
Inline math (`$...$`, `\\(...\\)`) ends at its line, as in LaTeX: a `$` pair that spans a line break is
no answer span (display math, `$$...$$`, `\\[...\\]`, may span lines).
Extracted formulas are unwrapped from presentation markup: `\\textbf{(073)}` -> `073`,
`\\textbf{(C)}\\ 12` -> `12` (unless the gold is a letter).

Choice: the last "The answer is (X)" / "answer: X" / `\\boxed{X}`; else a completion that is only a
letter; else a final answer equal to one option's text.
Code: the last fenced code block that defines a function (```python ... ```), else the last fenced
block, else the whole completion.
"""

from __future__ import annotations

import dataclasses
import re
import string

from ilr.grading import sets
from ilr.grading.boxes import _balanced, all_boxed, boxed_spans, last_boxed, outer_boxes  # noqa: F401
from ilr.grading.sets import (  # noqa: F401  (the names callers import from here)
    _strip_set_braces, collection_size, strip_set_braces, top_level_parts)

LETTERS = string.ascii_uppercase
MATH_STEPS = ("boxed", "hashes", "answer_phrase", "bare", "math_verify", "answer_text")
ALL_MATH_STEPS = MATH_STEPS + ("last_number",)


# ------------------------------------------------------------------------------ formula or prose
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "inf", "infty", "arcsin",
               "arccos", "arctan", "sinh", "cosh", "tanh", "mod", "gcd", "lcm", "max", "min", "det", "and", "or"}
_TEXT_ARG = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|textnormal|operatorname)\s*\{[^{}]*\}")


def is_formula(s: str) -> bool:
    """A formula (`2\\sqrt{3}`, `x^2+1`, `(1, 2)`, `5\\text{ cm}`), not a sentence ("The largest $n$ is
    34", "5 apples"): outside `\\text{}` and LaTeX commands there is no word of three or more letters
    other than a function name."""
    s = s.strip()
    if not s or "\n" in s or len(s) > 300:
        return False
    rest = _TEXT_ARG.sub(" ", s)
    rest = re.sub(r"\\[A-Za-z]+", " ", rest)
    words = [w for w in re.findall(r"[A-Za-z]+", rest) if w.lower() not in _MATH_WORDS]
    return not any(len(w) >= 3 for w in words) and len([w for w in words if len(w) == 2]) <= 1


# ------------------------------------------------------------------------------------ clean-up
_STYLE = r"\\(?:textbf|mathbf|bf|text|textrm|mathrm|textnormal|boldsymbol)\s*"
# an AMC-style choice label before the value: (C) 12, \textbf{(C)}\ 12, \textbf{(C) } 12
_LABEL = re.compile(r"^(?:" + _STYLE + r"\{\s*)?\(\s*([A-Z])\s*\)\s*\}?(?:\\[ ,;:!]|~|\s|:)*(.*)$", re.DOTALL)
_NUMBERISH = re.compile(r"\(?\s*-?\d[\d,.]*\s*\)?")


def _unwrap_style(s: str) -> str:
    """`\\textbf{X}` (or `\\text`, `\\mathbf`, ...) around the whole answer -> X, when X is a number,
    a number in parentheses or starts with a choice label: the markup is presentation only there."""
    s = s.strip()
    m = re.fullmatch(_STYLE + r"\{(.*)\}", s, re.DOTALL)
    if m and _balanced(s, s.index("{")) == m.group(1):
        inner = m.group(1).strip()
        if _NUMBERISH.fullmatch(inner) or _LABEL.match(inner):
            return _unwrap_style(inner)
    return s


def clean_answer(ans: str, gold: str | None = None) -> str:
    """Presentation markup off an extracted answer: `\\textbf{(073)}` -> `073`; an AMC-style choice
    label before the value (`\\textbf{(C)}\\ 12`) -> `12`, or `C` when the gold is a letter."""
    s = _unwrap_style(ans)
    gold_s = (gold or "").strip().strip("$").strip()
    m = _LABEL.match(s)
    if m:
        if re.fullmatch(r"\(?\s*[A-Z]\s*\)?", gold_s):
            return m.group(1)
        if m.group(2).strip():
            s = _unwrap_style(m.group(2))
    if re.fullmatch(r"\(\s*-?\d+(?:\.\d+)?\s*\)", s) and not gold_s.startswith("("):
        s = s.strip("() ")  # (073) -> 073: a lone number in parentheses
    return s


# ------------------------------------------------------------------------------ math answers
_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_PHRASE = re.compile(r"(?:final answer|the answer)\**\s*(?:is|:)\s*:?\s*|\banswer\**\s*:\s*", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_SPANS = [("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")]


def _clean_tail(s: str) -> str:
    s = s.strip()
    s = re.sub(r"[\s.。]+$", "", s)
    if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s.strip("$").strip()
    return s


_INLINE = ("$", "\\(")  # inline math: LaTeX ends a paragraph's inline math at the line, display math may span lines


def _leading_span(s: str) -> tuple[str, int] | None:
    """The content of a math span (`$..$`, `$$..$$`, `\\(..\\)`, `\\[..\\]`) at the start of `s`, and
    where the span ends; None when there is none (an inline span that crosses a line is none)."""
    for left, right in _SPANS:
        if s.startswith(left):
            end = s.find(right, len(left))
            while end > 0 and s[end - 1] == "\\" and right == "$":  # an escaped \$ inside
                end = s.find(right, end + 1)
            if end < 0 or (left in _INLINE and "\n" in s[len(left):end]):
                return None
            return s[len(left):end].strip(), end + len(right)
    return None


_SPAN_CONNECTOR = re.compile(r"\s*(?:,\s*)?(?:(?:and|or)\s+)?")


def _leading_spans(s: str) -> str | None:
    """The leading math span of `s`, and the spans that follow it joined by commas, "and" or "or"
    (`$1$ and $2$` -> `1, 2`: several answers given as one list)."""
    first = _leading_span(s)
    if first is None:
        return None
    contents, pos = [first[0]], first[1]
    while True:
        gap = _SPAN_CONNECTOR.match(s, pos)
        nxt = _leading_span(s[gap.end():]) if s[pos:gap.end()].strip() else None  # a comma or a word
        if nxt is None or not nxt[0]:
            break
        contents.append(nxt[0])
        pos = gap.end() + nxt[1]
    return ", ".join(c for c in contents if c)


def _only_span(s: str) -> str | None:
    """The content when the whole of `s` is one math span (`$x$`, `\\[x\\]`, ...); several `$` spans and
    nothing else (`$a$, $b$`) -> `a, b`. Inline spans do not cross lines."""
    s = s.strip()
    for left, right in _SPANS:
        if len(s) > len(left) + len(right) and s.startswith(left) and s.endswith(right):
            inner = s[len(left):-len(right)]
            if left == "$" and "$" in inner.replace("\\$", ""):
                break  # several $ spans: below
            if left in _INLINE and "\n" in inner:
                return None
            return inner.strip()
    if re.fullmatch(r"(?:\$[^$\n]+\$\s*,?\s*)+", s):
        return s.replace("$", "").strip()
    return None


def _cut_unclosed_inline(line: str) -> str:
    """`line` up to an inline math span that opens on it and does not close on it."""
    dollars = [m.start() for m in re.finditer(r"(?<![\\$])\$(?!\$)", line)]
    if len(dollars) % 2:
        line = line[:dollars[-1]]
    opens, closes = line.rfind("\\("), line.rfind("\\)")
    return line[:opens] if opens > closes else line


def answer_phrase(text: str) -> str | None:
    """What follows the last "The (final) answer is" / "Answer:" on its line: a leading math span
    whole (with the spans joined to it by "and", "or", commas), else up to the end of the sentence;
    "I hope it is correct" dropped. An inline span that does not close on its line is no answer."""
    found = list(_ANSWER_PHRASE.finditer(text))
    if not found:
        return None
    tail = text[found[-1].end():]
    tail = tail.lstrip(" \t*")
    span = _leading_spans(tail)
    if span is not None:
        return span
    if tail.startswith(_INLINE):
        return None
    line = _cut_unclosed_inline(tail.split("\n", 1)[0])
    line = re.split(r"(?i)\.?\s*I hope it is correct", line)[0]
    line = re.split(r"\.\s+(?=[A-Z])", line)[0]
    return _clean_tail(line.strip().strip("*").strip()) or None


@dataclasses.dataclass(frozen=True)
class MathAnswer:
    """What a completion answers. `candidates`: answers to compare with the gold (accepted if one is
    equal: the last box, then the boxes together for a set gold). `whole`: let math-verify read the
    whole completion (step math_verify), with `candidates` as the string fallback when it finds
    nothing. `step`: which rule decided."""
    step: str
    candidates: tuple[str, ...] = ()
    whole: str | None = None

    @property
    def shown(self) -> str | None:
        return self.candidates[0] if self.candidates else None


def _boxed_candidates(text: str, gold: str | None) -> list[str]:
    """The answers the boxes of `text` give, in the order they are tried (see the module docstring):
    boxes that end the text joined only by connectors are one answer, the set of them; "or" between them
    also offers the last box alone (MATH's own solutions write equivalent forms so: `$\\boxed{28}$ or
    $\\boxed{28_9}$`). Else the last box, and all boxes together when the gold lists that many elements."""
    boxes = [b.strip() for b in all_boxed(text) if b.strip()]
    if not boxes:
        return []
    last = clean_answer(boxes[-1], gold)
    run, said_or = sets.box_run(text, outer_boxes(text))
    elements = sets.flatten([clean_answer(b, gold) for b in run])
    if len(run) >= 2 and len(elements) >= 2:
        return [sets.join(elements, gold)] + ([last] if said_or else [])
    cands = [last]
    outer = outer_boxes(text)
    elements = sets.flatten([clean_answer(b, gold) for _, _, b in outer])
    if gold is not None and len(outer) >= 2 and len(elements) >= 2 and collection_size(gold) == len(elements):
        cands.append(sets.join(elements, gold))
    return cands


def find_math_answer(text: str, steps=MATH_STEPS, gold: str | None = None) -> MathAnswer | None:
    """The answer of a completion by the first of `steps` that finds one (see the module docstring);
    None when none does. `gold` (optional) decides whether several boxes are one set answer and
    whether a choice label is part of the answer."""
    if not isinstance(text, str) or not text.strip():
        return None
    unknown = set(steps) - set(ALL_MATH_STEPS)
    if unknown:
        raise ValueError(f"unknown math extraction steps {sorted(unknown)}; known: {', '.join(ALL_MATH_STEPS)}")
    text_fallback = None
    for step in steps:
        if step == "boxed":
            cands = _boxed_candidates(text, gold)
            if cands:
                return MathAnswer("boxed", tuple(cands))
        elif step == "hashes":
            hashes = _HASHES.findall(text)
            if hashes:
                return MathAnswer("hashes", (_clean_tail(hashes[-1]),))
        elif step == "answer_phrase":
            tail = answer_phrase(text)
            if tail:
                if is_formula(tail):
                    return MathAnswer("answer_phrase", (clean_answer(tail, gold),))
                text_fallback = text_fallback or tail
        elif step == "bare":
            s = text.strip()
            inner = _only_span(s)
            body = inner if inner is not None else s
            if "$" not in body and "\\(" not in body and is_formula(body) and not _plain_number_token(body):
                return MathAnswer("bare", (clean_answer(body, gold),))
        elif step == "math_verify":
            # what math-verify reads decides; when it reads nothing, the text answer (and for gsm8k
            # the last number) is compared as a string
            fallback = [text_fallback or _short_text(text)]
            if "last_number" in steps[steps.index(step):]:
                fallback += _NUMBER.findall(text)[-1:]
            return MathAnswer("math_verify", tuple(f.rstrip(".") for f in fallback if f), whole=text)
        elif step == "answer_text":
            fallback = text_fallback or _short_text(text)
            if fallback:
                return MathAnswer("answer_text", (fallback,))
        elif step == "last_number":
            nums = _NUMBER.findall(text)
            if nums:
                return MathAnswer("last_number", (nums[-1].rstrip("."),))
    return None


def read_gold(gold: str) -> tuple[str, str]:
    """How a gold answer is compared: ("answer", s) when it is an answer alone: bare LaTeX such as
    `\\frac{1}{2}` or `x \\in [0,1)` (benchmark golds), a formula in `$...$` spans, or a text holding a
    `\\boxed{}` (its last box; boxes that end it joined only by connectors, `$\\boxed{1}$ and $\\boxed{2}$`,
    are one set answer, `1, 2`); ("text", gold) when it is prose around math (`$125$ miles`):
    math-verify then reads it as it reads a completion."""
    g = str(gold).strip()
    delimiters = re.compile(r"(?<!\\)\$|\\\(|\\\)|\\\[|\\\]")
    box = last_boxed(g) if re.search(r"\\(?:boxed|fbox|framebox)(?![A-Za-z])", g) else None
    if box is not None and box.strip():
        run, _ = sets.box_run(g, outer_boxes(g))
        elements = sets.flatten([clean_answer(b) for b in run])
        if len(run) >= 2 and len(elements) >= 2:
            return "answer", sets.join(elements, None)
        return "answer", clean_answer(box.strip())
    if not delimiters.search(g):
        return "answer", clean_answer(g)
    inner = delimiters.sub(" ", g).strip()
    if is_formula(inner):  # "$x$", "$a$,$b$", "x_{0} \\cos t+$ $\\dot{x}_0": the math inside
        return "answer", clean_answer(inner)
    return "text", g


_NUMBER_TOKEN = re.compile(r"-?[1-9]\d{0,2}(?:[ ,]\d{3})+(?:\.\d+)?|-?\d+,\d+")


def _plain_number_token(s: str) -> bool:
    """A bare number with a separator, `1,22` or `1 000` (math-verify's number formats): its reading
    (decimal comma, thousands) is math-verify's (step math_verify), not LaTeX's, where `1,22` is the
    set {1, 22}. A comma and a space (`2, 1`) is a list."""
    return bool(_NUMBER_TOKEN.fullmatch(s.strip()))


def _short_text(text: str) -> str | None:
    """A one-line completion that is only a few words ("Evelyn", "\\text{yes}"): a text answer."""
    s = text.strip()
    inner = _only_span(s)
    s = inner if inner is not None else s
    if "\n" in s or len(s) > 60 or len(s.split()) > 4:
        return None
    return _clean_tail(s) or None


def extract_math(text: str, number_fallback: bool = False) -> str | None:
    """The answer as the rules alone read it, without math-verify (steps boxed, hashes, answer_phrase;
    then a phrase's text; then the last number when `number_fallback`)."""
    found = find_math_answer(text, ("boxed", "hashes", "answer_phrase"))
    if found is not None:
        return found.shown
    tail = answer_phrase(text) if isinstance(text, str) else None
    if tail:
        return tail
    if number_fallback and isinstance(text, str):
        nums = _NUMBER.findall(text)
        if nums:
            return nums[-1].rstrip(".")
    return None


# ------------------------------------------------------------------------------------ choice
_CHOICE_PATTERNS = [  # the word is case-insensitive, the letter must be upper case ("is a ...")
    re.compile(r"(?i:answer\s*is)\s*:?\s*\**\s*\(\s*([A-Z])\s*\)"),            # The answer is (X)
    re.compile(r"(?i:answer\s*is)\s*:?\s*\**\s*\$?\\?(?:textbf\{)?([A-Z])\b(?![a-z'])"),
    re.compile(r"(?i:answer)\s*:\s*\**\s*\(?([A-Z])\b(?![a-z'])"),
]
_ANSWER_IS = re.compile(r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*([^\n]+)", re.IGNORECASE)


def _choice_from_box(box: str, n_options: int) -> str | None:
    inner = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", box).strip().strip("()").strip()
    if len(inner) == 1 and inner.upper() in LETTERS[:max(n_options, 1)]:
        return inner.upper()
    return None


def extract_choice(text: str, options: list[str] | None = None) -> str | None:
    """The chosen letter, upper-case; None when no choice can be read."""
    if not isinstance(text, str) or not text:
        return None
    n = len(options) if options else 26
    valid = set(LETTERS[:n])
    box = last_boxed(text)
    if box is not None:
        letter = _choice_from_box(box, n)
        if letter:
            return letter
    for pat in _CHOICE_PATTERNS:
        found = [m for m in pat.findall(text) if m in valid]
        if found:
            return found[-1]
    stripped = text.strip().strip("().*").strip()
    if len(stripped) == 1 and stripped.upper() in valid:
        return stripped.upper()
    if options:
        final = box if box is not None else None
        if final is None:
            said = _ANSWER_IS.findall(text)
            final = said[-1] if said else text.strip().splitlines()[-1] if text.strip() else ""
        final = _clean_tail(final).lower()
        for i, opt in enumerate(options):
            if final and final == str(opt).strip().lower().rstrip("."):
                return LETTERS[i]
    return None


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return None
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    blocks = [(lang, body) for lang, body in blocks if lang in ("", "python", "py", "python3")]
    if blocks:
        with_def = [b for _, b in blocks if re.search(r"^\s*def\s", b, re.M)]
        return (with_def or [b for _, b in blocks])[-1]
    return text
