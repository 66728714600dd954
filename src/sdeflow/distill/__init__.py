"""Few-step generation: consistency models (CD, CT, ECT) and progressive distillation.

A consistency function (:class:`ConsistencyFunction`) is a model kind with its boundary
parameterization on any process; the ``consistency`` solver samples it in one or a few calls::

    import sdeflow
    from sdeflow.distill import ConsistencyDistillation, ConsistencyFunction
    from sdeflow.training import DiffusionModel, Trainer, TrainConfig

    objective = ConsistencyDistillation(teacher, process, "x0")       # teacher: any sdeflow model
    student = DiffusionModel(net, process, precond="edm")
    result = Trainer(student, objective, data, config=TrainConfig(ema_decay=0.95)).fit()
    f = objective.wrap(result.ema_model)
    x = sdeflow.sample(f, process, noise, solver="consistency", nfe=2, seed=0).samples
"""

from .consistency import (
    DISTANCES,
    ConsistencyFunction,
    consistency_coefficients,
    default_s_max,
    get_distance,
    is_consistency_model,
    pseudo_huber,
    squared_l2,
)
from .objectives import (
    ConsistencyDistillation,
    ConsistencyObjective,
    ConsistencyTraining,
    EasyConsistencyTuning,
    ProgressiveDistillation,
    check_teacher,
    ict_levels,
    karras_levels,
)
from .progressive import PDRound, progressive_distillation

__all__ = [
    "DISTANCES",
    "ConsistencyFunction",
    "consistency_coefficients",
    "default_s_max",
    "get_distance",
    "is_consistency_model",
    "pseudo_huber",
    "squared_l2",
    "ConsistencyDistillation",
    "ConsistencyObjective",
    "ConsistencyTraining",
    "EasyConsistencyTuning",
    "ProgressiveDistillation",
    "check_teacher",
    "ict_levels",
    "karras_levels",
    "PDRound",
    "progressive_distillation",
]
