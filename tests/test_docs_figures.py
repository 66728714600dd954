"""Every measured figure quoted in the prose of README.md, docs/*.md, labs/README.md and BENCHMARKS.md is
produced by a command the page names (issue 19).

The rule, per ``##`` section (the text before the first ``##`` is a section too; ``###`` and deeper stay
in their ``##`` section): a section whose prose quotes a measured quantity must also name a command
that produces it, or link to the BENCHMARKS report that names one.

* A measured quantity is a number with a unit of time or size (``4.32 s``, ``2 minutes``, ``150 KB``,
  ``20,600 samples/s``), a percentage, a ratio (``15 times``, ``2.4x``), or a metric name followed by a
  number (``W2 0.052``, ``FD 9.35``, ``RMS 0.057``, ``accuracy 0.93``, ``JSD 0.01``). Code (fenced blocks
  and inline backticks), HTML comments and link targets are not prose and are not searched.
* A command is an inline, fenced or indented one starting with ``sdeflow``, ``python``, ``make``,
  ``torchrun``, ``pytest`` (or a path to them such as ``.venv/bin/python``, after ``VAR=value``
  settings), a fenced ``python`` block that prints (the page runs it: the figure is what it prints), or
  a link to ``BENCHMARKS.md`` or a ``BENCHMARKS-<area>.md`` report (each of whose sections names its
  exact command).
* A setting or definition that reads like a measurement (a clip of 0.248 s, labels dropped 10% of the
  time) is listed in a marker in its section, ``<!-- docs-figures: not measured: 0.248 s; 10% -->``.

The rule is a net, not a proof: the audit of issue 19 checked the figures by hand; this test keeps a new
unbacked figure from slipping in. Pages are discovered, so new docs pages are covered.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "labs" / "README.md", ROOT / "BENCHMARKS.md"] + sorted((ROOT / "docs").rglob("*.md"))

FENCE = re.compile(r"^```[^\n]*\n.*?^```[ \t]*$", re.S | re.M)
COMMENT = re.compile(r"<!--.*?-->", re.S)
# A setting or a definition that reads like a measurement (a clip of 0.248 s, labels dropped 10% of
# the time) is listed, ';'-separated, in a marker in its section: <!-- docs-figures: not measured: 0.248 s; 10% -->
NOT_MEASURED = re.compile(r"<!--\s*docs-figures:\s*not measured:(.*?)-->", re.S)
INLINE = re.compile(r"`([^`\n]+)`")
LINK_TARGET = re.compile(r"\]\(([^)\s]+)\)")

NUMBER = r"(?<![\w.^-])\d(?:[\d,]*\d)?(?:\.\d+)?(?:e-?\d+)?"
FIGURE = re.compile(
    "|".join([
        # times and sizes: 4.32 s, 7.5 min, 2 minutes, 150 KB, 20,600 samples/s
        rf"{NUMBER}\s?(?:s|ms|us|µs|sec|seconds?|min|minutes?|hours?|KB|MB|GB|KiB|MiB|GiB)(?![\w/])",
        rf"{NUMBER}\s?(?:samples|steps|paths|it|images)/s\b",
        # percentages and ratios: 6 %, 15 times, 2.4x faster
        rf"{NUMBER}\s?%",
        rf"{NUMBER}\s+times\b",
        rf"{NUMBER}x\s+(?:faster|slower|better|worse|smaller|larger)\b",
        # a metric followed closely by its value: W2 0.052, FD 9.35, RMS 0.51 -> 0.013, accuracy 0.93
        rf"\b(?:W2|FD|RMS|JSD|KL|MMD|NLL|ELBO|bpd|bits/dim|accuracy|Frechet distance)\b[^.;:\n]{{0,20}}?{NUMBER}",
    ])
)
COMMAND_WORD = re.compile(r"^(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:[\w./-]*/)?(?:sdeflow|python3?|make|torchrun|pytest)(?:\s|$)")
INDENTED = re.compile(r"^(?: {4}|\t)(\S.*)$", re.M)
BENCHMARKS_LINK = re.compile(r"(?:^|/)BENCHMARKS(?:-[\w-]+)?\.md(?:#[\w-]*)?$")


def sections(text: str) -> list[tuple[str, str]]:
    """``(heading, body)`` per ``##`` section; fenced blocks never split a section (a ``## `` line inside
    a code block is code)."""
    out, heading, start = [], "(top of the page)", 0
    fences = [(m.start(), m.end()) for m in FENCE.finditer(text)]
    for m in re.finditer(r"^## .*$", text, re.M):
        if any(a <= m.start() < b for a, b in fences):
            continue
        out.append((heading, text[start:m.start()]))
        heading, start = m.group(0)[3:].strip(), m.end()
    out.append((heading, text[start:]))
    return out


def prose(section: str) -> str:
    """The section without code blocks, inline code, HTML comments and link targets."""
    text = COMMENT.sub(" ", FENCE.sub(" ", section))
    return LINK_TARGET.sub("]", INLINE.sub(" ", text))


def figures(section: str) -> list[str]:
    """The measured figures the section's prose quotes, less those its ``not measured`` markers list."""
    settings = {item.strip() for marker in NOT_MEASURED.findall(section) for item in marker.split(";")}
    return [m.group(0) for m in FIGURE.finditer(prose(section)) if m.group(0) not in settings]


def commands(section: str) -> list[str]:
    """The commands and BENCHMARKS links a section names."""
    text = COMMENT.sub(" ", section)
    found = [code for code in INLINE.findall(FENCE.sub(" ", text)) if COMMAND_WORD.match(code.strip())]
    for block in FENCE.findall(text):
        found += [line.strip() for line in block.splitlines()[1:-1] if COMMAND_WORD.match(line.strip())]
        if block.startswith("```python") and "print(" in block:  # the page runs it and shows what it prints
            found.append(block.splitlines()[1])
    found += [line for line in INDENTED.findall(FENCE.sub(" ", text)) if COMMAND_WORD.match(line)]  # indented code
    found += [t for t in LINK_TARGET.findall(text) if BENCHMARKS_LINK.search(t)]
    return found


def unbacked(text: str) -> list[tuple[str, list[str]]]:
    """``(heading, figures)`` of each section that quotes measured figures and names no command."""
    return [(heading, figs) for heading, body in sections(text) if (figs := figures(body)) and not commands(body)]


# Pages another workstream is rewriting while this check lands, with what is missing (the check passes
# on them as soon as that is fixed, and then this entry should go).
PENDING: dict[str, str] = {}


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.xfail(reason=PENDING[str(p.relative_to(ROOT))]))
                                  if str(p.relative_to(ROOT)) in PENDING else p for p in PAGES],
                         ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_quoted_figure_names_its_command(page):
    # Expected: no section of the page quotes a measured figure without naming a command (figure: 0 sections).
    bad = unbacked(page.read_text())
    assert not bad, f"{page.relative_to(ROOT)}: sections quoting measured figures without naming a command: " + "; ".join(
        f"'{heading}' ({', '.join(figs[:4])})" for heading, figs in bad)


def test_the_checker_catches_an_unbacked_figure():
    # A page whose second section quotes a time and a W2 with no command: exactly that section is reported.
    page = "# Page\n\nIntro, nothing measured.\n\n## Speed\n\nIt takes 4.3 s and reaches W2 0.052.\n"
    assert unbacked(page) == [("Speed", ["4.3 s", "W2 0.052"])]
    # The same section naming its command, inline, fenced, or by a link to a BENCHMARKS report, passes.
    for backing in ("Run `sdeflow sample --target ring2d`.", "```bash\npython benchmarks/samplers.py --quick\n```",
                    "See [the report](BENCHMARKS.md#samplers).", "See [it](../BENCHMARKS-training.md)."):
        assert unbacked(page + "\n" + backing + "\n") == [], backing
    # A command in another section does not back this one, and code or comments are not prose.
    assert unbacked("## A\n\n`sdeflow demo`\n\n## B\n\nIt takes 80 s.\n") == [("B", ["80 s"])]
    assert unbacked("## A\n\n```python\nx = 4.3  # s\n```\n\n`--steps 5000` <!-- 12 s -->\n") == []
    # Units, percentages, ratios and metrics are each recognised; counts and versions are not figures.
    assert figures("7.5 min, 150 KB, 20,600 samples/s, 6 %, 15 times, FD 9.35, accuracy 0.93") == [
        "7.5 min", "150 KB", "20,600 samples/s", "6 %", "15 times", "FD 9.35", "accuracy 0.93"]
    assert figures("8 Gaussians, 256 samples, Python 3.11, 2 CPU cores, 8x8 digits, torch 2.13.0, 10^9 times") == []
    # A setting listed in a 'not measured' marker is not a figure; an unlisted one still is.
    marked = "## Data\n\n<!-- docs-figures: not measured: 0.248 s; 10% -->\nClips of 0.248 s, 10% dropped, in 3.5 s.\n"
    assert unbacked(marked) == [("Data", ["3.5 s"])]
    # A python block that prints is the command of what it prints; one that does not print is not.
    assert unbacked("## A\n\nThe error is 2.0 %.\n\n```python\nprint(error())\n```\n") == []
    assert unbacked("## A\n\nThe error is 2.0 %.\n\n```python\nerror()\n```\n") == [("A", ["2.0 %"])]
