"""Every command follows the same conventions (docs/cli.md); commands are discovered from the parser.

A new command is covered at once: it must have help on every option, the shared flags with their one
meaning, and an entry in EXAMPLES (a cheap run of it, executed with --json, through a pipe and under
SIGINT) or in EXEMPT with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sdeflow.cli import build_parser, main
from sdeflow.cli._app import QUIET_HELP, THREADS_HELP

ROOT = Path(__file__).resolve().parents[2]
SDEFLOW = [sys.executable, "-m", "sdeflow"]

# A cheap, complete run of each command ({tmp} is a fresh folder; {a}, {b}: small sample files; {run}: a
# tiny trained run). Each must finish in a few seconds on a loaded 2-core machine.
EXAMPLES = {
    "solvers": [],
    "sample": ["--n", "50", "--steps", "4", "--floor-boot", "2", "--out", "{tmp}/s"],
    "simulate": ["--paths", "20", "--steps", "5", "--out", "{tmp}/sim"],
    "price": ["--paths", "2000", "--steps", "5"],
    "likelihood": ["--target", "ring2d", "--n", "4", "--rtol", "1e-3", "--atol", "1e-3"],
    "compare": ["{a}", "{b}", "--boot", "2"],
    "fokker-planck": ["--cells", "12", "--frames", "1", "--samples", "20", "--sde-steps", "2", "--t-end", "0.1", "--out", "{tmp}/fp"],
    "demo": ["--skip-training", "--n", "20", "--out", "{tmp}/demo"],
    "train": ["--data", "ring2d", "--n-data", "500", "--steps", "4", "--batch-size", "32", "--width", "16", "--depth", "1",
              "--eval-steps", "1", "--out", "{tmp}/run"],
    "evaluate": ["--ckpt", "{run}", "--n", "50", "--steps", "2"],
    "reflow": ["--data", "moons", "--n-data", "200", "--rounds", "1", "--steps", "3", "--width", "8", "--depth", "1",
               "--batch-size", "16", "--out", "{tmp}/reflow"],
    "bridge": ["--method", "dsbm", "--source", "noise", "--target", "moons", "--n-data", "200", "--steps", "2", "--iterations", "1",
               "--n-pairs", "50", "--width", "8", "--depth", "1", "--eval", "50", "--sde-steps", "2", "--out", "{tmp}/bridge"],
    "audio": ["train", "--n-train", "8", "--steps", "2", "--batch-size", "4", "--channels", "8", "--out", "{tmp}/audio"],
    "finance": ["train", "--paths", "64", "--length", "8", "--substeps", "1", "--steps", "2", "--width", "8", "--depth", "1",
                "--batch-size", "16", "--out", "{tmp}/finance"],
    "molecules": ["train", "--n-train", "8", "--steps", "2", "--width", "8", "--layers", "1", "--batch-size", "4",
                  "--cache", "{tmp}/molecule-cache", "--out", "{tmp}/molecules"],
    "tune-grid": ["--target", "ring2d", "--solver", "ipndm", "--nfe", "4", "--pilot", "4", "--validation", "4",
                  "--max-iter", "3", "--out", "{tmp}/grid.json"],
}
# Commands whose flags are checked but that have no example here (they need a trained teacher or prior),
# with where their runs are tested.
NO_EXAMPLE = {
    "distill": "needs a trained teacher; tests/distill runs it",
    "restore": "needs a trained image prior; tests/inverse runs it",
    "train-autoencoder": "trains on images; tests/latent runs it",
}
# Commands that cannot follow a rule, with the reason.
EXEMPT = {
    "bench": "runs benchmarks/NAME.py with that script's own options (--quick, --out, ...); it writes reports, not a JSON summary",
}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


COMMANDS = _commands()


def _options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in p._actions for s in a.option_strings}


def _fill(argv: list[str], tmp: Path, run: Path | None = None) -> list[str]:
    a, b = tmp / "a.npz", tmp / "b.npz"
    if not a.exists():
        rng = np.random.default_rng(0)
        np.savez(a, samples=rng.normal(size=(60, 2)))
        np.savez(b, samples=rng.normal(size=(60, 2)))
    return [w.format(tmp=tmp, a=a, b=b, run=run) for w in argv]


def test_every_command_is_covered():
    # Expected: each command has an example here or an exemption with its reason (a new command fails
    # this test until it is added: see docs/cli.md, "Adding a command").
    missing = sorted(set(COMMANDS) - set(EXAMPLES) - set(EXEMPT) - set(NO_EXAMPLE))
    assert not missing, f"add a cheap example of {missing} to EXAMPLES in {__file__} (or an EXEMPT reason)"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_explains_every_option(name, capsys):
    # Expected: --help exits 0 and every visible option has a help text (the default is appended by
    # the shared formatter unless the text states it).
    with pytest.raises(SystemExit) as stop:
        main([name, "--help"])
    assert stop.value.code == 0
    assert f"usage: sdeflow {name}" in capsys.readouterr().out
    silent = [s for s, a in _options(COMMANDS[name]).items() if a.help != argparse.SUPPRESS and not (a.help or "").strip()]
    assert not silent, f"sdeflow {name}: options without help: {silent}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_same_flag_same_meaning(name):
    # Expected: --threads and --quiet are the shared ones; --json is the shared [FILE] option; a
    # checkpoint is --ckpt (old spellings are hidden deprecated aliases).
    if name in EXEMPT:
        return
    opts = _options(COMMANDS[name])
    assert opts["--threads"].help == THREADS_HELP, f"{name}: --threads must be the shared option (do not define it)"
    assert opts["--quiet"].help == QUIET_HELP, f"{name}: --quiet must be the shared option (do not define it)"
    assert "--json" in opts and opts["--json"].nargs == "?", f"{name}: add --json with _common.add_json_option"
    visible = {s for s, a in opts.items() if a.help != argparse.SUPPRESS}
    assert "--checkpoint" not in visible and "--no-progress" not in visible, f"{name}: use --ckpt / --quiet"
    if "--overwrite" in opts:
        assert isinstance(opts["--overwrite"], argparse._StoreTrueAction)


def test_index_and_cli_page_are_current():
    # Expected: scripts/update_cli_docs.py --check finds nothing stale (the command index that
    # `sdeflow --help` reads, and docs/cli.md's table, equal what the parsers give now).
    import runpy

    update = runpy.run_path(str(ROOT / "scripts" / "update_cli_docs.py"), run_name="not_main")
    assert update["main"](["--check"]) == 0, "run python scripts/update_cli_docs.py"


def test_top_level_help_does_not_import_torch():
    # Expected: `sdeflow --help` lists every command without importing torch (fast start).
    code = "import sys; from sdeflow.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
    for name in COMMANDS:
        assert f"    {name}" in out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(EXAMPLES) - {"evaluate"}))
def test_json_output_parses(name, tmp_path, capsys):
    # Expected: the example exits 0 with --json and stdout is one JSON document, nothing else.
    argv = [name, *_fill(EXAMPLES[name], tmp_path), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report, (dict, list)) and report
    if name == "train":  # evaluate needs a run: the one just trained
        assert main(["evaluate", *_fill(EXAMPLES["evaluate"], tmp_path, tmp_path / "run"), "--json"]) == 0
        assert "sliced_wasserstein2" in json.loads(capsys.readouterr().out)


def test_json_file_and_quiet(tmp_path, capsys):
    # Expected: --json FILE writes the report and still prints the text; --quiet prints nothing.
    out = tmp_path / "r.json"
    assert main(["solvers", "--json", str(out)]) == 0
    assert "orders:" in capsys.readouterr().out and isinstance(json.loads(out.read_text()), list)
    assert main(["solvers", "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_deprecated_spelling_still_works(tmp_path, capsys):
    # Expected: likelihood --checkpoint is --ckpt with a warning on stderr (here: the same one-line error
    # for a missing run as --ckpt gives, exit 2).
    assert main(["likelihood", "--checkpoint", str(tmp_path / "nope"), "--data", "x.npz"]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint is deprecated" in err and "Traceback" not in err


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))


@pytest.mark.slow
def test_piped_to_head_and_interrupted_without_traceback(tmp_path):
    # Expected: every command's output through `head -n 1` and every command stopped by SIGINT ends
    # without a Python traceback; exit codes: 0 or 141 (closed pipe), 0 or 130 (interrupted).
    env = _env()
    run = tmp_path / "trained"
    assert main(["train", *_fill(EXAMPLES["train"], tmp_path), "--quiet"]) == 0
    (tmp_path / "run").rename(run)
    procs = {}
    for name, args in EXAMPLES.items():
        folder = tmp_path / f"pipe-{name}"
        folder.mkdir()
        argv = " ".join(f"'{w}'" for w in [*SDEFLOW, name, *_fill(args, folder, run)])
        procs[name] = subprocess.Popen(["bash", "-c", f"{argv} | head -n 1 >/dev/null; exit ${{PIPESTATUS[0]}}"],
                                       env=env, stderr=subprocess.PIPE, text=True)
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert "Traceback" not in err, f"{name} | head: {err[-3000:]}"
        assert proc.returncode in (0, 141), f"{name} | head exited {proc.returncode}: {err[-2000:]}"
    # SIGINT: a long training (interrupted mid-run: one line, exit 130, a checkpoint to resume from), and
    # every example (interrupted wherever it is after 2 s, importing or working).
    train = subprocess.Popen([*SDEFLOW, "train", "--data", "ring2d", "--steps", "100000", "--width", "16", "--out",
                              str(tmp_path / "long"), "--ckpt-every", "0"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    others = {}
    for name, args in EXAMPLES.items():
        folder = tmp_path / f"int-{name}"
        folder.mkdir()
        others[name] = subprocess.Popen([*SDEFLOW, name, *_fill(args, folder, run)], env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    for proc in others.values():
        proc.send_signal(signal.SIGINT)
    for name, proc in others.items():
        _, err = proc.communicate(timeout=600)
        assert "Traceback" not in err, f"{name} under SIGINT: {err[-3000:]}"
        assert proc.returncode in (0, 130), f"{name} under SIGINT exited {proc.returncode}: {err[-2000:]}"
    deadline = time.time() + 300
    while not list((tmp_path / "long").glob("**/*.safetensors")) and time.time() < deadline:
        if train.poll() is not None:
            break
        time.sleep(0.5)  # the run folder appears when training starts
        if (tmp_path / "long").exists():
            time.sleep(1.0)
            break
    train.send_signal(signal.SIGINT)
    _, err = train.communicate(timeout=300)
    assert train.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert "interrupted" in err and "resume" in err
