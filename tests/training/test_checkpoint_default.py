"""TrainConfig saves checkpoints by default when there is a run folder, as `sdeflow train` does."""

import pytest

from sdeflow.data import sample_toy
from sdeflow.nn import MLP
from sdeflow.training import DiffusionModel, FlowMatching, TrainConfig, Trainer
from sdeflow.training.trainer import DEFAULT_CKPT_EVERY


def _trainer(out_dir, config):
    objective = FlowMatching()
    model = DiffusionModel(MLP((2,), 8, 1, seed=0), objective.process, "velocity")
    return Trainer(model, objective, sample_toy("moons", 64, seed=0), config=config, out_dir=out_dir)


def test_default_config_checkpoints_every_500_steps_with_a_run_folder(tmp_path):
    # Expected: 500 (the CLI's --ckpt-every) with an out_dir, so a killed run loses at most 500 steps; 0
    # without one (nothing is written); an explicit value is kept, and one without a folder is refused.
    assert DEFAULT_CKPT_EVERY == 500
    assert TrainConfig().ckpt_every is None
    assert _trainer(tmp_path / "run", TrainConfig()).config.ckpt_every == 500
    assert _trainer(None, TrainConfig()).config.ckpt_every == 0
    assert _trainer(tmp_path / "run2", TrainConfig(ckpt_every=7)).config.ckpt_every == 7
    with pytest.raises(ValueError, match="ckpt_every > 0 needs an out_dir"):
        _trainer(None, TrainConfig(ckpt_every=5))
