"""Regenerate the generated tables of README.md from the registries (``make readme``).

The tables live between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers; tests/test_readme.py
fails when they drift from the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sdeflow.cli.solvers import markdown_table, process_markdown_table

BLOCKS = {"solvers": markdown_table, "processes": process_markdown_table}


def render(text: str) -> str:
    for name, fn in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(\n<!-- END {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md lacks the markers of the {name!r} table")
        text = pattern.sub(lambda m: m.group(1) + fn() + m.group(2), text)
    return text


if __name__ == "__main__":
    path = Path(__file__).resolve().parents[1] / "README.md"
    new = render(path.read_text())
    if "--check" in sys.argv:
        sys.exit(0 if new == path.read_text() else 1)
    path.write_text(new)
    print(f"updated {path}")
