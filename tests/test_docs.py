"""Every code block and command in README.md and docs/*.md runs (pages are discovered, so new pages are covered).

How a page is run (docs/cli.md, "Docs that run", says the same for writers):

* Its fenced blocks run in order, in one fresh temporary folder per page, sharing one Python namespace,
  so a later block may use what an earlier one defined or wrote.
* ```python blocks are executed. ```bash / ```sh / ```console blocks and unlabelled blocks whose lines
  start with ``sdeflow`` are commands: each ``sdeflow ...`` line runs in-process (``sdeflow.cli.main``)
  and must exit 0; any other line runs in bash. Unlabelled blocks without commands (a file tree) are text.
* An HTML comment right before a block adjusts it for the test, never silently:
  ``<!-- docs-test: replace OLD => NEW -->`` (repeatable) runs the block with OLD replaced, to cut
  sizes (``--steps 5000 => --steps 20``); ``<!-- docs-test: setup CODE -->`` runs hidden Python first
  (the objects a fragment assumes); ``<!-- docs-test: skip REASON -->`` does not run the block, and
  REASON is required (e.g. it needs a GPU, or it is the test suite itself).

Each page is one test; the expected figure is "exit code 0 / no exception" for every block.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))

FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*docs-test:\s*(replace|setup|skip)\b(.*?)-->", re.S)
COMMAND_LANGS = {"bash", "sh", "shell", "console"}


def blocks(text: str) -> list[dict]:
    """The page's code blocks in order: language, code, and the markers in the text just before each."""
    out, last = [], 0
    for m in FENCE.finditer(text):
        between = text[last:m.start()]
        # Markers apply to the next block only: those after the previous block's end.
        markers = [(kind, arg.strip()) for kind, arg in MARKER.findall(between)]
        out.append({"lang": m.group(1).lower(), "code": m.group(2), "markers": markers, "line": text[:m.start()].count("\n") + 1})
        last = m.end()
    return out


def _commands(code: str) -> list[str]:
    lines = []
    for raw in code.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _is_command_block(block: dict) -> bool:
    if block["lang"] in COMMAND_LANGS:
        return True
    return block["lang"] == "" and any(line.startswith("sdeflow ") for line in _commands(block["code"]))


def _run_command(line: str, page: str, where: int) -> None:
    from sdeflow.cli import main

    words = shlex.split(line, comments=True)
    if not words:
        return
    if words[0] == "sdeflow" and "|" not in words and ">" not in words:
        try:
            code = main(words[1:])
        except SystemExit as stop:  # --help and --version end through argparse
            code = stop.code or 0
        assert code == 0, f"{page}:{where}: `{line}` exited with {code}"
        return
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", line], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{page}:{where}: `{line}` exited with {done.returncode}: {done.stderr[-2000:]}"


def run_page(path: Path, timings: list | None = None) -> None:
    """Run every block of one page (see the module docstring); raises on the first failure.

    ``timings`` receives ``(line, seconds)`` of each block (to find the slow ones).
    """
    import time

    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {"__name__": "__docs__"}
    for block in blocks(path.read_text()):
        code = block["code"]
        start = time.perf_counter()
        skip = [arg for kind, arg in block["markers"] if kind == "skip"]
        if skip:
            assert skip[0], f"{path.name}:{block['line']}: a docs-test skip marker needs a reason"
            continue
        for kind, arg in block["markers"]:
            if kind == "replace":
                old, sep, new = arg.partition("=>")
                assert sep and old.strip(), f"{path.name}:{block['line']}: replace marker must read 'OLD => NEW'"
                assert old.strip() in code, f"{path.name}:{block['line']}: replace marker: {old.strip()!r} is not in the block"
                code = code.replace(old.strip(), new.strip())
            elif kind == "setup":
                exec(compile(arg, f"{path.name}:{block['line']} (setup)", "exec"), namespace)
        if block["lang"] == "python":
            exec(compile(code, f"{path.name}:{block['line']}", "exec"), namespace)
        elif _is_command_block(block):
            for line in _commands(code):
                _run_command(line, path.name, block["line"])
        if timings is not None:
            timings.append((block["line"], time.perf_counter() - start))


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_block_of_the_page_runs(page, tmp_path):
    # Expected: every python block executes and every command exits 0 (figure: no failure at all).
    # A fresh interpreter per page: a page may register a solver or change global settings.
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, __file__, str(page)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"{page.name}: {done.stderr[-4000:]}"


def test_markers_are_read():
    # The runner's parser: a replace marker applies to the next block only, a skip needs a reason.
    text = "<!-- docs-test: replace 5000 => 20 -->\n```bash\nsdeflow x --steps 5000\n```\n\n```python\nprint(1)\n```\n"
    found = blocks(text)
    assert [b["lang"] for b in found] == ["bash", "python"]
    assert found[0]["markers"] == [("replace", "5000 => 20")] and found[1]["markers"] == []
    assert _is_command_block({"lang": "", "code": "sdeflow solvers\n"})
    assert not _is_command_block({"lang": "", "code": "src/sdeflow/cli   the command\n"})


if __name__ == "__main__":  # one page, in the current folder: python tests/test_docs.py docs/PAGE.md
    import torch

    torch.set_num_threads(1)
    run_page(Path(sys.argv[1]))
