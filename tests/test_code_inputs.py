"""Each stage's code inputs come from what its modules import (ilr/code_inputs.py): they name only existing
files, and an edit to a module reruns exactly the jobs of the stages that import it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ilr import code_inputs
from ilr.study import STAGE_MODULES

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"


def test_every_code_input_exists():
    for stage in STAGE_MODULES:
        files = code_inputs.stage_code(stage)
        assert files, stage
        for f in files:
            assert (REPO / f).is_file(), (stage, f)


def test_modules_every_stage_runs():
    every = {"ilr/io.py", "ilr/__main__.py", "ilr/config/loading.py", "ilr/config/checks.py"}
    for stage in STAGE_MODULES:
        assert every <= set(code_inputs.stage_code(stage)), stage
    train = set(code_inputs.stage_code("train"))
    # what train reaches only through the trainer registry, and what it imports from inside functions
    assert {"ilr/train/grpo.py", "ilr/train/ppo.py", "ilr/train/ilr.py", "ilr/train/aipo.py",
            "ilr/vllm_engine.py", "ilr/calibration.py", "ilr/interaction.py", "ilr/idea3.py"} <= train
    assert "ilr/vllm_engine.py" in code_inputs.stage_code("evaluate")
    tables = set(code_inputs.stage_code("tables"))   # the table modules (registry) and the paper's numbers
    assert {"ilr/report/main.py", "ilr/report/paper_vs_reproduced.py", "ilr/report/paper_numbers.yaml"} <= tables
    assert not any(f.startswith("ilr/train/") for f in code_inputs.stage_code("prepare_data"))
    assert "ilr/grading/_sandbox_wrapper.py" in code_inputs.stage_code("evaluate")   # run by path, not imported


def test_imports_read_by_ast(tmp_path):
    pkg = tmp_path / "ilr"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import os\n\ndef f():\n    from ilr.sub import b\n    from . import c\n")
    (pkg / "sub" / "b.py").write_text("from ilr import d\nDATA = 'b.yaml'\n")
    (pkg / "sub" / "b.yaml").write_text("x: 1\n")
    (pkg / "c.py").write_text("")
    (pkg / "d.py").write_text("")
    (pkg / "unused.py").write_text("")
    assert code_inputs.closure(["ilr.a"], root=tmp_path) == [
        "ilr/__init__.py", "ilr/a.py", "ilr/c.py", "ilr/d.py", "ilr/sub/__init__.py", "ilr/sub/b.py",
        "ilr/sub/b.yaml"]
    with pytest.raises(ModuleNotFoundError):
        code_inputs.closure(["ilr.nope"], root=tmp_path)


def _dry_run(cwd: Path, results: Path) -> tuple[dict[str, int], str]:
    r = subprocess.run([SNAKEMAKE, "--cores", "1", "--config", f"results={results}", "-n", "all"], cwd=cwd,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(cwd)})
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal\s+(\d+)", out, re.S)
    stats = {name: int(n) for name, n in re.findall(r"^(\S+)\s+(\d+)$", m.group(1), re.M)} if m else {}
    return stats, out


def _edit(path: Path) -> None:
    """A content edit (Snakemake ignores a mere touch), dated after every output."""
    path.write_text(path.read_text() + "\n# edited\n")
    later = time.time() + 5
    os.utime(path, (later, later))


def test_content_edit_plans_the_stages_that_import_it(tmp_path):
    """A copy of the repo, every output of the tiny study in place (nothing to do), then: an edit to
    ilr/vllm_engine.py plans the training (and what reads it) but no data preparation; an edit to ilr/io.py
    plans every job."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("Snakefile", "workflow", "config", "ilr"):
        src = REPO / name
        (shutil.copytree(src, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
         if src.is_dir() else shutil.copy2(src, copy / name))
    results = tmp_path / "r"
    stats, out = _dry_run(copy, results)
    # every output, as a finished run leaves it: directories for the models and checkpoints
    outputs = [p for line in re.findall(r"^\s+output: (.*)$", out, re.M) for p in line.split(", ")]
    assert outputs and sum(stats.values()) > 0
    for p in outputs:
        path = Path(p) if os.path.isabs(p) else copy / p
        if path.suffix:     # a file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}\n")
        else:               # a directory output (a model, a final checkpoint)
            path.mkdir(parents=True, exist_ok=True)
            (path / "config.json").write_text("{}\n")
    assert _dry_run(copy, results)[0] == {}

    _edit(copy / "ilr" / "vllm_engine.py")
    stats, _ = _dry_run(copy, results)
    assert stats.get("train_single", 0) > 0 and stats.get("tables") == 1
    assert "prepare_train" not in stats and "prepare_benchmark" not in stats

    _edit(copy / "ilr" / "io.py")
    stats, _ = _dry_run(copy, results)
    assert stats.get("prepare_train") == 1 and stats.get("prepare_benchmark", 0) > 0
    assert stats.get("train_single", 0) > 0 and stats.get("tables") == 1


def test_imports_only_go_downward():
    """ilr/config/ and the trainer registry import nothing above them (the report, the study, a stage); the
    report imports the config, never the study (which reads the report's registry)."""
    config = code_inputs.closure(["ilr.config"])
    assert not [f for f in config if f.startswith(("ilr/report/", "ilr/train/")) or f == "ilr/study.py"], config
    assert code_inputs.closure(["ilr.trainers"]) == ["ilr/__init__.py", "ilr/trainers.py"]
    report = code_inputs.closure(["ilr.report.registry", *code_inputs.stage_modules("tables")[1:]])
    assert "ilr/study.py" not in report
    for stage in STAGE_MODULES:   # a stage never imports the study (which imports every stage's module)
        assert "ilr/study.py" not in code_inputs.stage_code(stage), stage
