"""Every command: no lost file, no traceback. Bad input ends as one line ``sdeflow COMMAND: error: ...``
(naming the argument) and exit code 2, before any work; an existing output is never replaced without
``--overwrite`` (``--resume`` for a training run), and an input never."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import sdeflow.data
from sdeflow.cli import main
from sdeflow.training import resolve_checkpoint

TINY = ["--width", "8", "--depth", "1", "--batch-size", "8", "--warmup", "1", "--quiet", "--ckpt-every", "2",
        "--eval-solver", "euler", "--eval-steps", "2"]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _error(capsys, argv: list[str]) -> str:
    """Run ``sdeflow argv``; it must end with exit code 2 and one error line naming the command (no traceback)."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sdeflow {argv[0]}: error: ") and "Traceback" not in err, err
    return err


@pytest.fixture()
def files(tmp_path, monkeypatch):
    """Inputs: two sample files, a regular file, a folder, a .pt pickle; cwd is tmp_path."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("a.npy", rng.normal(size=(60, 2)).astype("float32"))
    np.save("b.npy", rng.normal(size=(60, 2)).astype("float32"))
    np.savez("d.npz", x=rng.normal(size=(64, 2)).astype("float32"))
    Path("regular").write_text("not a folder")
    Path("folder").mkdir()
    with open("pickle.pt", "wb") as fh:  # a pickled class: torch.load(weights_only=True) refuses it
        pickle.dump({"x": Path}, fh, protocol=2)
    return tmp_path


def _never_load_data(monkeypatch):
    """Fail the test if a command gets as far as loading its data (the output must be refused before)."""
    def boom(*a, **k):
        raise AssertionError("the command loaded its data before checking its output")

    monkeypatch.setattr(sdeflow.data, "get_data", boom)


# --------------------------------------------------------------------------------- unwritable outputs
# (command argv, flag): each command with an output under a regular file, in /proc (not writable even for
# root), and a folder/file where the other is expected. Expected: exit 2, the flag named, nothing written.
OUTPUTS = {
    "sample": (["sample", "--n", "50", "--steps", "2", "--quiet"], "--out"),
    "simulate": (["simulate", "--paths", "10", "--steps", "2"], "--out"),
    "fokker-planck": (["fokker-planck", "--frames", "2", "--cells", "8", "--samples", "10", "--sde-steps", "2", "--quiet"], "--out"),
    "demo": (["demo", "--skip-training", "--n", "10", "--quiet"], "--out"),
    "bench": (["bench", "samplers", "--quick", "--no-peers"], "--out"),
    "train": (["train", "--data", "d.npz", "--steps", "2", *TINY], "--out"),
    "compare": (["compare", "a.npy", "b.npy", "--quiet"], "--json"),
    "likelihood": (["likelihood", "--target", "ring2d", "--n", "4", "--quiet"], "--json"),
}
FILE_OUTPUTS = {"compare", "likelihood"}


@pytest.mark.parametrize("command", sorted(OUTPUTS))
@pytest.mark.parametrize("where", ["under_a_file", "proc", "wrong_kind"])
def test_unwritable_outputs_fail_at_once_with_one_line(files, capsys, monkeypatch, command, where):
    # Before: NotADirectoryError / IsADirectoryError tracebacks (train after its whole training), or
    # "[Errno 2] ..." without the flag's name. Now: exit 2 naming the flag, before the data is loaded.
    argv, flag = OUTPUTS[command]
    is_file = command in FILE_OUTPUTS
    path = {"under_a_file": "regular/out.json" if is_file else "regular/run",
            "proc": "/proc/sdeflow-out.json" if is_file else "/proc/sdeflow-run",
            "wrong_kind": "folder" if is_file else "regular"}[where]
    _never_load_data(monkeypatch)
    before = _snapshot(files)
    err = _error(capsys, [*argv, flag, path])
    assert f"{flag} {path}" in err
    expected = {"under_a_file": "regular is a file, not a folder", "proc": "cannot create files in /proc",
                "wrong_kind": "is a folder; expected a file" if is_file else "is a file"}[where]
    assert expected in err
    assert _snapshot(files) == before


def test_evaluate_output_checks(files, capsys, monkeypatch):
    # evaluate --out is a file: a folder, a path under a file and an existing file (without --overwrite) are
    # refused before the checkpoint is read or sampled.
    for path, message in (("folder", "is a folder"), ("regular/x.json", "regular is a file"),
                          ("regular", "already exists; pass --overwrite")):
        err = _error(capsys, ["evaluate", "--ckpt", "missing", "--json", path])
        assert f"--json {path}" in err and message in err
    assert Path("regular").read_text() == "not a folder"


# --------------------------------------------------------------------------------- no overwrite without asking
def test_train_into_an_existing_run_refuses_and_deletes_nothing(files, capsys, monkeypatch):
    # Expected: a 4-step run (checkpoints 2 and 4); `train --out RUN` again without --resume exits 2 naming
    # --resume and --overwrite, before loading data, and every file of the run is unchanged. Before: it
    # deleted checkpoints of both runs by step number, printed a checkpoint path that no longer existed,
    # and `sample --ckpt` then used the old run's step 4.
    assert main(["train", "--data", "d.npz", "--steps", "4", "--out", "run", *TINY]) == 0
    before = _snapshot(files / "run")
    with monkeypatch.context() as m:
        _never_load_data(m)
        err = _error(capsys, ["train", "--data", "d.npz", "--steps", "2", "--out", "run", *TINY])
    assert "--out run already holds a run (checkpoints up to step 4" in err and "--resume" in err and "--overwrite" in err
    assert _snapshot(files / "run") == before
    # --overwrite replaces it: the printed checkpoint exists and is what `sample --ckpt` resolves to.
    capsys.readouterr()
    assert main(["train", "--data", "d.npz", "--steps", "2", "--out", "run", "--overwrite", *TINY, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert Path(printed["checkpoint"]).is_dir() and resolve_checkpoint("run") == Path(printed["checkpoint"])
    assert sorted(p.name for p in Path("run/checkpoints").iterdir()) == ["step_00000002"]
    err = _error(capsys, ["train", "--data", "d.npz", "--steps", "2", "--out", "run", "--overwrite", "--resume", *TINY])
    assert "give one of them" in err


def test_json_reports_never_replace_a_file_silently_and_never_an_input(files, capsys):
    # Expected: compare --json A (an input) is refused even with --overwrite (before: a.npy became JSON);
    # an existing --json file is refused without --overwrite and replaced with it (compare and likelihood).
    a = Path("a.npy").read_bytes()
    for extra in ([], ["--overwrite"]):
        err = _error(capsys, ["compare", "a.npy", "b.npy", "--quiet", "--json", "a.npy", *extra])
        assert "--json a.npy is also an input" in err
    assert Path("a.npy").read_bytes() == a
    Path("report.json").write_text("keep me")
    for argv in (["compare", "a.npy", "b.npy", "--quiet", "--boot", "2"], ["likelihood", "--target", "ring2d", "--n", "4", "--quiet"]):
        err = _error(capsys, [*argv, "--json", "report.json"])
        assert "--json report.json already exists; pass --overwrite" in err
        assert Path("report.json").read_text() == "keep me"
        assert main([*argv, "--json", "report.json", "--overwrite"]) == 0
        assert isinstance(json.loads(Path("report.json").read_text()), dict)
        Path("report.json").write_text("keep me")


def test_demo_refuses_an_earlier_demo(files, capsys):
    # Expected: demo --out with an earlier demo's files (here the training part's PNGs and metrics) exits 2
    # listing them and changes nothing; --skip-training checks only what it writes.
    Path("demo").mkdir()
    Path("demo/digits_grid.png").write_bytes(b"old png")
    err = _error(capsys, ["demo", "--out", "demo", "--quiet"])
    assert "already holds ['digits_grid.png']" in err and "--overwrite" in err
    assert Path("demo/digits_grid.png").read_bytes() == b"old png"
    Path("demo/exact_score_ring").mkdir()
    err = _error(capsys, ["demo", "--out", "demo", "--quiet", "--skip-training"])
    assert "already holds ['exact_score_ring']" in err


# --------------------------------------------------------------------------------- bad inputs, no tracebacks
def test_a_pt_file_holding_a_pickle_is_refused_by_name(files, capsys):
    # Before: pickle.UnpicklingError traceback. Expected: the flag and the file named, no advice to unpickle.
    for argv, flag in ((["compare", "pickle.pt", "b.npy", "--quiet"], "sample file A"),
                       (["likelihood", "--target", "ring2d", "--data", "pickle.pt", "--quiet"], "--data"),
                       (["train", "--data", "pickle.pt", "--steps", "2", "--out", "run", *TINY], "--data")):
        err = _error(capsys, argv)
        assert f"{flag} pickle.pt holds pickled Python objects" in err and "weights_only=True" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available: the missing-CUDA error cannot happen")
def test_train_on_a_missing_device_fails_before_loading_data(files, capsys, monkeypatch):
    # Before: AssertionError "Torch not compiled with CUDA enabled" traceback after loading the data.
    _never_load_data(monkeypatch)
    err = _error(capsys, ["train", "--data", "d.npz", "--out", "run", "--device", "cuda", *TINY])
    assert "--device 'cuda': CUDA is not available" in err
    err = _error(capsys, ["train", "--data", "d.npz", "--out", "run", "--device", "gpu0", *TINY])
    assert "--device must be a device such as" in err
    assert not Path("run").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        # Before: IndexError (a bond needs the short rate's integral, a CIR state's second coordinate).
        (["--option", "bond", "--model", "gbm"], "--option bond is discounted by the short rate's path, which only --model cir"),
        (["--option", "bond", "--model", "ou"], "only --model cir simulates; got --model ou"),
        # Before: RuntimeError "size mismatch" from the basket product.
        (["--model", "multigbm", "--weights", "0.5"], "--weights needs one weight per asset; model multigbm has 2"),
        # Before: the weights were silently ignored for a single asset.
        (["--model", "gbm", "--weights", "0.5,0.5"], "model gbm has 1"),
        # Before: "could not convert string to float" without the flag.
        (["--model", "multigbm", "--weights", "a,b"], "--weights must be comma-separated numbers"),
        # Before: the message said "solver option".
        (["--param", "sigma"], "--param 'sigma' must look like NAME=VALUE"),
    ],
)
def test_price_input_errors(capsys, argv, message):
    err = _error(capsys, ["price", "--paths", "100", "--steps", "2", "--quiet", *argv])
    assert message in err


def test_price_with_a_zero_standard_error_prints_instead_of_dividing_by_zero(capsys):
    # Expected: a call struck at 1e6 on GBM(s0=100) pays 0 on every path: price 0, standard error 0, closed form
    # ~0; the comparison line says "standard error 0" instead of raising ZeroDivisionError after the price
    # (what `--model heston --param v0=-1` hit before).
    assert main(["price", "--strike", "1e6", "--paths", "200", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "closed form" in out and "(standard error 0)" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "--paths", "10", "--steps", "2", "--T", "inf"], "--T a finite number > 0"),
        (["simulate", "--paths", "10", "--steps", "2", "--plot-paths", "-1"], "--plot-paths must be >= 0"),
        (["fokker-planck", "--process-option", "beta_max"], "--process-option 'beta_max' must look like NAME=VALUE"),
        (["likelihood", "--target", "ring2d", "--target-option", "std"], "--target-option 'std' must look like NAME=VALUE"),
        (["bench", "samplers", "--threads", "0"], "--threads must be a positive integer"),
    ],
)
def test_other_argument_errors_name_the_flag(files, capsys, argv, message):
    err = _error(capsys, argv)
    assert message in err


def test_sample_refuses_a_crafted_checkpoint_config(files, capsys):
    # Expected: a checkpoint whose config.json claims an MLP of width 200,000 and depth 20 (160 GB) is refused
    # in milliseconds, naming config.json; before, `sample --ckpt` allocated the network before reading a weight.
    assert main(["train", "--data", "d.npz", "--steps", "2", "--out", "run", *TINY]) == 0
    folder = resolve_checkpoint("run")
    config = json.loads((folder / "config.json").read_text())
    config["model"]["net"]["config"].update(width=200_000, depth=20)
    (folder / "config.json").write_text(json.dumps(config))
    err = _error(capsys, ["sample", "--ckpt", "run", "--n", "4", "--steps", "2", "--out", "s", "--quiet"])
    assert f"{folder / 'config.json'}" in err and "refusing to build it" in err


# --------------------------------------------------------------------------------- the top-level handler
def test_out_of_memory_is_a_user_error_and_other_runtime_errors_keep_their_traceback(capsys, monkeypatch):
    # Expected: torch's CPU allocation failure (what `sample --n 100000000000` or `fokker-planck --cells
    # 1000000` raise: 745 GiB / 7.3 TiB) becomes one line naming the size and the flags to lower, exit 2;
    # any other RuntimeError is a bug and must propagate with its traceback, not be swallowed as exit 2.
    import sdeflow.cli.solvers as solvers_cli

    def oom(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 800000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(solvers_cli, "run", oom)
    err = _error(capsys, ["solvers"])
    assert "not enough memory (745 GiB in one piece)" in err and "--n" in err

    def bug(args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(solvers_cli, "run", bug)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        main(["solvers"])


def test_likelihood_of_a_checkpoint_on_data_of_another_shape(files, capsys):
    # Before: RuntimeError "size of tensor a (3) must match ... (2)" from the normalization. Expected: exit 2
    # naming --data, its item shape (3,) and the model's (2,).
    assert main(["train", "--data", "d.npz", "--steps", "2", "--out", "run", *TINY]) == 0
    np.save("x3.npy", np.zeros((10, 3), dtype="float32"))
    err = _error(capsys, ["likelihood", "--ckpt", "run", "--data", "x3.npy", "--quiet"])
    assert "--data x3.npy holds items of shape (3,); the checkpoint's model takes (2,)" in err
    # A damaged config.json (a list) is one line too (before: AttributeError in `sample --ckpt`).
    (resolve_checkpoint("run") / "config.json").write_text("[1, 2]")
    err = _error(capsys, ["sample", "--ckpt", "run", "--n", "4", "--out", "s", "--quiet"])
    assert "config.json: expected a JSON object; got list" in err


def test_sample_takes_target_options(files):
    # Expected: `--target gaussian` (listed in --help) needs mean and std; before, sample had no way to give
    # them. A comma list of numbers is a list: mean=0,0 is the 2-D origin, and the samples have 2 columns.
    assert main(["sample", "--target", "gaussian", "--target-option", "mean=0,0", "--target-option", "std=1",
                 "--n", "50", "--steps", "3", "--floor-boot", "2", "--out", "g", "--quiet"]) == 0
    assert np.load("g/samples.npz")["samples"].shape == (50, 2)
