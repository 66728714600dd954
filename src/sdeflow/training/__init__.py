"""Training score and flow models: objectives, couplings, time samplers, the trainer, checkpoints.

The shortest path from data to samples::

    from sdeflow.training import DiffusionModel, FlowMatching, Trainer, TrainConfig
    from sdeflow.nn import MLP
    from sdeflow.data import sample_toy

    data = sample_toy("moons", 20_000)
    objective = FlowMatching(coupling="exact")                       # OT-CFM on the linear path
    model = DiffusionModel(MLP((2,)), objective.process, "velocity")
    result = Trainer(model, objective, data, config=TrainConfig(steps=2000)).fit()
    samples = sdeflow.sample(result.ema_model, objective.process, noise, solver="heun", steps=20)
"""

from .checkpoint import (
    Checkpoint,
    check_config_against_weights,
    check_run_dir,
    clear_run,
    load_checkpoint_model,
    process_from_config,
    read_checkpoint,
    resolve_checkpoint,
    sample_checkpoint,
    save_checkpoint,
)
from .couplings import COUPLINGS, Coupling, ExactOTCoupling, IndependentCoupling, SinkhornCoupling, get_coupling
from .ema import EMA
from .evaluation import DigitsEvaluator, VectorEvaluator, digits_scores, draw_samples
from .model import DiffusionModel, GuidedModel
from .objectives import OBJECTIVES, DenoisingScoreMatching, FlowMatching, LossOutput, Objective, build_objective
from .time_samplers import TIME_SAMPLERS, LogNormalTime, LogSNRTime, TimeSampler, UniformTime, get_time_sampler
from .trainer import TrainConfig, Trainer, TrainResult, check_device, lr_at
from .weighting import (
    WEIGHTINGS,
    EDMWeighting,
    LikelihoodWeighting,
    MinSNR,
    SNRWeighting,
    Uniform,
    Weighting,
    eps_error_scale2,
    get_weighting,
)

__all__ = [
    "Checkpoint",
    "check_config_against_weights",
    "check_run_dir",
    "clear_run",
    "load_checkpoint_model",
    "process_from_config",
    "read_checkpoint",
    "resolve_checkpoint",
    "sample_checkpoint",
    "save_checkpoint",
    "COUPLINGS",
    "Coupling",
    "ExactOTCoupling",
    "IndependentCoupling",
    "SinkhornCoupling",
    "get_coupling",
    "EMA",
    "DigitsEvaluator",
    "VectorEvaluator",
    "digits_scores",
    "draw_samples",
    "DiffusionModel",
    "GuidedModel",
    "OBJECTIVES",
    "DenoisingScoreMatching",
    "FlowMatching",
    "LossOutput",
    "Objective",
    "build_objective",
    "TIME_SAMPLERS",
    "LogNormalTime",
    "LogSNRTime",
    "TimeSampler",
    "UniformTime",
    "get_time_sampler",
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "lr_at",
    "check_device",
    "WEIGHTINGS",
    "EDMWeighting",
    "LikelihoodWeighting",
    "MinSNR",
    "SNRWeighting",
    "Uniform",
    "Weighting",
    "eps_error_scale2",
    "get_weighting",
]
