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


def test_readme_sde_example_prices_black_scholes(capsys):
    # The sdeint example: 10,000 GBM paths with the order-1.5 SRK; the discounted call payoff must lie
    # within 4 standard errors (about 0.15 each) of the Black-Scholes price 10.4506.
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## SDEs for their own sake.*?```python\n(.*?)```", text, re.S).group(1)
    exec(compile(block, "README sde example", "exec"), {})
    mc, exact = (float(v) for v in capsys.readouterr().out.split())
    assert abs(exact - 10.450583572185565) < 1e-9
    assert abs(mc - exact) < 4 * 0.15
