"""Every command the README and the pages of docs/ show in a ```bash block runs as written, so that a
command that drifts from the code (a flag in the wrong place, a renamed rule, a profile that plans the
wrong study) fails here:

  snakemake ...          as a dry-run (`-n` added: nothing submits or trains); `--report` needs a finished
                         study, so in a tree without results it must get as far as the first missing table
  make TARGET ...        `make -n` (the target exists and expands), then each Snakemake command of its
                         recipe as a dry-run
  python -m ilr check-config ...   run as is
  anything else          listed in NOT_RUN with the reason

The commands run in a copy of the working tree without results (the README's commands write under
results/, and a developer's results would make a dry-run plan nothing). The README is the entry page: it
stays short (at most 250 lines) and shows the two commands and the paper study's; every relative link of
the README and of docs/*.md names a file that exists (and a heading of it, for a `#anchor` into Markdown).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]      # the README and every page of docs/
README_MAX_LINES = 250

# first words of commands the README shows but this test does not run, and why
NOT_RUN = {
    ".venv/bin/pip": "installs packages (the GPU extras need a GPU machine)",
    "git": "commits in the user's clone (tests/test_dvc.py runs push, commit and pull)",
    "python -m ilr grade": "IN.jsonl / OUT.jsonl are placeholders (tests/test_grading_cli.py runs the command)",
}


def bash_commands(text: str) -> list[str]:
    """Each command of each ```bash block (also indented ones), comments dropped, `a && b` split."""
    commands = []
    for block in re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", text, re.S | re.M):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                commands.append(shlex.join(words[:cut]))
                words = words[cut + 1:]
    return commands


README_COMMANDS = bash_commands(README.read_text(encoding="utf-8"))
COMMANDS = list(dict.fromkeys(c for page in PAGES for c in bash_commands(page.read_text(encoding="utf-8"))))


def kind(cmd: str) -> str:
    for head in ("snakemake", "make", "python -m ilr check-config", *NOT_RUN):
        if cmd == head or cmd.startswith(head + " "):
            return head
    return "unknown"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The working tree's files (tracked and untracked, not ignored) in a fresh directory, sharing .venv."""
    dst = tmp_path_factory.mktemp("readme") / "repo"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if not (src.exists() or src.is_symlink()):
            continue                                   # deleted in the working tree
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel, follow_symlinks=False)
    (dst / ".venv").symlink_to(BIN.parent)
    os.utime(dst / "pyproject.toml", (0, 0))          # .venv is up to date: make must not plan a reinstall
    return dst


def run(tree: Path, argv: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(argv, cwd=tree, capture_output=True, text=True, timeout=600, env=env)


def dry_run(tree: Path, words: list[str]) -> None:
    """A `snakemake ...` command as a dry-run; `-n` goes last, where it also ends a --configfile list."""
    assert words[0] == "snakemake"
    r = run(tree, [str(BIN / "snakemake"), *words[1:], "-n"])
    out = r.stdout + r.stderr
    if "--report" in words:
        # nothing to report in a tree without results: it must fail on the first missing report file,
        # i.e. after the command line, the config and the DAG were all accepted
        assert r.returncode == 0 or re.search(r"File \S+ marked for report but does not exist", out), out[-3000:]
        return
    assert r.returncode == 0, f"{shlex.join(words)} -n\n{out[-3000:]}"
    assert "Job stats" in out or "Nothing to be done" in out, out[-3000:]


def test_the_readme_shows_the_commands_of_this_test():
    kinds = [kind(c) for c in COMMANDS]
    assert "unknown" not in kinds, [c for c in COMMANDS if kind(c) == "unknown"]
    assert "snakemake --profile slurm all" in README_COMMANDS and "snakemake --profile slurm -n all" in COMMANDS
    assert {"make demo", "make test"} <= set(README_COMMANDS)


def test_the_readme_is_an_entry_page():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move detail to a page of docs/"


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_resolve(page):
    """Each relative link [text](target) of the page names an existing file, and a heading of it for #anchor."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue                                   # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: {broken}"


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if kind(c) == "snakemake"])
def test_snakemake_command(tree, cmd):
    dry_run(tree, shlex.split(cmd))


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if kind(c) == "make"])
def test_make_command(tree, cmd):
    words = shlex.split(cmd)
    r = run(tree, ["make", "-n", *words[1:]])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for line in r.stdout.splitlines():
        recipe = shlex.split(line)
        if "snakemake" in recipe:
            dry_run(tree, recipe[recipe.index("snakemake"):])


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if kind(c) == "python -m ilr check-config"])
def test_check_config_command(tree, cmd):
    r = run(tree, [sys.executable, *shlex.split(cmd)[1:]])
    assert r.returncode == 0 and "valid" in r.stdout, r.stdout + r.stderr


def test_profile_plans_the_paper_study(tree):
    """`snakemake --profile slurm all` (the README's submit command) is the paper study, on Slurm."""
    r = run(tree, [str(BIN / "snakemake"), "--profile", "slurm", "all", "-n"])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "results/paper/tables/main.md" in out and "results/tables/main.md" not in out
    assert "sbatch" in out.lower() or "slurm" in out.lower()
    assert not (tree / "results").exists()          # a dry-run writes nothing under results/


def test_configfile_before_targets_is_the_documented_pitfall(tree):
    """Why the docs put targets before --configfile (docs/cluster.md): Snakemake 9 reads `all` as one more
    config file."""
    r = run(tree, [str(BIN / "snakemake"), "--profile", "slurm", "--configfile", "config/paper.yaml", "all", "-n"])
    assert r.returncode != 0 and "No such file or directory: 'all'" in r.stdout + r.stderr
