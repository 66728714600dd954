"""The second action of the application commands, ``audio sample``, ``finance sample`` and ``molecules
sample``, follows the conventions of docs/cli.md like every command (issue 19).

tests/cli/test_consistency.py runs each command's ``train`` action (its EXAMPLES entry) with ``--json``,
through ``head`` and under SIGINT; this file does the same for ``sample``, on checkpoints of two training
steps made by each test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdeflow.cli import main

from .test_consistency import EXAMPLES, _env

SDEFLOW = [sys.executable, "-m", "sdeflow"]
APPS = ("audio", "finance", "molecules")
# A cheap complete sample of each ({ckpt}: the trained run, {out}: a fresh folder) and a long one, which
# SIGINT interrupts while it works.
CHEAP = {
    "audio": ["--n", "4", "--sample-steps", "2", "--no-metrics"],
    "finance": ["--n", "16", "--sample-steps", "2"],
    "molecules": ["--n", "2", "--no-eval"],
}
LONG = {
    "audio": ["--n", "4000", "--sample-steps", "200"],
    "finance": ["--n", "2000000"],
    "molecules": ["--n", "4000"],
}


def _train(app: str, tmp: Path) -> Path:
    # The EXAMPLES training run of tests/cli/test_consistency.py (two steps), in-process.
    argv = [w.format(tmp=tmp) for w in EXAMPLES[app]]
    assert main([app, *argv, "--quiet"]) == 0
    return Path(argv[argv.index("--out") + 1])


def _sample(app: str, ckpt: Path, out: Path, sizes: dict) -> list[str]:
    extra = ["--cache", str(ckpt.parent / "molecule-cache")] if app == "molecules" else []
    return [app, "sample", "--ckpt", str(ckpt), *sizes[app], *extra, "--out", str(out)]


@pytest.mark.slow
@pytest.mark.parametrize("app", APPS)
def test_sample_json_pipe_and_sigint(app, tmp_path, capsys):
    # Expected: (1) with --json, exit 0 and stdout is one JSON document (a non-empty object), nothing else;
    # (2) through `head -n 1`, exit 0 or 141 (closed pipe); (3) a long sample stopped by SIGINT prints one
    # line `sdeflow APP: interrupted` and exits 130 (0 if it finished first); never a traceback.
    ckpt = _train(app, tmp_path)
    env = _env()
    # (3) first, so that the long sample burns no CPU beside the others: interrupted wherever it is after
    # 3 s (importing or working).
    stopped = subprocess.Popen([*SDEFLOW, *_sample(app, ckpt, tmp_path / "stopped", LONG)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    stopped.send_signal(signal.SIGINT)
    _, err = stopped.communicate(timeout=300)
    assert "Traceback" not in err, f"{app} sample under SIGINT: {err[-3000:]}"
    assert stopped.returncode in (0, 130), f"{app} sample under SIGINT exited {stopped.returncode}: {err[-2000:]}"
    if stopped.returncode == 130:
        assert err.strip().splitlines()[-1] == f"sdeflow {app}: interrupted", err[-500:]
    # (2) through a pipe that closes after one line, while (1) runs in this process.
    argv = " ".join(f"'{w}'" for w in [*SDEFLOW, *_sample(app, ckpt, tmp_path / "piped", CHEAP)])
    piped = subprocess.Popen(["bash", "-c", f"{argv} | head -n 1 >/dev/null; exit ${{PIPESTATUS[0]}}"], env=env,
                             stderr=subprocess.PIPE, text=True)
    capsys.readouterr()
    assert main([*_sample(app, ckpt, tmp_path / "json", CHEAP), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report, dict) and report
    _, err = piped.communicate(timeout=300)
    assert "Traceback" not in err and piped.returncode in (0, 141), f"{app} sample | head: {piped.returncode} {err[-2000:]}"
