"""Consistency distillation, consistency training (improved CT), easy consistency tuning, progressive distillation.

Every objective here is a :class:`~sdeflow.training.Objective`, so the :class:`~sdeflow.training.Trainer`
runs it with its optimizer, EMA, checkpoints and exact resume. The student is an ordinary
:class:`~sdeflow.training.DiffusionModel` (the *backbone*); the consistency objectives wrap it in a
:class:`~sdeflow.distill.ConsistencyFunction` with the boundary parameterization, and the trained
model is sampled through :func:`~sdeflow.distill.consistency_model` and the ``consistency`` solver.

Noise levels ``s = sigma/alpha`` are the EDM levels on every process; a discretization of ``N``
levels is Karras et al.'s (``rho = 7``) from ``s_min = s(t_min)`` to ``s_max = min(s(T), 80)``:
``s_i = (s_min^(1/rho) + (i-1)/(N-1) (s_max^(1/rho) - s_min^(1/rho)))^rho``, ``i = 1..N``, and
``t_i = t(s_i)`` (``t_1 = t_min`` exactly).

* :class:`ConsistencyDistillation` (Song et al. 2023, Algorithm 2): ``n ~ U{1..N-1}``,
  ``x_{n+1} = alpha x0 + sigma eps`` at ``t_{n+1}``, ``x_hat_n`` one step of the teacher's
  probability-flow ODE from ``t_{n+1}`` to ``t_n`` with any deterministic solver of the suite (Heun by
  default), and ``L = lambda d(f_theta(x_{n+1}, t_{n+1}), f_theta-(x_hat_n, t_n))`` with the target
  ``theta-`` the trainer's EMA (``ema_target=True``, the CD paper's ``mu``, set by
  ``TrainConfig.ema_decay``) or the online weights without gradient.
* :class:`ConsistencyTraining` (Song et al. 2023, Algorithm 3, with the improved recipe of Song &
  Dhariwal 2024): ``x_n`` and ``x_{n+1}`` share one ``(x0, eps)``; options ``curriculum="ict"``
  (``N(k) = min(s0 2^floor(k/K'), s1) + 1``, ``K' = floor(K / (log2(s1/s0) + 1))``, their eq. 11),
  ``level_sampling="lognormal"`` (``p(n) ~ erf((ln s_{n+1} - P_mean)/(sqrt2 P_std)) - erf((ln s_n - P_mean)/(sqrt2 P_std))``),
  ``weighting="ict"`` (``lambda = 1/(s_{n+1} - s_n)``), ``distance="pseudo_huber"`` and no EMA target.
* :class:`EasyConsistencyTuning` (Geng et al. 2024): continuous levels, ``s ~ lognormal(P_mean, P_std)``,
  ``r = s (1 - n(s)/q^a)`` with ``n(s) = 1 + k sigmoid(-b s)``, ``a = ceil(i/d)`` the stage of
  iteration ``i = step + 1`` (so ``a = 1`` from the first step, as in the paper; ``r`` clamped to
  ``s_min``, where the target is the data's own noised point), weight ``1/(s - r)``; started from a
  trained diffusion model's weights.

Dropout: the target pass of a pair re-uses the online pass's dropout masks (the global generator's
state, which the trainer seeds per step, is restored between the two passes), as in the ECT and
improved-CT recipes: with independent masks the target would differ from the online output by the
dropout noise even at ``r = s``, and the loss would pull the two masks' outputs together instead of
the two levels'.
* :class:`ProgressiveDistillation` (Salimans & Ho 2022, Algorithm 2): on a grid of ``N`` steps
  (``N`` even) the student's one DDIM step from ``t = ts[2j]`` to ``t'' = ts[2j+2]`` regresses the
  teacher's two DDIM steps through ``t' = ts[2j+1]``: the target
  ``x_tilde = (x_t'' - (sigma''/sigma) x_t) / (alpha'' - (sigma''/sigma) alpha)``, weight
  ``max(alpha^2/sigma^2, 1)`` on the ``x0`` error ("truncated SNR").
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .._utils import as_time, check_int, check_positive, expand_to
from ..models.denoiser import Denoiser
from ..models.parameterization import to_x0_eps
from ..processes.base import DiffusionProcess
from ..sdes.diffusion import ReverseDiffusionSDE
from ..training.objectives import LossOutput, Objective
from .consistency import ConsistencyFunction, default_s_max, get_distance

__all__ = [
    "ConsistencyObjective",
    "ConsistencyDistillation",
    "ConsistencyTraining",
    "EasyConsistencyTuning",
    "ProgressiveDistillation",
    "karras_levels",
    "ict_levels",
    "check_teacher",
]


def karras_levels(s_min: float, s_max: float, n: int, rho: float = 7.0) -> torch.Tensor:
    """``n >= 2`` increasing float64 noise levels from ``s_min`` to ``s_max`` (Karras et al. 2022, eq. 5)."""
    check_int(n, "n", minimum=2)
    if not 0 < s_min < s_max:
        raise ValueError(f"noise levels need 0 < s_min < s_max; got s_min={s_min}, s_max={s_max}")
    u = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    inv = 1.0 / rho
    out = (s_min**inv + u * (s_max**inv - s_min**inv)) ** rho
    out[0], out[-1] = s_min, s_max
    return out


def ict_levels(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """The improved-CT discretization curriculum (Song & Dhariwal 2024, eq. 11): levels at step ``step``.

    ``N(k) = min(s0 2^floor(k / K'), s1) + 1`` with ``K' = floor(K / (log2(s1/s0) + 1))``.
    """
    k_prime = max(1, math.floor(total_steps / (math.log2(s1 / s0) + 1)))
    return min(s0 * 2 ** (step // k_prime), s1) + 1


def check_teacher(teacher: object, process: DiffusionProcess, name: str = "teacher") -> str:
    """A teacher must be a model with ``prediction`` and ``process``, the process the student's; returns its kind."""
    if not callable(teacher):
        raise TypeError(f"{name} must be a model callable as {name}(x, t); got {type(teacher).__name__}")
    kind = getattr(teacher, "prediction", None)
    other = getattr(teacher, "process", None)
    if kind is None or not isinstance(other, DiffusionProcess):
        raise TypeError(
            f"{name} must carry its prediction kind and process (a DiffusionModel, a checkpoint's model or "
            f"GaussianMixture.model(process, prediction)); got {type(teacher).__name__}"
        )
    if other is not process and (type(other) is not type(process) or other.config() != process.config()):
        raise ValueError(
            f"the {name}'s process {other!r} differs from the student's {process!r}: distillation follows the "
            f"{name}'s probability-flow ODE, so the student must use the same process"
        )
    return kind


class ConsistencyObjective(Objective):
    """Shared part of the consistency objectives: the wrapper, the levels, the distance, the target network.

    Args:
        process: the process (an object or a name).
        prediction: the backbone's prediction kind.
        sigma_data: ``sd`` of the boundary parameterization.
        t_min: the boundary time (default ``process.t_min``).
        s_max: the top noise level (default ``min(s(T), 80)``).
        distance: ``"l2"`` (mean squared) or ``"pseudo_huber"``.
        huber_c: the pseudo-Huber ``c`` (default ``0.00054 sqrt(D)``).
        ema_target: the target network is the trainer's EMA (``True``) or the online weights without
            gradient (``False``, improved CT's choice).
    """

    name = "consistency"

    def __init__(self, process, prediction: str, *, sigma_data: float = 0.5, t_min: float | None = None,
                 s_max: float | None = None, distance: str = "l2", huber_c: float | None = None,
                 ema_target: bool = False) -> None:
        super().__init__(process, prediction)
        self.sigma_data = check_positive(sigma_data, "sigma_data")
        self.t_min = float(self.process.t_min if t_min is None else t_min)
        if not 0.0 < self.t_min < float(self.process.T):
            raise ValueError(f"t_min must lie in (0, T) = (0, {self.process.T}); got {self.t_min}")
        self.s_min = float(self.process.noise_level(self.t_min))
        self.s_max = float(default_s_max(self.process) if s_max is None else s_max)
        if not self.s_max > self.s_min:
            raise ValueError(f"s_max must exceed the noise level at t_min, {self.s_min:.6g}; got {self.s_max}")
        self.distance_name = distance
        self.distance = get_distance(distance)
        self.huber_c = None if huber_c is None else check_positive(huber_c, "huber_c")
        if not isinstance(ema_target, bool):
            raise TypeError(f"ema_target must be True or False; got {ema_target!r}")
        self.ema_target = ema_target

    def wrap(self, model: Callable[..., torch.Tensor]) -> ConsistencyFunction:
        """The consistency function on ``model`` (the backbone) with this objective's boundary."""
        return ConsistencyFunction(model, self.process, prediction=self.prediction, sigma_data=self.sigma_data, t_min=self.t_min)

    def training_inputs(self, step: int, ema_model) -> dict[str, Any]:
        """What the trainer passes to :meth:`loss` besides the batch: the step and the target network."""
        return {"step": step, "target_model": ema_model if self.ema_target else None}

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name, "prediction": self.prediction, "sigma_data": self.sigma_data, "t_min": self.t_min,
            "s_max": self.s_max, "distance": self.distance_name, "huber_c": self.huber_c, "ema_target": self.ema_target,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(process={self.process!r}, prediction={self.prediction!r}, distance={self.distance_name!r})"

    # -------------------------------------------------------------- shared steps
    def _times(self, levels: torch.Tensor) -> torch.Tensor:
        ts = self.process.t_from_noise_level(levels)
        ts[0] = self.t_min  # exactly the boundary
        return ts

    def _check_batch(self, x0: torch.Tensor, generator, labels) -> None:
        from .._utils import check_state

        check_state(x0, "x0")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator (sdeflow never uses the global one); got {type(generator).__name__}")
        if labels is not None:
            raise ValueError("the consistency objectives train unconditional models; give no labels (an unconditional network)")

    def _noise(self, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=generator.device).to(x0.device)

    def _pair_loss(self, model, target_model, x_hi, t_hi, x_lo, t_lo, weight) -> LossOutput:
        """``weight d(f_theta(x_hi, t_hi), f_theta-(x_lo, t_lo))`` per sample; the target without gradient.

        Both passes draw the same dropout masks (see the module docstring).
        """
        cuda = x_hi.device.type == "cuda"
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state(x_hi.device) if cuda else None
        online = self.wrap(model)(x_hi, t_hi)
        torch.set_rng_state(cpu_state)
        if cuda:
            torch.cuda.set_rng_state(cuda_state, x_hi.device)
        with torch.no_grad():
            target = self.wrap(target_model if target_model is not None else model)(x_lo, t_lo)
        per = self.distance(online - target.detach(), self.huber_c) * weight.to(x_hi.dtype)
        return LossOutput(per.mean(), per, t_hi)


class ConsistencyDistillation(ConsistencyObjective):
    """Consistency distillation from a teacher's probability-flow ODE (see the module docstring).

    Args:
        teacher: a model with ``prediction`` and ``process`` (a trained model, or an exact
            ``GaussianMixture.model(process, kind)``); its process must be the student's.
        process, prediction: the student's.
        levels: ``N``, the discretization (18 in the CD paper).
        rho: of the Karras levels.
        solver: the deterministic solver of the teacher's ODE step (a name or a solver; Heun by default).
        weighting: ``"uniform"`` (``lambda = 1``, the CD paper) or ``"ict"`` (``1/(s_{n+1} - s_n)``).
        ema_target: default ``True`` (the CD paper's target network, ``mu = TrainConfig.ema_decay``).
        teacher_path: where the teacher came from (stored in the config; for a checkpoint's resume).

    The other arguments are those of :class:`ConsistencyObjective`.
    """

    name = "cd"

    def __init__(self, teacher, process, prediction: str = "x0", *, levels: int = 18, rho: float = 7.0,
                 solver: str | Any = "heun", weighting: str = "uniform", ema_target: bool = True,
                 teacher_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(process, prediction, ema_target=ema_target, **kwargs)
        from ..solvers import get as get_solver

        self.teacher_prediction = check_teacher(teacher, self.process)
        self.teacher = teacher
        self.teacher_path = teacher_path
        self.levels = check_int(levels, "levels", minimum=2)
        self.rho = check_positive(rho, "rho")
        self.solver = get_solver(solver)
        if self.solver.stochastic or getattr(self.solver, "adaptive", False) or self.solver.name == "consistency":
            raise ValueError(
                f"the teacher's ODE step needs a deterministic fixed-step solver (heun, euler, ddim, dpm_solver, ...); "
                f"got {self.solver.name!r}"
            )
        if weighting not in ("uniform", "ict"):
            raise ValueError(f"weighting must be 'uniform' or 'ict'; got {weighting!r}")
        self.weighting_name = weighting
        self.s_levels = karras_levels(self.s_min, self.s_max, self.levels, self.rho)
        self.t_levels = self._times(self.s_levels)
        self._problem = ReverseDiffusionSDE(Denoiser(teacher, self.process, self.teacher_prediction, check_finite=False), 0.0)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "levels": self.levels, "rho": self.rho, "solver": self.solver.name,
                "solver_options": self.solver.options(), "weighting": self.weighting_name, "teacher": self.teacher_path}

    @torch.no_grad()
    def teacher_step(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """One teacher ODE step of each sample from ``t_{n+1}`` to ``t_n`` (``n`` 0-based, ``(batch,)``).

        Euler and Heun (``x + h (d0 + d1)/2``, ``d1`` at the Euler point; every ``t_n > 0``, so Heun
        never falls back to Euler here) are taken for the whole batch at once with per-sample step
        sizes (2 teacher calls per batch); any other solver runs its own ``step`` once per level present.
        """
        if self.solver.name in ("euler", "heun"):
            t0, t1 = self.t_levels[n + 1].to(x.device), self.t_levels[n].to(x.device)
            h = expand_to(t1 - t0, x)
            d0 = self._problem.drift(t0, x)
            x_euler = x + h * d0
            if self.solver.name == "euler":
                return x_euler
            return x + 0.5 * h * (d0 + self._problem.drift(t1, x_euler))
        out = torch.empty_like(x)
        for level in torch.unique(n).tolist():
            mask = n == level
            t0, t1 = float(self.t_levels[level + 1]), float(self.t_levels[level])
            sub = x[mask]
            state = self.solver.init(self._problem, [t0, t1], sub)
            out[mask] = self.solver.step(self._problem, t0, t1, sub, state, None).x.to(x.dtype)
        return out

    def loss(self, model, x0, *, generator, labels=None, step: int = 0, target_model=None) -> LossOutput:
        self._check_batch(x0, generator, labels)
        n = torch.randint(0, self.levels - 1, (x0.shape[0],), generator=generator, device=generator.device).cpu()
        t_hi, t_lo = self.t_levels[n + 1], self.t_levels[n]
        x_hi = self.process.marginal(x0, t_hi.to(x0.device), self._noise(x0, generator))
        x_lo = self.teacher_step(x_hi, n)
        if self.weighting_name == "ict":
            weight = 1.0 / (self.s_levels[n + 1] - self.s_levels[n])
        else:
            weight = torch.ones_like(t_hi)
        return self._pair_loss(model, target_model, x_hi, t_hi.to(x0.device), x_lo, t_lo.to(x0.device), weight.to(x0.device))


class ConsistencyTraining(ConsistencyObjective):
    """Consistency training from data alone, with the improved-CT options (see the module docstring).

    Args:
        curriculum: ``"ict"`` (the doubling curriculum, needs ``total_steps``) or ``"fixed"`` (``levels``).
        levels: ``N`` of the fixed curriculum.
        s0, s1: the improved-CT curriculum's initial and final discretization (10 and 1280).
        total_steps: ``K``, the run's length (the curriculum's time axis).
        level_sampling: ``"lognormal"`` (improved CT, ``p_mean = -1.1``, ``p_std = 2.0``) or ``"uniform"``.
        weighting: ``"ict"`` (``1/(s_{n+1} - s_n)``) or ``"uniform"``.
        distance: default ``"pseudo_huber"``; ``ema_target`` default ``False`` (improved CT).
    """

    name = "ct"

    def __init__(self, process, prediction: str = "x0", *, curriculum: str = "ict", levels: int = 18,
                 s0: int = 10, s1: int = 1280, total_steps: int | None = None, rho: float = 7.0,
                 level_sampling: str = "lognormal", p_mean: float = -1.1, p_std: float = 2.0,
                 weighting: str = "ict", distance: str = "pseudo_huber", ema_target: bool = False, **kwargs: Any) -> None:
        super().__init__(process, prediction, distance=distance, ema_target=ema_target, **kwargs)
        if curriculum not in ("ict", "fixed"):
            raise ValueError(f"curriculum must be 'ict' or 'fixed'; got {curriculum!r}")
        if curriculum == "ict" and total_steps is None:
            raise ValueError("curriculum='ict' needs total_steps, the run's length K (the curriculum doubles N over it)")
        if level_sampling not in ("lognormal", "uniform"):
            raise ValueError(f"level_sampling must be 'lognormal' or 'uniform'; got {level_sampling!r}")
        if weighting not in ("ict", "uniform"):
            raise ValueError(f"weighting must be 'ict' or 'uniform'; got {weighting!r}")
        self.curriculum = curriculum
        self.levels = check_int(levels, "levels", minimum=2)
        self.s0, self.s1 = check_int(s0, "s0"), check_int(s1, "s1")
        if self.s1 < self.s0:
            raise ValueError(f"s1 must be >= s0; got s0={s0}, s1={s1}")
        self.total_steps = None if total_steps is None else check_int(total_steps, "total_steps")
        self.rho = check_positive(rho, "rho")
        self.level_sampling = level_sampling
        self.p_mean, self.p_std = float(p_mean), check_positive(p_std, "p_std")
        self.weighting_name = weighting
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def config(self) -> dict[str, Any]:
        return {**super().config(), "curriculum": self.curriculum, "levels": self.levels, "s0": self.s0, "s1": self.s1,
                "total_steps": self.total_steps, "rho": self.rho, "level_sampling": self.level_sampling,
                "p_mean": self.p_mean, "p_std": self.p_std, "weighting": self.weighting_name}

    def levels_at(self, step: int) -> int:
        """``N`` at training step ``step``."""
        if self.curriculum == "fixed":
            return self.levels
        return ict_levels(step, self.total_steps, self.s0, self.s1)

    def _discretization(self, n_levels: int):
        if n_levels not in self._cache:
            s = karras_levels(self.s_min, self.s_max, n_levels, self.rho)
            if self.level_sampling == "lognormal":
                cdf = torch.erf((torch.log(s) - self.p_mean) / (math.sqrt(2.0) * self.p_std))
                probs = (cdf[1:] - cdf[:-1]).clamp_min(0.0)
            else:
                probs = torch.ones(n_levels - 1, dtype=torch.float64)
            self._cache[n_levels] = (s, self._times(s), probs / probs.sum())
        return self._cache[n_levels]

    def loss(self, model, x0, *, generator, labels=None, step: int = 0, target_model=None) -> LossOutput:
        self._check_batch(x0, generator, labels)
        s, ts, probs = self._discretization(self.levels_at(step))
        n = torch.multinomial(probs.to(generator.device), x0.shape[0], replacement=True, generator=generator).cpu()
        eps = self._noise(x0, generator)
        t_hi, t_lo = ts[n + 1].to(x0.device), ts[n].to(x0.device)
        x_hi = self.process.marginal(x0, t_hi, eps)
        x_lo = self.process.marginal(x0, t_lo, eps)
        weight = 1.0 / (s[n + 1] - s[n]) if self.weighting_name == "ict" else torch.ones(n.shape, dtype=torch.float64)
        return self._pair_loss(model, target_model, x_hi, t_hi, x_lo, t_lo, weight.to(x0.device))


class EasyConsistencyTuning(ConsistencyObjective):
    """Easy consistency tuning (Geng et al. 2024): continuous-level CT from a diffusion model's weights.

    Args:
        stage_steps: ``d``, the steps per stage (``a = floor(step / d) + 1``; default ``total_steps // 8``).
        total_steps: the run's length (for the default ``stage_steps``).
        q: the shrink factor of ``s - r`` per stage (2).
        k, b: ``n(s) = 1 + k sigmoid(-b s)`` (8 and 1).
        p_mean, p_std: the log-normal level sampler (-1.1, 2.0).
        distance: default ``"pseudo_huber"``; no EMA target by default.
    """

    name = "ect"

    def __init__(self, process, prediction: str = "x0", *, stage_steps: int | None = None, total_steps: int | None = None,
                 q: float = 2.0, k: float = 8.0, b: float = 1.0, p_mean: float = -1.1, p_std: float = 2.0,
                 distance: str = "pseudo_huber", ema_target: bool = False, **kwargs: Any) -> None:
        super().__init__(process, prediction, distance=distance, ema_target=ema_target, **kwargs)
        if stage_steps is None:
            if total_steps is None:
                raise ValueError("give stage_steps (d, steps per stage) or total_steps (then d = total_steps // 8)")
            stage_steps = max(1, check_int(total_steps, "total_steps") // 8)
        self.stage_steps = check_int(stage_steps, "stage_steps")
        self.total_steps = total_steps
        if not q > 1:
            raise ValueError(f"q must be > 1 (the factor by which s - r shrinks per stage); got {q}")
        self.q, self.k, self.b = float(q), float(k), float(b)
        self.p_mean, self.p_std = float(p_mean), check_positive(p_std, "p_std")

    def config(self) -> dict[str, Any]:
        return {**super().config(), "stage_steps": self.stage_steps, "total_steps": self.total_steps, "q": self.q,
                "k": self.k, "b": self.b, "p_mean": self.p_mean, "p_std": self.p_std}

    def pair_levels(self, s: torch.Tensor, step: int) -> torch.Tensor:
        """``r(s)`` at ``step``: ``max(s (1 - n(s)/q^a), s_min)``, float64."""
        a = step // self.stage_steps + 1  # ceil((step + 1) / d): the paper's stage of iteration step + 1
        n_s = 1.0 + self.k * torch.sigmoid(-self.b * s)
        return torch.clamp(s * (1.0 - n_s / self.q**a), min=self.s_min)

    def loss(self, model, x0, *, generator, labels=None, step: int = 0, target_model=None) -> LossOutput:
        self._check_batch(x0, generator, labels)
        z = torch.randn((x0.shape[0],), generator=generator, dtype=torch.float64, device=generator.device).cpu()
        s = torch.exp(self.p_mean + self.p_std * z).clamp(self.s_min * 1.0001, self.s_max)
        r = torch.minimum(self.pair_levels(s, step), s)
        t_hi = self.process.t_from_noise_level(s)
        t_lo = torch.where(r <= self.s_min, torch.full_like(r, self.t_min), self.process.t_from_noise_level(r))
        eps = self._noise(x0, generator)
        x_hi = self.process.marginal(x0, t_hi.to(x0.device), eps)
        x_lo = self.process.marginal(x0, t_lo.to(x0.device), eps)
        weight = 1.0 / (s - r)
        return self._pair_loss(model, target_model, x_hi, t_hi.to(x0.device), x_lo, t_lo.to(x0.device), weight.to(x0.device))


class ProgressiveDistillation(Objective):
    """One round of progressive distillation (see the module docstring): halve the teacher's grid.

    Args:
        teacher: the teacher model (``prediction`` and ``process``; the same process as the student).
        process, prediction: the student's.
        ts: the teacher's grid, ``N + 1`` strictly decreasing times with ``N`` even; the student's grid is ``ts[::2]``.
        weighting: ``"truncated_snr"`` (``max(alpha^2/sigma^2, 1)`` on the x0 error) or ``"uniform"``.
    """

    name = "pd"

    def __init__(self, teacher, process, prediction: str, ts, *, weighting: str = "truncated_snr") -> None:
        super().__init__(process, prediction)
        from ..grids import validate_ts

        self.teacher_prediction = check_teacher(teacher, self.process)
        self.teacher = teacher
        self.ts = validate_ts(ts, self.process, name="ts")
        n = self.ts.numel() - 1
        if n % 2:
            raise ValueError(f"ts must have an even number of steps (the student takes every other time); got {n}")
        if weighting not in ("truncated_snr", "uniform"):
            raise ValueError(f"weighting must be 'truncated_snr' or 'uniform'; got {weighting!r}")
        self.weighting_name = weighting
        self._den = Denoiser(teacher, self.process, self.teacher_prediction, check_finite=False)

    @property
    def student_ts(self) -> torch.Tensor:
        """The student's grid, every other time of the teacher's."""
        return self.ts[::2].clone()

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "prediction": self.prediction, "ts": self.ts.tolist(), "weighting": self.weighting_name}

    def _ddim(self, x, t, t1):
        """One deterministic DDIM step of the teacher, per-sample times: ``alpha1 x0_hat + sigma1 eps_hat``."""
        d = self._den(x, t)
        p = self.process
        return expand_to(p.alpha(t1), x) * d.x0 + expand_to(p.sigma(t1), x) * d.eps

    def loss(self, model, x0, *, generator, labels=None) -> LossOutput:
        from .._utils import check_state

        check_state(x0, "x0")
        if labels is not None:
            raise ValueError("progressive distillation here trains unconditional models; give no labels")
        half = (self.ts.numel() - 1) // 2
        j = torch.randint(0, half, (x0.shape[0],), generator=generator, device=generator.device).cpu()
        t, t_mid, t_end = self.ts[2 * j], self.ts[2 * j + 1], self.ts[2 * j + 2]
        t, t_mid, t_end = (v.to(x0.device) for v in (t, t_mid, t_end))
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=generator.device).to(x0.device)
        x_t = self.process.marginal(x0, t, eps)
        p = self.process
        with torch.no_grad():
            x_mid = self._ddim(x_t, t, t_mid)
            x_end = self._ddim(x_mid, t_mid, t_end)  # t_mid > t_end >= 0: the model is never called at t = 0
            ratio = torch.where(p.sigma(t) > 0, p.sigma(t_end) / p.sigma(t), torch.zeros_like(t))
            target = (x_end - expand_to(ratio, x_t) * x_t) / expand_to(p.alpha(t_end) - ratio * p.alpha(t), x_t)
        out = model(x_t, t.to(x0.dtype))
        x0_hat, _ = to_x0_eps(self.prediction, out.to(x0.dtype), x_t, t, p)
        sq = (x0_hat - target).pow(2).reshape(x0.shape[0], -1).mean(dim=1)
        if self.weighting_name == "truncated_snr":
            weight = torch.clamp(p.alpha(t) ** 2 / p.sigma(t) ** 2, min=1.0)
        else:
            weight = torch.ones_like(t)
        per = sq * weight.to(x0.dtype)
        return LossOutput(per.mean(), per, t)
