"""Answer extraction from model completions (and from the datasets' worked solutions).

Rules (see docs/grading.md):
- math: the content of the last `\\boxed{...}` (also `\\fbox`, `\\framebox`; braces balanced; `\\boxed 5`
  accepted); else the last GSM8K-style `#### N`; else the last "The (final) answer is ...";
  benchmarks whose gold is a plain number (gsm8k) fall back to the last number in the text.
- choice: the last "The answer is (X)" / "answer: X" / `\\boxed{X}`; else a completion that is only a
  letter; else a final answer equal to one option's text.
- code: the last fenced code block that defines a function (```python ... ```), else the last
  fenced block, else the whole completion.
"""

from __future__ import annotations

import re
import string

BOX_COMMANDS = ("\\boxed", "\\fbox", "\\framebox")
LETTERS = string.ascii_uppercase


def _balanced(text: str, start: int) -> str | None:
    """`text[start]` is '{'; return the content up to its matching '}' (None when unbalanced)."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "\\":  # skip escaped braces such as \{ \}
            continue
        if c == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif c == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    return None


def all_boxed(text: str) -> list[str]:
    """Contents of every `\\boxed{...}` (and `\\fbox`, `\\framebox`) in order of appearance."""
    out = []
    pattern = re.compile(r"\\(?:boxed|fbox|framebox)(?![A-Za-z])")
    for m in pattern.finditer(text):
        j = m.end()
        # \framebox[width]{...}: skip an optional [..] argument
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "[":
            k = text.find("]", j)
            if k > 0:
                j = k + 1
        if j < len(text) and text[j] == "{":
            inner = _balanced(text, j)
            if inner is not None:
                out.append(inner)
        elif m.end() < len(text) and text[m.end()] == " ":  # "\boxed 5"
            tok = re.match(r"\s*([^\s$]+)", text[m.end():])
            if tok:
                out.append(tok.group(1))
    return out


def last_boxed(text: str) -> str | None:
    boxes = all_boxed(text)
    return boxes[-1] if boxes else None


_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*([^\n]+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _clean_tail(s: str) -> str:
    s = s.strip()
    s = re.sub(r"[\s.。]+$", "", s)
    if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s.strip("$").strip()
    return s


def extract_math(text: str, number_fallback: bool = False) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    box = last_boxed(text)
    if box is not None:
        return box.strip()
    hashes = _HASHES.findall(text)
    if hashes:
        return _clean_tail(hashes[-1])
    said = _ANSWER_IS.findall(text)
    if said:
        tail = _clean_tail(said[-1])
        if tail:
            return tail
    if number_fallback:
        nums = _NUMBER.findall(text)
        if nums:
            return nums[-1].rstrip(".")
    return None


_CHOICE_PATTERNS = [  # the word is case-insensitive, the letter must be upper case ("is a ...")
    re.compile(r"(?i:answer\s*is)\s*:?\s*\**\s*\(\s*([A-Z])\s*\)"),            # The answer is (X)
    re.compile(r"(?i:answer\s*is)\s*:?\s*\**\s*\$?\\?(?:textbf\{)?([A-Z])\b(?![a-z'])"),
    re.compile(r"(?i:answer)\s*:\s*\**\s*\(?([A-Z])\b(?![a-z'])"),
]


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
