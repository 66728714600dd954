"""The command line under torchrun: every option survives torchrun's parser, and ``sdeflow sample``
on 2 processes writes the files of a single-process run.

Why ``torchrun ... -m sdeflow sample --n 1000`` fails: torchrun's parser (argparse, ``allow_abbrev``)
classifies every argument that starts with ``--`` as a possible abbreviation of its own options
*before* it assigns the script's arguments to its ``training_script_args`` remainder; ``--n`` is a
prefix of ``--nnodes``, ``--nproc-per-node``, ``--node-rank``, ``--no-python``, ... and argparse stops
with "ambiguous option" although the argument comes after the module. An exact option name, or the
prefix of a single torchrun option, passes through to sdeflow untouched. So every sdeflow option must
have a spelling that is not a prefix of two torchrun options (``--n`` has ``--num-samples`` /
``--num-points``, ``--num-images``), and ``--`` before the command protects any spelling.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdeflow.cli import build_parser, main
from sdeflow.cli import _subparsers


def _torchrun_accepts(argv: list[str]) -> list[str] | None:
    """The arguments torchrun hands to ``-m sdeflow``, or None when its parser refuses them."""
    from torch.distributed.run import get_args_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = get_args_parser().parse_args(["--nproc-per-node", "2", "-m", "sdeflow", *argv])
    except SystemExit:
        return None
    return args.training_script_args


def test_every_option_has_a_spelling_that_survives_torchrun():
    refused, unreachable = [], []
    for name, parser in _subparsers(build_parser()).items():
        for action in parser._actions:
            ok = [o for o in action.option_strings if _torchrun_accepts([name, o, "1"]) == [name, o, "1"]]
            bad = [o for o in action.option_strings if o not in ok]
            refused += [f"{name} {o}" for o in bad]
            if action.option_strings and not ok:
                unreachable.append(f"{name} {action.option_strings}")
    # Expected: no option without a surviving spelling; the refused spellings are exactly the old --n.
    assert unreachable == []
    assert refused and all(r.endswith(" --n") for r in refused), refused
    # The cause, shown: --n is ambiguous for torchrun, --num-samples is not, and '--' protects anything.
    assert _torchrun_accepts(["sample", "--n", "5"]) is None
    assert _torchrun_accepts(["sample", "--num-samples", "5"]) == ["sample", "--num-samples", "5"]
    assert _torchrun_accepts(["--", "sample", "--n", "5"]) == ["sample", "--n", "5"]


def test_seeds_option_is_checked(capsys, tmp_path):
    assert main(["sample", "--seeds", "0-9", "--n", "10", "--out", str(tmp_path / "a")]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["sample", "--seeds", "9-0", "--out", str(tmp_path / "b")]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_a_command_that_does_not_share_its_work_refuses_a_launch(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["solvers"]) == 2
    assert "runs as one process" in capsys.readouterr().err


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_torchrun_sample_writes_the_single_process_files(tmp_path):
    # Seeds 0..299 in batches of 64 (5 batches: ranks 0 and 1 draw 3 and 2), Euler-Maruyama (stochastic).
    opts = ["sample", "--seeds", "0-299", "--batch-size", "64", "--solver", "euler_maruyama", "--steps", "12",
            "--floor-boot", "2", "--quiet", "--out"]
    assert main([*opts, str(tmp_path / "one")]) == 0  # the single-process run, in this process
    from ._launch import free_port

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port())]
    _run([*torchrun, "-m", "sdeflow", *opts, str(tmp_path / "two")], tmp_path)
    # Expected: the same sample file to the byte, the same report but for the wall time; rank 0 alone wrote.
    assert (tmp_path / "one" / "samples.npz").read_bytes() == (tmp_path / "two" / "samples.npz").read_bytes()
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    one.pop("seconds"), two.pop("seconds")
    assert one == two and one["n"] == 300 and one["seed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
    with np.load(tmp_path / "two" / "samples.npz") as f:
        assert next(iter(f.values())).shape == (300, 2)
