"""Values of simple numeric answers (`\\frac{3}{4}`, `2\\sqrt{3}`, `-\\frac{\\pi}{6}`, `0.75`), read without
sympy: most math answers are such numbers, and two of them can be compared here instead of in a
math-verify worker (ilr.grading.mathcheck.quick_check).

`value(s)` returns a `Value` or None when `s` is anything else (a variable, a set, an interval, a
percentage, degrees, units, text: math-verify decides those). The grammar: numbers, + - * / ^, \\cdot,
\\times, parentheses and braces, \\frac (\\dfrac, \\tfrac, \\cfrac; also `\\frac12`), \\sqrt (and
`\\sqrt[n]{x}`), \\pi, implicit products (`2\\sqrt{3}`, `3\\pi`).

`not_a_number(s)` names answers that no single number can equal: a list, set, tuple or interval of
two or more distinct elements, or a word (`\\text{east}`); a number against one of those is wrong.

`same(a, b)` is True, False, or None (undecided) and errs toward None, so that it never disagrees with
math-verify (tests/test_grading_numeric.py checks this against math-verify on the real golds): exact
rationals are equal or not; a value with a decimal literal is only declared
different when it is far beyond math-verify's 6-decimal rounding; irrational values are declared
equal within 1e-12 and different beyond 1e-6; values a factor 100 apart are left to math-verify,
which may read one as a percentage.
"""

from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction

from ilr.grading.sets import _strip_set_braces, top_level_parts

_TOKEN = re.compile(r"\s*(\d+\.\d+|\.\d+|\d+|\\[A-Za-z]+|[-+*/^(){}\[\]])")
_SKIP = {"\\left", "\\right", "\\displaystyle", "\\!", "\\,", "\\;", "\\:"}
_FRACS = {"\\frac", "\\dfrac", "\\tfrac", "\\cfrac"}
_MAX_EXP = 1024


@dataclasses.dataclass(frozen=True)
class Value:
    x: Fraction | float
    decimal: bool = False  # a decimal literal took part (math-verify then compares rounded floats)

    @property
    def exact(self) -> bool:
        return isinstance(self.x, Fraction) and not self.decimal


class _Unsupported(Exception):
    pass


def _tokens(s: str) -> list[str]:
    s = s.replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\:", "").replace("\\ ", " ")
    out, pos = [], 0
    while pos < len(s):
        if s[pos:].strip() == "":
            break
        m = _TOKEN.match(s, pos)
        if not m:
            raise _Unsupported(s[pos:])
        tok = m.group(1)
        if tok not in _SKIP:
            out.append(tok)
        pos = m.end()
    return out


class _Parser:
    def __init__(self, toks: list[str]):
        self.toks, self.i, self.decimal = toks, 0, False

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise _Unsupported(f"expected {want!r}, got {tok!r}")
        self.i += 1
        return tok

    def expr(self):
        v = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            w = self.term()
            v = v + w if op == "+" else v - w
        return v

    def term(self):
        v = self.unary()
        while True:
            tok = self.peek()
            if tok in ("*", "\\cdot", "\\times"):
                self.take()
                v = v * self.unary()
            elif tok == "/":
                self.take()
                v = _div(v, self.unary())
            elif tok is not None and (tok[0].isdigit() or tok[0] == "." or tok in ("(", "{", "\\pi", "\\sqrt")
                                      or tok in _FRACS):
                prev = self.toks[self.i - 1]
                if tok[0].isdigit() or tok[0] == ".":
                    if prev[0].isdigit() or prev[0] == "." or prev == "}":
                        raise _Unsupported("two numbers side by side")  # "2 3", "\frac{1}{2}3": not read
                if tok in _FRACS and (prev[0].isdigit() or prev[0] == "."):
                    raise _Unsupported("a mixed number")  # 3\frac18 is 3 + 1/8 to a reader, 3/8 to a parser
                v = v * self.power()
            else:
                return v

    def unary(self):
        if self.peek() == "-":
            self.take()
            return -self.unary()
        if self.peek() == "+":
            self.take()
            return self.unary()
        return self.power()

    def power(self):
        base = self.atom()
        if self.peek() == "^":
            self.take()
            exp = self.group_or_char()
            return _pow(base, exp)
        return base

    def group_or_char(self):
        """A TeX argument: {expr}, or one character (`\\frac12` is \\frac{1}{2}, `2^10` is 2^{1}0)."""
        if self.peek() == "{":
            self.take()
            v = self.expr()
            self.take("}")
            return v
        tok = self.take()
        if tok.isdigit():
            if len(tok) > 1:  # the rest of the digits is the next token
                self.toks[self.i - 1:self.i] = [tok[0], tok[1:]]
            return Fraction(int(tok[0]))
        if tok == "\\pi":
            return math.pi
        raise _Unsupported(tok)

    def atom(self):
        tok = self.take()
        if tok[0].isdigit() or tok[0] == ".":
            if "." in tok:
                self.decimal = True
                return Fraction(tok)  # exact, flagged as decimal
            return Fraction(int(tok))
        if tok in ("(", "{"):
            v = self.expr()
            self.take(")" if tok == "(" else "}")
            return v
        if tok == "\\pi":
            return math.pi
        if tok in _FRACS:
            num = self.group_or_char()
            return _div(num, self.group_or_char())
        if tok == "\\sqrt":
            root = 2
            if self.peek() == "[":
                self.take()
                r = self.expr()
                self.take("]")
                if not (isinstance(r, Fraction) and r.denominator == 1 and 2 <= r <= 10):
                    raise _Unsupported("root")
                root = int(r)
            return _root(self.group_or_char(), root)
        raise _Unsupported(tok)


def _div(a, b):
    if b == 0:
        raise _Unsupported("division by zero")
    return a / b


def _pow(a, b):
    if isinstance(b, Fraction) and b.denominator == 1 and abs(b) <= _MAX_EXP and isinstance(a, Fraction) \
            and max(a.numerator.bit_length(), a.denominator.bit_length()) * abs(b) < (1 << 16):
        if a == 0 and b < 0:
            raise _Unsupported("0 to a negative power")
        return a ** int(b)
    if float(a) <= 0:
        raise _Unsupported("non-integer power of a non-positive number")
    return float(a) ** float(b)


def _root(a, n: int):
    if isinstance(a, Fraction) and a >= 0:
        num, den = round(a.numerator ** (1 / n)), round(a.denominator ** (1 / n))
        if num ** n == a.numerator and den ** n == a.denominator:
            return Fraction(num, den)  # a perfect power stays exact
    if float(a) < 0:
        raise _Unsupported("root of a negative number")
    return float(a) ** (1 / n)


def value(s: str) -> Value | None:
    """The value of a simple numeric answer; None for anything else."""
    s = str(s).strip()
    if s.startswith("$") and s.endswith("$"):
        s = s.strip("$").strip()
    if not s or len(s) > 200 or "%" in s or "circ" in s or "," in s or "=" in s:
        return None
    try:
        p = _Parser(_tokens(s))
        v = p.expr()
        if p.peek() is not None:
            return None
    except (_Unsupported, OverflowError, ValueError, ZeroDivisionError, TypeError):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return Value(v, p.decimal)


def same(a: Value, b: Value) -> bool | None:
    """Equal (True), different (False) or undecided (None): see the module docstring."""
    if isinstance(a.x, Fraction) and isinstance(b.x, Fraction) and a.x == b.x:
        return True  # 0.5 and \frac{1}{2} too: math-verify's rounding keeps them equal
    if a.exact and b.exact:
        if a.x != 0 and b.x != 0 and (a.x == 100 * b.x or b.x == 100 * a.x):
            return None  # math-verify may read one as a percentage of the other
        return False
    x, y = float(a.x), float(b.x)
    if x and y and (math.isclose(x, 100 * y, rel_tol=1e-6) or math.isclose(y, 100 * x, rel_tol=1e-6)):
        return None
    if a.decimal or b.decimal:  # math-verify rounds floats to 6 decimals: decide only far from that
        return False if abs(x - y) > 1e-4 * max(1.0, abs(x), abs(y)) else None
    scale = max(abs(x), abs(y))  # relative: 2^-98 is not 0
    if abs(x - y) <= 1e-12 * scale:
        return True
    return False if abs(x - y) > 1e-6 * scale else None


def not_a_number(s: str) -> str | None:
    """"collection" or "text" when no single number can equal the answer `s`, else None. Collections
    need two elements that surely differ: {5, 5} or [5, 5] would be 5 to math-verify."""
    t = re.sub(r"\\left|\\right", "", str(s)).strip().strip("$").strip()
    t = _strip_set_braces(t)
    parts = top_level_parts(t)  # thousands separators (1,000) do not split
    if len(parts) < 2 and re.fullmatch(r"[(\[].*[)\]]", t, re.DOTALL):
        parts = top_level_parts(t[1:-1])  # (a, b), [a, b), ...
    if len(parts) >= 2:
        vals = [value(p) for p in parts]
        if any(same(vals[0], v) is not False for v in vals[1:] if v is not None and vals[0] is not None):
            return None
        if all(v is not None for v in vals) or len({re.sub(r"\s+", "", p) for p in parts}) == len(parts):
            return "collection"
        return None
    word = re.sub(r"\\(?:text|textbf|textrm|mbox|mathrm)\s*\{([^{}]*)\}", r"\1", str(s)).strip()
    if re.fullmatch(r"[A-Za-z][A-Za-z ]*[A-Za-z]", word):
        return "text"
    return None
