"""One table, three files: Markdown (`.md`, to read), CSV (`.csv`, every number with its CI bounds) and
LaTeX (`.tex`, booktabs, with the caption).

A table reaches this module as its caption, its blocks and its frame. Blocks: a list of (block title,
header, rows of cell strings), one per model (or pair, or model and group); Markdown gives each its own
`##` section, LaTeX one tabular with a \\midrule and an italic title row per block. The frame is the
pandas DataFrame written as the CSV. In LaTeX the symbols the captions and cells use (±, Δ, −, ...) become
LaTeX commands: pdflatex rejects raw Unicode such as U+2212, the minus sign.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ilr.io import write_text

FORMATS = ("md", "csv", "tex")
Blocks = list[tuple[str, list[str], list[list[str]]]]


def fmt_cell(c: dict | None) -> str:
    """An accuracy cell in percent: "49.80 [45.10, 54.20]", with "± sd" over seeds where there are several."""
    if c is None or np.isnan(c["acc"]):
        return "n/a"
    sd = f" ± {100 * c['sd']:.2f}" if c.get("sd") is not None else ""
    return f"{100 * c['acc']:.2f}{sd} [{100 * c['lo']:.2f}, {100 * c['hi']:.2f}]"


def fmt_p(p: float | None) -> str:
    if p is None or np.isnan(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else "< 0.001"


def markdown(name: str, caption: str, blocks: Blocks) -> str:
    lines = [f"# {name}", "", caption, ""]
    for title, header, body in blocks:
        if title:
            lines += [f"## {title}", ""]
        lines += ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        lines.append("")
    return "\n".join(lines)


_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
               "±": r"$\pm$", "Δ": r"$\Delta$", "—": "---", "–": "--", "−": "$-$", "<": r"$<$", ">": r"$>$",
               "γ": r"$\gamma$", "×": r"$\times$", "≤": r"$\leq$", "≥": r"$\geq$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))


def tex_cell(text: str) -> str:
    """A number with its CI, the CI in small type: "49.80 [45.10, 54.20]"."""
    if " [" in text and text.endswith("]"):
        head, ci = text.split(" [", 1)
        return tex_escape(head) + r" {\scriptsize [" + tex_escape(ci[:-1]) + "]}"
    return tex_escape(text)


def latex(name: str, caption: str, blocks: Blocks) -> str:
    """A booktabs table (\\usepackage{booktabs}); blocks become \\midrule-separated groups with a title row."""
    blocks = blocks or [("", ["(no rows)"], [])]
    ncols = max(len(h) for _, h, _ in blocks)
    lines = ["% written by `python -m ilr tables`; needs \\usepackage{booktabs}", r"\begin{table*}[t]",
             r"\centering", r"\small", r"\begin{tabular}{l" + "r" * (ncols - 1) + "}", r"\toprule"]
    last_header = None
    for i, (title, header, body) in enumerate(blocks):
        if header != last_header:
            if i:
                lines.append(r"\midrule")
            lines.append(" & ".join(tex_escape(h) for h in header) + r" \\")
            last_header = header
        lines.append(r"\midrule")
        if title:
            lines.append(rf"\multicolumn{{{ncols}}}{{l}}{{\textit{{{tex_escape(title)}}}}} \\")
        for row in body:
            row = row + [""] * (ncols - len(row))
            lines.append(" & ".join([tex_escape(row[0])] + [tex_cell(c) for c in row[1:]]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{tex_escape(caption)}}}",
              rf"\label{{tab:{name.replace('_', '-')}}}", r"\end{table*}", ""]
    return "\n".join(lines)


def write(out_dir: Path, name: str, caption: str, blocks: Blocks, frame) -> list[Path]:
    """<out_dir>/<name>.md, .csv and .tex; returns their paths."""
    paths = [Path(out_dir) / f"{name}.{ext}" for ext in FORMATS]
    write_text(paths[0], markdown(name, caption, blocks))
    write_text(paths[1], frame.to_csv(index=False))
    write_text(paths[2], latex(name, caption, blocks))
    return paths
