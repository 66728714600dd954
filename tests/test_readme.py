"""The README stays true to the code: its tables come from the registries and its example runs."""

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_tables_match_the_registries():
    # The solver and process tables between the README's markers equal what the registries give now;
    # run `make readme` (scripts/update_readme.py) after adding a solver or process.
    update = runpy.run_path(str(ROOT / "scripts" / "update_readme.py"), run_name="not_main")
    text = (ROOT / "README.md").read_text()
    assert update["render"](text) == text, "README tables are stale: run `make readme`"


def test_readme_example_runs(capsys):
    # The ten-line example executes as written and prints 35 model calls for Heun with 18 steps
    # (2 per step, 1 on the last step to t = 0).
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Ten lines\n\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(block, "README example", "exec"), {})
    out = capsys.readouterr().out
    assert "torch.Size([1000, 2]) 35" in out


def test_readme_names_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()
