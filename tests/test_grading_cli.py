"""`python -m ilr grade IN OUT`: every user error is one line naming the file, the line and the key,
with exit status 2 and no traceback; good input is graded line by line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_grade(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ilr", "grade", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(cwd)})


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


MATH = {"kind": "math", "answer": "4", "completion": "so \\boxed{4}"}


def test_good_input_is_graded(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [
        dict(MATH, id="a"), "",  # blank lines are skipped
        {"id": "b", "benchmark": "gsm8k", "answer": "1200", "completion": "In all 1,200 apples.\n#### 1,200"},
        {"id": "c", "kind": "choice", "answer": "B", "options": ["1", "2"], "completion": "The answer is (A)."},
        {"id": "d", "kind": "code", "answer": "", "tests": ["assert f(1) == 2"],
         "completion": "```python\ndef f(x):\n    return x + 1\n```"},
    ])
    res = run_grade(str(src), str(tmp_path / "out.jsonl"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(ln) for ln in open(tmp_path / "out.jsonl", encoding="utf-8")]
    assert [(r["id"], r["correct"]) for r in rows] == [("a", True), ("b", True), ("c", False), ("d", True)]
    assert rows[2]["reason"] == "chose A, gold B" and rows[0]["extracted"] == "4"
    assert "graded 4: 3 correct" in res.stdout


def test_missing_file(tmp_path):
    assert_one_line_error(run_grade("nope.jsonl", "out.jsonl", cwd=tmp_path), "nope.jsonl", "no such file")


def test_directory_instead_of_file(tmp_path):
    (tmp_path / "d").mkdir()
    assert_one_line_error(run_grade("d", "out.jsonl", cwd=tmp_path), "d", "directory")


def test_latin1_file(tmp_path):
    src = tmp_path / "latin1.jsonl"
    good = json.dumps(MATH) + "\n"
    src.write_bytes(good.encode() + json.dumps({"kind": "math", "answer": "é", "completion": "x"},
                                               ensure_ascii=False).encode("latin-1") + b"\n")
    assert_one_line_error(run_grade(str(src), "out.jsonl", cwd=tmp_path), "latin1.jsonl", "line 2", "UTF-8")
    assert not (tmp_path / "out.jsonl").exists()


def test_bad_json(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [MATH, MATH, '{"kind": "math", "answer": "1", "completion": '])
    assert_one_line_error(run_grade(str(src), "out.jsonl", cwd=tmp_path), "in.jsonl", "line 3", "not valid JSON")


def test_line_that_is_not_an_object(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [MATH, "[1, 2]"])
    assert_one_line_error(run_grade(str(src), "out.jsonl", cwd=tmp_path), "line 2", "JSON object", "list")


def test_unknown_kind(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [MATH, dict(MATH, kind="poetry")])
    line = assert_one_line_error(run_grade(str(src), "out.jsonl", cwd=tmp_path), "in.jsonl", "line 2", "'kind'",
                                 "poetry")
    assert "math, code, choice" in line


def test_unknown_benchmark(tmp_path):
    row = {"benchmark": "gsm9k", "answer": "1", "completion": "1"}
    assert_one_line_error(run_grade(str(write_lines(tmp_path / "in.jsonl", [row])), "o.jsonl", cwd=tmp_path),
                          "line 1", "'benchmark'", "gsm9k", "gsm8k")


def test_neither_kind_nor_benchmark(tmp_path):
    row = {"answer": "1", "completion": "1"}
    assert_one_line_error(run_grade(str(write_lines(tmp_path / "in.jsonl", [row])), "o.jsonl", cwd=tmp_path),
                          "line 1", "'kind'", "'benchmark'")


@pytest.mark.parametrize("key", ["completion", "answer"])
def test_missing_key(tmp_path, key):
    row = {k: v for k, v in MATH.items() if k != key}
    assert_one_line_error(run_grade(str(write_lines(tmp_path / "in.jsonl", [MATH, row])), "o.jsonl", cwd=tmp_path),
                          "line 2", f"'{key}'")


def test_code_needs_no_answer(tmp_path):
    """A code line is judged by its tests: `answer` is not needed (kind given, or implied by a benchmark)."""
    program = "```python\ndef f(x):\n    return x + 1\n```"
    src = write_lines(tmp_path / "in.jsonl", [
        {"id": "a", "kind": "code", "tests": ["assert f(1) == 2"], "completion": program},
        {"id": "b", "benchmark": "mbpp", "tests": ["assert f(1) == 3"], "completion": program},
        {"id": "c", "kind": "code", "answer": None, "tests": ["assert f(2) == 3"], "completion": program},
    ])
    res = run_grade(str(src), str(tmp_path / "out.jsonl"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(ln) for ln in open(tmp_path / "out.jsonl", encoding="utf-8")]
    assert [(r["id"], r["correct"]) for r in rows] == [("a", True), ("b", False), ("c", True)]
    assert "answer" not in rows[0]


@pytest.mark.parametrize("row", [{"kind": "math", "completion": "\\boxed{4}"},
                                 {"benchmark": "gsm8k", "completion": "#### 4"},
                                 {"kind": "choice", "options": ["1", "2"], "completion": "A"}])
def test_math_and_choice_need_an_answer(tmp_path, row):
    src = write_lines(tmp_path / "in.jsonl", [MATH, row])
    line = assert_one_line_error(run_grade(str(src), "o.jsonl", cwd=tmp_path), "in.jsonl", "line 2", "'answer'")
    assert "missing" in line and "code" not in line
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("tests,word", [("assert f(1) == 2", "a string"), ([], "empty list"), ([1, 2], "a list"),
                                        ({"a": 1}, "an object")])
def test_tests_of_the_wrong_type(tmp_path, tests, word):
    row = {"kind": "code", "answer": "", "tests": tests, "completion": "def f(x):\n    return x + 1"}
    line = assert_one_line_error(run_grade(str(write_lines(tmp_path / "in.jsonl", [row])), "o.jsonl", cwd=tmp_path),
                                 "line 1", "'tests'", "list of assert lines")
    assert word in line


def test_code_without_tests(tmp_path):
    row = {"kind": "code", "answer": "", "completion": "def f(x):\n    return x + 1"}
    assert_one_line_error(run_grade(str(write_lines(tmp_path / "in.jsonl", [row])), "o.jsonl", cwd=tmp_path),
                          "line 1", "'tests'")


def test_options_of_the_wrong_type(tmp_path):
    row = {"kind": "choice", "answer": "A", "options": "A) 1 B) 2", "completion": "A"}
    assert_one_line_error(run_grade(str(write_lines(tmp_path / "in.jsonl", [row])), "o.jsonl", cwd=tmp_path),
                          "line 1", "'options'")


def test_completion_of_the_wrong_type(tmp_path):
    row = dict(MATH, completion=["\\boxed{4}"])
    assert_one_line_error(run_grade(str(write_lines(tmp_path / "in.jsonl", [row])), "o.jsonl", cwd=tmp_path),
                          "line 1", "'completion'")


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_input_is_an_error(tmp_path, content):
    src = tmp_path / "empty.jsonl"
    src.write_bytes(content)
    assert_one_line_error(run_grade(str(src), "out.jsonl", cwd=tmp_path), "empty.jsonl", "no records")
    assert not (tmp_path / "out.jsonl").exists()


def test_workers_below_one(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [MATH])
    assert_one_line_error(run_grade(str(src), "out.jsonl", "--workers", "0", cwd=tmp_path), "--workers")


def test_output_where_a_file_is_in_the_way(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [MATH])
    (tmp_path / "file").write_text("x")
    assert_one_line_error(run_grade(str(src), str(tmp_path / "file" / "out.jsonl"), cwd=tmp_path), "out.jsonl")
