"""Math answers as models write them, beyond the benchmarks' own formats: each case is a kind of
answer the grader must find (or reject) in general, not a copy of any test list.

Categories: answers with no marker at all; several boxes making one answer; thousands separators;
"Final Answer:" phrases; presentation wrappers (`\\textbf{(073)}`); golds written with `$...$` or as
prose; relations and equations; text answers; sets given as several boxes (and the reverse); a comma
and a space between digits (a list, not a thousands separator); inline math across a line break; and
wrong answers that must never pass (each correct case has near-miss twins). `false accepts` are the
cases graded correct whose expected verdict is False.
"""

from __future__ import annotations

import pytest

from ilr.grading import grade
from ilr.grading.extract import (MATH_STEPS, clean_answer, collection_size, find_math_answer, is_formula,
                                 read_gold)

# (gold, completion, expected)
NO_MARKER = [
    ("7/4", r"\frac{7}{4}", True),
    ("7/4", r"\dfrac{7}{4}", True),
    ("-3/8", r"-\frac{3}{8}", True),
    (r"\frac{7}{4}", r"\frac{4}{7}", False),
    ("$(2,5]$", "$(2,5]$", True),
    ("$(2,5]$", "$[2,5]$", False),
    ("$(2,5]$", "$(2,5)$", False),
    ("$12$", r"Result \[ 12 \]", True),
    ("$12$", "Result $ 12 $", True),
    ("$12$", "Result $$ 12 $$", True),
    ("$12$", r"Result \( 12 \)", True),
    ("$12$", r"Result \( (7+5) \)", True),
    ("$12$", r"Result \( (7+6) \)", False),
    ("$12$", "Result $ 13 $", False),
    (r"3\sqrt{5}", r"3\sqrt{5}", True),
    ("3", r"3\sqrt{5}", False),             # the bare formula, not the first number in it
    ("x^3-2x", "x^3 - 2x", True),
    ("x^3-2x", "x^3 + 2x", False),
    ("$12$", "After simplifying we obtain $x = 12$.", True),
    ("$12$", "After simplifying we obtain $x = 21$.", False),
    ("$\\frac{2}{3}$", "so the probability is 2/3", True),
    ("$\\frac{2}{3}$", "so the probability is 3/2", False),
    ("0.75", "the value comes to 0.75 in the end", True),
    ("0.75", "the value comes to 0.57 in the end", False),
]

SEVERAL_BOXES = [
    ("(3,4),(4,3),(-3,-4),(-4,-3)", r"\boxed{(4, 3)}, \boxed{(3, 4)}, \boxed{(-4, -3)}, \boxed{(-3, -4)}", True),
    ("(3,4),(4,3),(-3,-4),(-4,-3)", r"\boxed{(4, 3)}, \boxed{(3, 4)}, \boxed{(-4, -3)}, \boxed{(-3, 4)}", False),
    ("(3,4),(4,3),(-3,-4),(-4,-3)", r"\boxed{(4, 3)}, \boxed{(3, 4)}", False),    # half of the set
    (r"\{-2, 5\}", r"The roots are $x=\boxed{-2}$ and $x=\boxed{5}$.", True),
    (r"\{-2, 5\}", r"The roots are $x=\boxed{-2}$ and $x=\boxed{6}$.", False),
    ("-2, 5", r"so \boxed{5} or \boxed{-2}", True),
    ("(1, 7)", r"Hence $a = \boxed{1}$ and $b = \boxed{7}$.", True),
    ("(1, 7)", r"Hence $a = \boxed{7}$ and $b = \boxed{1}$.", False),             # a tuple is ordered
    ("9", r"First \boxed{3}, so the answer is \boxed{9}.", True),                 # one value: the last box
    ("3", r"First \boxed{3}, so the answer is \boxed{9}.", False),
    (r"\{1, 2\}", r"intermediate \boxed{7}, final \boxed{\{1, 2\}}", True),
]

THOUSANDS = [
    ("15320", r"so the total is \boxed{15,320}", True),
    ("15320", r"so the total is \boxed{15{,}320}", True),
    ("15320", r"so the total is \boxed{15\,320}", True),
    ("15320", r"so the total is \boxed{15,230}", False),
    ("2048000", "The total is 2,048,000 dollars.", True),
    ("2048000", "The total is 2,084,000 dollars.", False),
    ("15,320", r"\boxed{15320}", True),
    ("1.5", "1,5", True),                   # a decimal comma, read as math-verify reads it
]

FINAL_ANSWER = [
    ("15320", "Final Answer: The final answer is $15,320$. I hope it is correct.", True),
    ("15320", "Final Answer: The final answer is $15,230$. I hope it is correct.", False),
    ("45", "Final Answer: The smallest $k$ is 45.", True),
    ("45", "Final Answer: The smallest $k$ is 54.", False),
    ("45", "Final Answer: The final answer is 45. I hope it is correct.", True),
    ("45", "**Final Answer:** 45", True),
    (r"\frac{\sqrt{3}}{2}", r"The final answer is $\frac{\sqrt{3}}{2}$.", True),
    (r"\frac{\sqrt{3}}{2}", r"The final answer is $\frac{\sqrt{2}}{3}$.", False),
    ("2\\pi", "Thus the answer is: $2\\pi$", True),
    ("12", "Answer: 12 meters", True),
    ("12", "Answer: 21 meters", False),
]

WRAPPERS = [
    ("073", r"so the answer is \boxed{\textbf{(073)}}", True),
    ("073", r"so the answer is \boxed{\textbf{(037)}}", False),
    ("73", r"\boxed{(073)}", True),
    ("12", r"\boxed{\textbf{(C)}\ 12}", True),
    ("12", r"\boxed{\textbf{(C) } 21}", False),
    ("C", r"\boxed{\textbf{(C)}\ 12}", True),    # a letter gold: the label is the answer
    ("D", r"\boxed{\textbf{(C)}\ 12}", False),
    ("8", r"\boxed{\mathbf{8}}", True),
]

GOLD_FORMS = [
    ("$125$ miles", r"It is $\boxed{125\text{ miles}}$.", True),
    ("$125$ miles", r"It is $\boxed{152\text{ miles}}$.", False),
    ("The value is $\\boxed{14}$.", "we get 14", True),
    ("$x = 7$", r"\boxed{7}", True),
    ("$7$", "$y=7$", True),
    ("$x \\geq 3$", "Hence $x \\ge 3$ is the solution set.", True),
    ("$x \\geq 3$", "Hence $x \\le 3$ is the solution set.", False),
    ("$x < 2$", "$-x > -2$", True),
    ("$x < 2$", "$x > -2$", False),
]

TEXT_ANSWERS = [
    (r"\text{Tuesday}", r"so it is \boxed{\text{Tuesday}}", True),
    (r"\text{Tuesday}", r"so it is \boxed{\text{Thursday}}", False),
    ("Tuesday", "Tuesday", True),
    ("Tuesday", "Thursday", False),
    (r"\text{(B)}", r"\boxed{\text{(B)}}", True),
]

# several boxes against a gold written as one set, and one boxed set against a gold of several boxes.
# Sets compare unordered; a tuple or an interval stays ordered, and a partial or wrong set is wrong.
SETS = [
    ("1, 2", r"\boxed{1} and \boxed{2}", True),
    ("1, 2", r"\boxed{2}, \boxed{1}", True),
    (r"\{1,2\}", r"so $x = \boxed{2}$ or $x = \boxed{1}$", True),
    ("x=1, x=2", r"\boxed{1} and \boxed{2}", True),
    (r"x = 1 \text{ or } x = 2", r"\boxed{2}, \boxed{1}", True),
    ("1, 2, 3", r"\boxed{1, 2} and \boxed{3}", True),                       # a box that is itself a list
    (r"-\sqrt{2}, \sqrt{2}", r"\boxed{\sqrt{2}}\quad\boxed{-\sqrt{2}}", True),
    ("1, 2", r"The answer is $1$ and $2$.", True),                             # several spans after "answer is"
    ("1, 2", r"The answer is $x=2$, $x=1$.", True),
    (r"\boxed{1}, \boxed{2}", r"\boxed{2, 1}", True),                          # the reverse: a gold of boxes
    (r"$x=\boxed{1}$ or $x=\boxed{2}$", r"\boxed{\{1, 2\}}", True),
    (r"The roots are $\boxed{-1}$ and $\boxed{3}$.", r"$3$ and $-1$", True),
    ("1, 2", r"\boxed{1} and \boxed{3}", False),                              # a wrong set
    ("1, 2, 3", r"\boxed{1} and \boxed{2}", False),                           # a partial set
    ("1, 2", r"\boxed{1}, \boxed{2}, \boxed{3}", False),                      # a set too large
    ("2", r"\boxed{1} and \boxed{2}", False),                                  # one value against a set
    (r"\boxed{1} and \boxed{2}", r"\boxed{2}", False),                         # the reverse, partial
    (r"$\boxed{1}$, $\boxed{2}$", r"\boxed{\{1, 3\}}", False),
    ("1, 2", "The answer is $1$ and $3$.", False),
    ("(1, 2)", r"$a = \boxed{2}$ and $b = \boxed{1}$", False),              # a tuple is ordered
    ("(1, 2)", r"\boxed{(2, 1)}", False),
    ("[1, 2]", r"\boxed{1}, \boxed{2}", False),                               # an interval is not a set
    (r"\{1, 2\}", r"\boxed{[1, 2]}", False),
]

# "1,234" is one number; "1, 234" (a comma and a space) is a list of two
LIST_COMMA = [
    ("1234", r"\boxed{1,234}", True),
    ("1234", r"\boxed{1, 234}", False),
    ("1234", "The answer is $1, 234$.", False),
    ("1234", "The answer is 1, 234.", False),
    ("1234", "1, 234", False),
    ("1234", "#### 1, 234", False),
    ("1, 234", r"\boxed{1234}", False),
    ("1, 234", r"\boxed{1,234}", False),
    ("1,234", r"\boxed{1, 234}", False),
    ("1, 234", r"\boxed{234, 1}", True),
    ("1, 234", r"\boxed{1} and \boxed{234}", True),
    ("1,234,567", r"\boxed{1234567}", True),
    ("1234567", r"\boxed{1, 234, 567}", False),
]

# inline math ($...$, \(...\)) ends at its line; display math ($$...$$, \[...\]) may span lines
INLINE_LINES = [
    ("x^2+1", "The answer is $x^2+1\n$", False),
    ("x^2+1", "The answer is $x^2\n+1$", False),
    (r"\frac{\pi}{3}", "$\\frac{\\pi}{3}\n$", False),
    (r"\frac{\pi}{3}", "Answer: \\(\\frac{\\pi}{3}\n\\)", False),
    (r"\sqrt{2}", "Answer: $\\sqrt{2}\n$.", False),
    (r"\sqrt{2}", "It costs $\\sqrt{2} and\nthen $3$.", False),
    (r"\sqrt{2}", "The answer is $\\sqrt{2}$.", True),
    (r"\sqrt{2}", "The answer is $$\\sqrt{2}\n$$", True),
    (r"\sqrt{2}", "The answer is \\[\n\\sqrt{2}\n\\]", True),
    ("5", "Let $a\nb$ be given. Answer: $5$", True),
    ("12", "Answer: 12 \\(\\text{m}\n\\)", True),
]

ALL = (NO_MARKER + SEVERAL_BOXES + THOUSANDS + FINAL_ANSWER + WRAPPERS + GOLD_FORMS + TEXT_ANSWERS + SETS
       + LIST_COMMA + INLINE_LINES)


@pytest.mark.parametrize("gold,completion,expected", ALL)
def test_answer_kinds(gold, completion, expected):
    g = grade({"kind": "math", "answer": gold}, completion)
    assert g.correct == expected, g


def test_no_false_accepts_in_one_batch():
    """The same cases through grade_many (workers, fast paths): none of the expected-False is accepted."""
    from ilr.grading import grade_many

    grades = grade_many([{"kind": "math", "answer": g} for g, _, _ in ALL], [c for _, c, _ in ALL], workers=2)
    false_accepts = [(g, c) for (g, c, e), gr in zip(ALL, grades) if gr.correct and not e]
    false_rejects = [(g, c) for (g, c, e), gr in zip(ALL, grades) if not gr.correct and e]
    assert false_accepts == [] and false_rejects == []


# ------------------------------------------------------------------------------ the pieces
def test_steps_in_order():
    assert find_math_answer(r"x \boxed{3} #### 4").step == "boxed"
    assert find_math_answer("work\n#### 4\nThe answer is 5").step == "hashes"
    assert find_math_answer("The answer is $5$.").step == "answer_phrase"
    assert find_math_answer(r"\frac{1}{2}").step == "bare"
    found = find_math_answer("We find that it equals 5 in the end.")
    assert found.step == "math_verify" and found.whole.startswith("We find")
    assert find_math_answer("nothing here", steps=("boxed", "hashes")) is None
    with pytest.raises(ValueError, match="unknown math extraction steps"):
        find_math_answer("x", steps=("boxed", "guess"))
    assert MATH_STEPS[:2] == ("boxed", "hashes")  # the benchmarks' own markers come first


def test_benchmark_rules():
    # gsm8k: the last number when nothing else is found; tiny_arith: the boxed format only
    assert grade({"benchmark": "gsm8k", "answer": "18"}, "She pays 3 * 6 = 18 dollars").correct
    assert not grade({"benchmark": "tiny_arith", "kind": "math", "answer": "5"}, "3+4=7,7-2=5").correct
    assert grade({"benchmark": "tiny_arith", "kind": "math", "answer": "5"}, "3+4=7,7-2=5 \\boxed{5}").correct
    assert grade({"benchmark": "aime24", "answer": "025"}, r"\boxed{\textbf{(025)}}").correct


def test_no_answer():
    g = grade({"kind": "math", "answer": "3"}, "I could not work this one out, sorry about that.")
    assert not g.correct and g.extracted is None and "no final answer" in g.reason
    g = grade({"kind": "math", "answer": "3"}, "   ")
    assert not g.correct and g.extracted is None


def test_shapes():
    assert collection_size("(1,2),(3,4)") == 2 and collection_size(r"\{1, 3, 5\}") == 3
    assert collection_size("[0,1)") == 1 and collection_size("12,345") == 1 and collection_size("(a, b, c)") == 3
    assert is_formula(r"2\sqrt{3}") and is_formula(r"5\text{ cm}") and is_formula("x^2+1")
    assert not is_formula("The largest $n$ is 34") and not is_formula("5 apples")
    assert clean_answer(r"\textbf{(073)}") == "073" and clean_answer(r"\textbf{(C)}\ 12") == "12"
    assert clean_answer(r"\textbf{(C)}\ 12", gold="C") == "C" and clean_answer("(1, 2)") == "(1, 2)"
    assert read_gold(r"\frac12") == ("answer", r"\frac12") and read_gold("$x$") == ("answer", "x")
    assert read_gold("$125$ miles")[0] == "text" and read_gold(r"so \boxed{4}.") == ("answer", "4")


def test_sets_pieces():
    from ilr.grading.extract import answer_phrase, outer_boxes
    from ilr.grading.mathcheck import normalize, plain_number
    from ilr.grading.sets import box_run, flatten, join, list_elements, top_level_parts

    def run(text):
        return box_run(text, outer_boxes(text))

    assert run(r"\boxed{1} and \boxed{2}") == (["1", "2"], False)
    assert run(r"$x=\boxed{1}$, or $x = \boxed{2}$.") == (["1", "2"], True)
    assert run(r"First \boxed{3}, so the answer is \boxed{9}.") == (["9"], False)     # prose between: not a list
    assert run(r"\boxed{1}\text{ and }\boxed{2}") == (["1", "2"], False)
    assert flatten([r"\{1, 2\}", "3", "2"]) == ["1", "2", "3"] and flatten(["(1, 2)", "[0, 1)"]) == ["(1, 2)", "[0, 1)"]
    assert join(["1", "7"], "(1, 7)") == "(1, 7)" and join(["1", "7"], r"\{1, 7\}") == "1, 7"
    assert list_elements(r"x=1 \text{ or } x=2") == ["x=1", "x=2"] and collection_size(r"1 \text{ and } 2") == 2
    assert top_level_parts("1,234") == ["1,234"] and top_level_parts("1, 234") == ["1", "234"]
    assert plain_number("1,234") == 1234 and plain_number("1, 234") is None
    assert normalize("1, 234") != normalize("1,234")
    assert answer_phrase("The answer is $1$ and $2$.") == "1, 2"
    assert answer_phrase("The answer is $5$ and it is odd") == "5"
    assert answer_phrase("The answer is $5\n$") is None and answer_phrase("Answer: \\(5\n\\)") is None
    assert read_gold(r"$\boxed{1}$ and $\boxed{2}$") == ("answer", "1, 2")
    assert read_gold(r"First \boxed{3}, then \boxed{9}") == ("answer", "9")
    found = find_math_answer(r"\boxed{(-2, 18)} or \boxed{(8, 38)}", gold="(8, 38)")
    assert found.candidates == ("(-2, 18), (8, 38)", "(8, 38)")  # "or": the last box is offered too
    assert find_math_answer("$\\frac{\\pi}{3}\n$").step != "bare"
