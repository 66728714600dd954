"""Run the labs from the command line.

    python labs/run.py                  # every lab as a learner runs it (stops at an exercise not yet solved)
    python labs/run.py --solutions      # every lab with the worked solutions substituted
    python labs/run.py --verify --quick # what CI runs: each check must fail on the unfilled exercise,
                                        # pass on the solution, and the lab must run to its end, small sizes
    python labs/run.py 03 05            # some labs only (by number or file stem)

Each lab runs in its own Python process with one CPU thread (``OMP_NUM_THREADS=1``) and the
matplotlib Agg backend; figures are written under ``labs/output/<lab>/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent


def lab_files() -> list[Path]:
    """The lab scripts, in course order: ``labs/NN_name.py``."""
    return sorted(p for p in LAB_DIR.glob("[0-9][0-9]_*.py"))


def lab_env(mode: str, quick: bool, out: str | None = None) -> dict[str, str]:
    """The environment a lab runs in (labkit reads the mode, size and output folder from it)."""
    env = dict(os.environ, SDEFLOW_LABS_MODE=mode, SDEFLOW_LABS_QUICK="1" if quick else "0",
               OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    if out is not None:
        env["SDEFLOW_LABS_OUT"] = str(out)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(LAB_DIR), env.get("PYTHONPATH", "")]))
    return env


def select(names: list[str]) -> list[Path]:
    files = lab_files()
    if not names:
        return files
    chosen = []
    for name in names:
        hits = [p for p in files if p.stem == name or p.stem.split("_")[0] == name.zfill(2)]
        if not hits:
            raise SystemExit(f"run.py: error: unknown lab {name!r}; expected one of {[p.stem for p in files]}")
        chosen += hits
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="lab numbers or file stems (default: all)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--solutions", action="store_true", help="substitute the worked solutions")
    mode.add_argument("--verify", action="store_true", help="checks must fail on the unfilled exercises, then pass on the solutions")
    parser.add_argument("--quick", action="store_true", help="the small sizes CI uses")
    parser.add_argument("--out", default=None, help="folder for the figures (default labs/output)")
    args = parser.parse_args(argv)
    chosen = "verify" if args.verify else "solutions" if args.solutions else "learner"
    failed = []
    for path in select(args.labs):
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(path)], env=lab_env(chosen, args.quick, args.out), cwd=LAB_DIR)
        print(f"== {path.stem}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.perf_counter() - start:.1f} s\n")
        if code:
            failed.append(path.stem)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
