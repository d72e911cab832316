"""Where the `\\boxed{}` of a text are and what they hold (also `\\fbox`, `\\framebox`; braces balanced,
escaped braces `\\{ \\}` skipped). Which of them make the answer: ilr.grading.extract and
ilr.grading.sets."""

from __future__ import annotations

import re


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


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every `\\boxed{...}` (and `\\fbox`, `\\framebox`) in order of appearance,
    nested ones included."""
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
                out.append((m.start(), j + len(inner) + 2, inner))
        elif m.end() < len(text) and text[m.end()] == " ":  # "\boxed 5"
            tok = re.match(r"\s*([^\s$]+)", text[m.end():])
            if tok:
                out.append((m.start(), m.end() + tok.end(), tok.group(1)))
    return out


def all_boxed(text: str) -> list[str]:
    """Contents of every `\\boxed{...}` (and `\\fbox`, `\\framebox`) in order of appearance."""
    return [content for _, _, content in boxed_spans(text)]


def outer_boxes(text: str) -> list[tuple[int, int, str]]:
    """The non-empty boxes not inside another box: (start, end, content)."""
    out: list[tuple[int, int, str]] = []
    for start, end, content in boxed_spans(text):
        if out and start < out[-1][1]:
            continue
        if content.strip():
            out.append((start, end, content.strip()))
    return out


def last_boxed(text: str) -> str | None:
    boxes = all_boxed(text)
    return boxes[-1] if boxes else None
