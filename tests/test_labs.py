"""The hands-on labs (labs/NN_name.py) run, and their exercise checks can fail.

Each lab runs in "verify" mode with the small CI sizes (labs/labkit.py): every exercise's check must
raise AssertionError on the function as written in the lab (the unfilled exercise; otherwise the
check could not fail), then pass on the worked solution of labs/solutions/, and the lab must run to
its end with the solutions substituted (its own asserts against closed forms included). Expected
figure: the lab finishes, and the exercises it checked are exactly the functions of its solutions file.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB_DIR = ROOT / "labs"
LABS = sorted(LAB_DIR.glob("[0-9][0-9]_*.py"))


def _solution_functions(stem: str) -> set[str]:
    spec = importlib.util.spec_from_file_location(f"_labsol_{stem}", LAB_DIR / "solutions" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {n for n, f in vars(module).items() if inspect.isfunction(f) and f.__module__ == module.__name__ and not n.startswith("_")}


def test_the_course_has_its_eight_labs():
    # The course: eight labs, each with a checks file and a solutions file of the same stem.
    assert [p.stem[:2] for p in LABS] == [f"{i:02d}" for i in range(1, 9)], [p.stem for p in LABS]
    for path in LABS:
        assert (LAB_DIR / "checks" / path.name).is_file(), f"labs/checks/{path.name} is missing"
        assert (LAB_DIR / "solutions" / path.name).is_file(), f"labs/solutions/{path.name} is missing"


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_is_a_jupytext_percent_script(path):
    # jupytext's percent format: a YAML header in comments, then cells opened by "# %%"; markdown cells
    # are "# %% [markdown]" followed by comment lines only. The file must also be valid Python.
    text = path.read_text()
    ast.parse(text)
    lines = text.splitlines()
    assert lines[0] == "# ---" and "jupytext" in text.split("# ---")[1], "missing the jupytext header"
    cells = [i for i, line in enumerate(lines) if line.startswith("# %%")]
    assert len(cells) >= 6, f"only {len(cells)} cells"
    markdown = [i for i in cells if lines[i].strip() == "# %% [markdown]"]
    assert len(markdown) >= 3, "a lab explains itself in markdown cells"
    for i in markdown:
        j = i + 1
        while j < len(lines) and not lines[j].startswith("# %%"):
            assert lines[j] == "" or lines[j].startswith("#"), f"line {j + 1}: code inside a markdown cell"
            j += 1


@pytest.mark.slow
@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_runs_with_solutions_and_its_checks_can_fail(path, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SDEFLOW_LABS_MODE", "verify")
    monkeypatch.setenv("SDEFLOW_LABS_QUICK", "1")
    monkeypatch.setenv("SDEFLOW_LABS_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.syspath_prepend(str(LAB_DIR))
    monkeypatch.chdir(tmp_path)
    import matplotlib

    matplotlib.use("Agg")
    namespace = runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    lab = namespace["lab"]
    expected = _solution_functions(path.stem)
    # Every solved exercise went through lab.check (which in verify mode saw its check fail first).
    assert sorted(lab.passed) == sorted(expected), f"checked {lab.passed}, solutions define {sorted(expected)}"
    assert out.count("fails its check as it must") == len(expected)
    assert f"[{path.stem}] done" in out
    sys.modules.pop("labkit", None)
