"""The labs' harness: exercises, their checks, the solutions, sizes and figures.

A lab calls ``lab = Lab("01_sdes")`` once and, after each exercise cell, ``f = lab.check(f)``.
``check`` looks up ``check_<name>`` in ``labs/checks/<lab>.py`` (assertions against closed forms) and
``<name>`` in ``labs/solutions/<lab>.py``. What it does depends on ``SDEFLOW_LABS_MODE``:

* ``learner`` (the default): runs the check on your function; a wrong answer stops the lab with the
  check's message (an ``AssertionError``), a right one prints what was verified and the lab goes on.
* ``solutions``: replaces your function by the solution, checks it and goes on (see every lab run).
* ``verify`` (what CI runs): the check must FAIL on the function as written in the lab (the unfilled
  exercise), proving the check can fail; then the solution must pass it, and the lab goes on with it.

``SDEFLOW_LABS_QUICK=1`` selects the small sizes of :meth:`Lab.size` (CI); figures go to
``SDEFLOW_LABS_OUT`` (default ``labs/output/``), or are displayed when the lab runs in a notebook.
Nothing here draws random numbers: the labs use explicit seeds, as sdeflow does.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

__all__ = ["Lab", "MODES", "LAB_DIR"]

LAB_DIR = Path(__file__).resolve().parent
MODES = ("learner", "solutions", "verify")


def _load(folder: str, lab: str) -> ModuleType:
    path = LAB_DIR / folder / f"{lab}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (labs/{folder}/ must have one file per lab)")
    spec = importlib.util.spec_from_file_location(f"labs_{folder}_{lab}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (figures are then displayed, not saved)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class Lab:
    """One lab's state: its name, the mode read from the environment, and the exercises checked so far."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not (LAB_DIR / f"{name}.py").is_file():
            raise ValueError(f"name must be the stem of a lab file in {LAB_DIR} (e.g. '01_sdes'); got {name!r}")
        self.name = name
        self.mode = os.environ.get("SDEFLOW_LABS_MODE", "learner")
        if self.mode not in MODES:
            raise ValueError(f"SDEFLOW_LABS_MODE must be one of {MODES}; got {self.mode!r}")
        self.quick = os.environ.get("SDEFLOW_LABS_QUICK", "0") not in ("", "0")
        self.out = Path(os.environ.get("SDEFLOW_LABS_OUT", LAB_DIR / "output")) / name
        self.passed: list[str] = []
        self._checks = _load("checks", name)
        self._solutions: ModuleType | None = None
        self._start = time.perf_counter()
        print(f"[{name}] mode={self.mode} quick={self.quick}")

    def size(self, full: int, quick: int) -> int:
        """``full`` for a learner's run, ``quick`` under ``SDEFLOW_LABS_QUICK=1`` (CI)."""
        return quick if self.quick else full

    def check(self, fn: Callable) -> Callable:
        """Check the exercise ``fn`` (module docstring); returns the function the lab goes on with."""
        name = getattr(fn, "__name__", None)
        checker = getattr(self._checks, f"check_{name}", None)
        if checker is None:
            raise ValueError(f"labs/checks/{self.name}.py has no check_{name} for the exercise {name!r}")
        if self.mode in ("solutions", "verify"):
            if self.mode == "verify":
                try:
                    checker(fn)
                except AssertionError as failure:
                    print(f"  unfilled exercise {name}: fails its check as it must ({str(failure).splitlines()[0]})")
                else:
                    raise RuntimeError(
                        f"the check of {name} passed on the unfilled exercise: check_{name} cannot fail as written"
                    )
            if self._solutions is None:
                self._solutions = _load("solutions", self.name)
            fn = getattr(self._solutions, name)
        try:
            summary = checker(fn)
        except AssertionError as failure:
            raise AssertionError(
                f"exercise {name} of lab {self.name} is not right yet: {failure}\n"
                f"(a worked answer is in labs/solutions/{self.name}.py)"
            ) from None
        self.passed.append(name)
        print(f"  exercise {name}: passed. {summary or ''}".rstrip())
        return fn

    def show(self, fig: Any, name: str) -> Path | None:
        """Show a matplotlib figure inline in a notebook, else save it as ``<out>/<name>.png``."""
        import matplotlib.pyplot as plt

        if _in_notebook():
            from IPython.display import display

            display(fig)  # works whatever backend is active (sdeflow.plots selects Agg)
            plt.close(fig)
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{name}.png"
        fig.savefig(path, dpi=40 if self.quick else 100, bbox_inches="tight")  # quick: CI renders small
        plt.close(fig)
        print(f"  figure: {path}")
        return path

    def figure_path(self, name: str) -> Path:
        """Where to save a figure drawn by a function of ``sdeflow.plots`` (which write files): ``<out>/<name>.png``."""
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / f"{name}.png"

    def show_file(self, path: Path) -> None:
        """Show a PNG written by ``sdeflow.plots`` inline in a notebook, else print where it is."""
        if _in_notebook():
            from IPython.display import Image, display

            display(Image(filename=str(path)))
        else:
            print(f"  figure: {path}")

    def done(self) -> None:
        """The lab's last line: what passed and how long it took."""
        seconds = time.perf_counter() - self._start
        print(f"[{self.name}] done in {seconds:.1f} s; exercises passed: {', '.join(self.passed) or 'none'}")
