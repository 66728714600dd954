"""A run folder belongs to one run: no lost checkpoints, no silent mix of two runs, kills leave it loadable,
and a checkpoint's config cannot make loading allocate more than its weights file holds."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import sdeflow.training.model as model_module
from sdeflow.nn import MLP
from sdeflow.training import (
    DiffusionModel,
    FlowMatching,
    TrainConfig,
    Trainer,
    check_device,
    check_run_dir,
    load_checkpoint_model,
    read_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)

from .test_trainer import _trainer


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (what 'deletes nothing, changes nothing' compares)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------ one run per folder
def test_a_new_run_into_an_existing_run_folder_is_refused_and_deletes_nothing(tmp_path):
    # Expected: a 4-step run leaves step_2 and step_4; a second, fresh run into the same folder raises
    # FileExistsError naming the resume/overwrite choice *before* training, and every file of the first run
    # is still there byte for byte. Before the fix the second run pruned the first run's checkpoints by step
    # number, deleting its own new step_2 and leaving the old step_4 as "the" checkpoint.
    _trainer(tmp_path, steps=4, ckpt_every=2).fit()
    before = _snapshot(tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000002", "step_00000004"]
    with pytest.raises(FileExistsError, match="already holds a run.*step 4.*resume=True.*overwrite=True"):
        _trainer(tmp_path, steps=2).fit()
    with pytest.raises(FileExistsError, match="already holds a run"):
        check_run_dir(tmp_path)
    assert _snapshot(tmp_path) == before


def test_overwrite_replaces_the_old_run_and_the_reported_checkpoint_is_the_new_one(tmp_path):
    # Expected: with overwrite=True the old run's checkpoints (steps 2, 4) are gone, the folder holds only the
    # new 3-step run, result.checkpoint exists and is what the folder resolves to (the new run's step 3).
    _trainer(tmp_path, steps=4, ckpt_every=2).fit()
    (tmp_path / "notes.txt").write_text("mine")  # not a run file: left alone
    result = _trainer(tmp_path, steps=3, seed=1).fit(overwrite=True)
    assert result.checkpoint is not None and result.checkpoint.is_dir()
    assert resolve_checkpoint(tmp_path) == result.checkpoint
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000003"]
    assert read_checkpoint(tmp_path).config["train"]["seed"] == 1
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_run_folder_that_is_a_file_fails_before_training(tmp_path):
    # Expected: ValueError naming the file at once (before: NotADirectoryError after training), for the
    # folder itself and for a folder below a file.
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        _trainer(file, steps=2).fit()
    with pytest.raises(ValueError, match="is a file, not a folder"):
        _trainer(file / "run", steps=2).fit()
    assert file.read_text() == "x"


def test_pruning_never_deletes_the_checkpoint_just_written(tmp_path):
    # Expected: with checkpoints of steps 10 and 20 already in the folder (another run's), saving steps 5, 6, 7
    # with keep=2 keeps each new save; only this run's older ones are pruned (step 5 after step 7 is saved).
    # Before the fix keep-last pruning compared steps across runs and deleted step 5 as soon as it was written.
    net = MLP((2,), 4, 1)

    def save(step):
        return save_checkpoint(tmp_path, step=step, model=net, ema_model=None, optimizer=None, config={},
                               metrics={}, state={}, keep=2)

    for step in (10, 20):
        save(step)
    for step in (5, 6):
        assert save(step).is_dir()
    assert save(7).is_dir()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_00000006", "step_00000007", "step_00000010", "step_00000020"]


# ------------------------------------------------------------------------------------ devices
def test_device_is_checked_before_training(tmp_path):
    # Expected: a malformed device is a ValueError naming the argument; an absent CUDA fails at the start of
    # fit with a ValueError (before: AssertionError "Torch not compiled with CUDA enabled") and writes nothing.
    with pytest.raises(ValueError, match="device must be a device such as"):
        TrainConfig(device="nope")
    with pytest.raises(ValueError, match="--device must be a cpu, cuda or mps device"):
        check_device("meta", "--device")
    assert check_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the missing-CUDA path cannot be exercised")
    trainer = _trainer(tmp_path / "run", steps=2)
    trainer.config.device = "cuda"
    with pytest.raises(ValueError, match="CUDA is not available"):
        trainer.fit()
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------ config vs weights
def _craft(folder: Path, **net_config) -> Path:
    """A copy of checkpoint ``folder`` whose config.json claims other network sizes."""
    crafted = folder.parent / "crafted"
    shutil.copytree(folder, crafted)
    config = json.loads((crafted / "config.json").read_text())
    config["model"]["net"]["config"].update(net_config)
    (crafted / "config.json").write_text(json.dumps(config))
    return crafted


def test_a_crafted_config_is_refused_before_any_network_is_allocated(tmp_path, monkeypatch):
    # Expected: a config claiming an MLP of width 200,000 and depth 20 (160 GB of float32 weights) for a
    # width-32 weights file is refused with a ValueError naming config.json and the first differing shape, and
    # the network it describes is only ever built on the meta device (no memory); the spy fails the test if a
    # build happens on a real device, which is what happened before the fix.
    _trainer(tmp_path / "run", steps=2).fit()
    folder = resolve_checkpoint(tmp_path / "run")
    crafted = _craft(folder, width=200_000, depth=20)
    devices = []
    real_build = model_module.build_net

    def spy(kind, config):
        devices.append(torch.get_default_device().type)
        if devices[-1] != "meta" and config.get("width") == 200_000:
            raise AssertionError("the crafted network was built on a real device")
        return real_build(kind, config)

    monkeypatch.setattr(model_module, "build_net", spy)
    tic = time.perf_counter()
    with pytest.raises(ValueError, match=r"config.json.*(more than \d+ tensors|shapes differ)"):
        load_checkpoint_model(crafted)
    assert time.perf_counter() - tic < 5.0
    assert devices and set(devices) == {"meta"}
    # Same depth, other width: the shape comparison names the tensor, both shapes and the file.
    shutil.rmtree(crafted)
    crafted = _craft(folder, width=64)
    with pytest.raises(ValueError, match=r"ema\.safetensors holds \(shapes differ: \S+ \[64.*\] in config\.json, \[32.*\] stored"):
        load_checkpoint_model(crafted)
    # A depth of a billion blocks would take hours to build even on the meta device: cut off by the tensor count.
    shutil.rmtree(crafted)
    crafted = _craft(folder, depth=10**9)
    tic = time.perf_counter()
    with pytest.raises(ValueError, match="more than .* tensors"):
        load_checkpoint_model(crafted)
    assert time.perf_counter() - tic < 5.0
    # The genuine checkpoint still loads.
    monkeypatch.setattr(model_module, "build_net", real_build)
    load_checkpoint_model(folder)


def test_a_config_whose_data_shape_disagrees_with_the_network_is_refused(tmp_path):
    # Expected: the sampler allocates (n, *data.event_shape); an event_shape of [100000, 100000] for a 2-D MLP
    # is refused before sampling, as a damaged checkpoint.
    _trainer(tmp_path / "run", steps=2).fit()
    folder = resolve_checkpoint(tmp_path / "run")
    config = json.loads((folder / "config.json").read_text())
    config["data"]["event_shape"] = [100_000, 100_000]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"event_shape \[100000, 100000\] differs from the network's \[2\]"):
        load_checkpoint_model(folder)
    config["data"]["event_shape"] = [2]
    config["process"] = {"config": {}}  # no name
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="process configuration is malformed"):
        load_checkpoint_model(folder)


# ------------------------------------------------------------------------------------ SIGKILL
KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import sdeflow.training.checkpoint as ck
    from training.test_trainer import _trainer

    mode = {mode!r}
    if mode == "mid-write":
        real = ck._write_bytes
        calls = {{"n": 0}}

        def killed(path, data):
            # The third checkpoint's weights file is half written when SIGKILL arrives: no handler, no cleanup.
            if path.name == "model.safetensors":
                calls["n"] += 1
                if calls["n"] == 3:
                    with open(path, "wb") as fh:
                        fh.write(data[: len(data) // 2])
                        fh.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
            real(path, data)

        ck._write_bytes = killed
    print("started", flush=True)
    _trainer({out!r}, steps=100000, ckpt_every=1).fit()
    """
)


def _spawn(out: Path, mode: str) -> subprocess.Popen:
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parents[1]), out=str(out), mode=mode)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _resumes_exactly(out: Path, tmp_path: Path) -> None:
    """The folder loads, and resuming it for 3 more steps gives the weights of a clean run of as many steps."""
    ckpt = read_checkpoint(out)
    load_checkpoint_model(out)
    load_checkpoint_model(out, ema=False)
    target = ckpt.step + 3
    resumed = _trainer(out, steps=target, ckpt_every=1).fit(resume=True)
    clean = _trainer(tmp_path / "clean", steps=target).fit()
    assert resumed.step == target
    for a, b in zip(resumed.model.net.state_dict().values(), clean.model.net.state_dict().values()):
        assert torch.equal(a, b)
    assert not any(p.name.startswith(".tmp-") for p in (out / "checkpoints").iterdir())


@pytest.mark.slow
def test_sigkill_mid_write_leaves_a_loadable_run_that_resumes_exactly(tmp_path):
    # Expected: the process is SIGKILLed (return code -9) half-way through writing checkpoint 3; the run folder
    # resolves to the complete step-2 checkpoint (the half-written one stays a hidden temporary folder), it loads,
    # and resuming it to step 5 gives bit for bit the weights of an uninterrupted 5-step run.
    out = tmp_path / "run"
    proc = _spawn(out, "mid-write")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    assert any(p.name.startswith(".tmp-") for p in (out / "checkpoints").iterdir())
    assert read_checkpoint(out).step == 2
    _resumes_exactly(out, tmp_path)


@pytest.mark.slow
def test_sigkill_at_an_arbitrary_moment_of_a_run_leaves_a_loadable_run(tmp_path):
    # Expected: a run writing a checkpoint every step is SIGKILLed from outside once a few checkpoints exist
    # (wherever it is: in a step, writing, renaming or pruning); the folder still loads its newest complete
    # checkpoint and resumes exactly.
    out = tmp_path / "run"
    proc = _spawn(out, "outside")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            # Names only: the writer may be renaming or pruning folders while we look.
            steps = [int(p.name[5:13]) for p in (out / "checkpoints").glob("step_*")] if (out / "checkpoints").is_dir() else []
            if steps and max(steps) >= 4:
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the training subprocess wrote no checkpoint of step 4 in 90 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    _resumes_exactly(out, tmp_path)


@pytest.mark.parametrize(
    "file, text, message",
    [
        ("config.json", "[1, 2]", "config.json: expected a JSON object; got list"),
        ("config.json", '{"process": {}, "model": {}}', "expected an object under 'data'"),
        ("state.json", "{}", "state.json: expected an object with an integer 'step' >= 0"),
    ],
)
def test_a_damaged_checkpoint_json_is_a_value_error(tmp_path, file, text, message):
    # Expected: read_checkpoint checks the layout training writes, so evaluate/sample/likelihood fail with a
    # ValueError naming the file (before: AttributeError / KeyError 'step' / KeyError 'data' tracebacks).
    _trainer(tmp_path, steps=2).fit()
    (resolve_checkpoint(tmp_path) / file).write_text(text)
    with pytest.raises(ValueError, match=message):
        read_checkpoint(tmp_path)
