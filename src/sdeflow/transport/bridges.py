"""Learned Schrodinger bridges: SB-CFM / [SF]2M and DSBM with iterative Markovian fitting.

The reference is a Brownian motion of diffusion ``sigma`` on ``[0, 1]`` between the target side
``x0`` (``t = 0``) and the source side ``x1`` (``t = 1``), as in :class:`sdeflow.targets.GaussianBridge`.

* **SB-CFM / [SF]2M** (Tong et al. 2024, "Simulation-free Schrodinger bridges via score and flow
  matching", Algorithm 1): pairs from the minibatch Schrodinger plan
  (:class:`~sdeflow.training.couplings.SchrodingerCoupling`), Brownian bridges between them, and two
  regressions (:class:`~sdeflow.transport.PairedFlowMatching`): the probability-flow velocity ``v``
  and the noise ``z`` (the score is ``-E[z | x_t] / (sigma sqrt(t (1 - t)))``). The bridge's SDE from
  ``t = 1`` to ``0`` has drift (in the reversed time ``tau = 1 - t``) ``-v + sigma^2/2 score``; the
  velocity alone is its probability-flow ODE, sampled by :func:`sdeflow.sample` like any velocity model.
* **DSBM-IMF** (Shi, De Bortoli, Campbell and Doucet 2023, "Diffusion Schrodinger bridge matching",
  Algorithm 1): starting from independent pairs, alternately fit the backward drift
  ``E[(x0 - x_t)/t | x_t]`` of the current coupling's bridges and simulate it from source samples to a
  new coupling, then fit the forward drift ``E[(x1 - x_t)/(1 - t) | x_t]`` and simulate it from target
  samples. Each fit is a Markovian projection; each projection followed by the reciprocal projection
  (new bridges) decreases the KL to the Schrodinger bridge (Shi et al., Prop. 7).

Bridges are simulated by :func:`sdeflow.sdeint` with any SDE solver of the suite
(:func:`simulate_bridge`); the noise comes from per-sample seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .._utils import check_int, check_positive
from ..noise.rng import randn
from ..processes import Linear
from ..sdes import SDE, sdeint
from ..training.model import DiffusionModel
from ..training.trainer import TrainConfig, Trainer
from .objectives import PairedFlowMatching, pack_pairs

__all__ = ["BridgeSDE", "simulate_bridge", "BridgeConfig", "train_sbcfm", "run_dsbm", "DSBMResult", "SBCFMResult"]

DIRECTIONS = ("forward", "backward")


def _call(model: Callable, x: torch.Tensor, t: float) -> torch.Tensor:
    return model(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))


class BridgeSDE(SDE):
    """``dy = drift dtau + sigma dW`` in the simulation time ``tau`` in ``[0, 1]`` of a learned bridge.

    ``direction="forward"`` runs from ``t = 0`` to ``1`` (``t = tau``); ``"backward"`` from ``t = 1``
    to ``0`` (``t = 1 - tau``). The drift is one of:

    * ``drift_model``: a forward-drift model (forward) or a backward-drift model (backward), as
      learned by DSBM;
    * ``velocity_model`` and ``noise_model`` (SB-CFM): ``+-v + sigma^2/2 score`` with
      ``score = -noise / (sigma sqrt(t (1 - t)))``, ``t`` kept in ``[t_clip, 1 - t_clip]``.

    Models are called as ``model(x, t)`` with ``t`` of shape ``(batch,)``.
    """

    noise_type = "additive"

    def __init__(self, sigma: float, direction: str = "backward", *, drift_model: Callable | None = None,
                 velocity_model: Callable | None = None, noise_model: Callable | None = None, t_clip: float = 1e-3) -> None:
        self.sigma = check_positive(sigma, "sigma")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {list(DIRECTIONS)}; got {direction!r}")
        self.direction = direction
        if (drift_model is None) == (velocity_model is None):
            raise ValueError("give either drift_model (DSBM) or velocity_model with noise_model (SB-CFM)")
        if velocity_model is not None and noise_model is None:
            raise ValueError("velocity_model needs noise_model (the score) for the SDE; sample the ODE with sdeflow.sample instead")
        self.drift_model, self.velocity_model, self.noise_model = drift_model, velocity_model, noise_model
        self.t_clip = check_positive(t_clip, "t_clip")

    def _t(self, tau) -> float:
        tau = float(tau)
        return tau if self.direction == "forward" else 1.0 - tau

    def drift(self, tau, x: torch.Tensor) -> torch.Tensor:
        t = self._t(tau)
        if self.drift_model is not None:
            # A backward drift is already the drift in the reversed time tau (it points from x_t towards x0).
            return _call(self.drift_model, x, t)
        tc = min(max(t, self.t_clip), 1.0 - self.t_clip)
        score = -_call(self.noise_model, x, tc) / (self.sigma * math.sqrt(tc * (1.0 - tc)))
        v = _call(self.velocity_model, x, tc)
        return (v if self.direction == "forward" else -v) + 0.5 * self.sigma**2 * score

    def diffusion(self, tau, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.sigma)


@torch.no_grad()
def simulate_bridge(sde: BridgeSDE, x: torch.Tensor, *, steps: int = 20, method: str = "euler_maruyama",
                    seed: int = 0, batch_size: int = 10_000) -> torch.Tensor:
    """The end state ``(n, *event_shape)`` of ``sde`` from ``x (n, *event_shape)`` with ``steps`` fixed steps.

    ``method`` is an SDE solver of the suite (``euler_maruyama``, ``sra1``, ``heun_sde``, ...); sample
    ``i`` of chunk ``k`` is driven by the Brownian path of seed ``seed + k * batch_size + i``.
    """
    check_int(steps, "steps")
    check_int(batch_size, "batch_size")
    if not isinstance(sde, BridgeSDE):
        raise TypeError(f"sde must be a BridgeSDE; got {type(sde).__name__}")
    outs = []
    for k in range(0, x.shape[0], batch_size):
        chunk = x[k:k + batch_size]
        ys = sdeint(sde, chunk, [0.0, 1.0], method=method, dt=1.0 / steps, seed=seed + k)
        outs.append(ys[-1])
    return torch.cat(outs)


@dataclass
class BridgeConfig:
    """Training options of :func:`train_sbcfm` and :func:`run_dsbm` (each network, each DSBM fit).

    Attributes:
        sigma: the Brownian reference's diffusion.
        steps: optimizer steps of each fit (``first_steps`` for DSBM's first fit, default ``steps``).
        iterations: DSBM's IMF iterations (each: a backward and a forward fit).
        batch_size, lr, ema_decay, width, depth: trainer and MLP options.
        sim_steps, method: steps and SDE solver of DSBM's coupling simulations.
        n_pairs: size of each simulated coupling.
        seed, progress: the seed of the networks, the fits and the simulations; whether to show progress bars.
    """

    sigma: float = 1.0
    steps: int = 2000
    first_steps: int | None = None
    iterations: int = 3
    batch_size: int = 256
    lr: float = 1e-3
    ema_decay: float = 0.999
    width: int = 256
    depth: int = 3
    sim_steps: int = 20
    method: str = "euler_maruyama"
    n_pairs: int = 20_000
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)):
            raise TypeError(f"sigma must be a number > 0 (the reference's diffusion); got {type(self.sigma).__name__}")
        check_positive(self.sigma, "sigma")
        for name in ("steps", "iterations", "batch_size", "width", "depth", "sim_steps", "n_pairs"):
            check_int(getattr(self, name), name)
        if self.first_steps is not None:
            check_int(self.first_steps, "first_steps")
        check_int(self.seed, "seed", minimum=0)
        self.train_config(self.steps)  # the trainer's checks before any work

    def train_config(self, steps: int) -> TrainConfig:
        return TrainConfig(steps=steps, batch_size=self.batch_size, lr=self.lr, warmup_steps=min(100, steps - 1),
                           ema_decay=self.ema_decay, seed=self.seed, progress=self.progress, label_dropout=0.0)


def _check_sides(x0: torch.Tensor, x1: torch.Tensor) -> None:
    for name, x in (("x0 (target)", x0), ("x1 (source)", x1)):
        if not isinstance(x, torch.Tensor) or x.ndim < 2 or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating tensor (n, *event_shape); got {getattr(x, 'shape', type(x).__name__)}")
    if x0.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"x0 (target) and x1 (source) must have items of one shape; got {tuple(x0.shape[1:])} and {tuple(x1.shape[1:])}"
        )


def _fit(pairs: torch.Tensor, objective: PairedFlowMatching, init: DiffusionModel | None, steps: int, cfg: BridgeConfig,
         seed_offset: int) -> tuple[DiffusionModel, list[float]]:
    from ..nn import MLP

    event_shape = tuple(pairs.shape[2:])
    model = DiffusionModel(MLP(event_shape, cfg.width, cfg.depth, seed=cfg.seed + seed_offset), Linear(), objective.prediction)
    if init is not None:
        model.net.load_state_dict(init.net.state_dict())
    tcfg = cfg.train_config(steps)
    tcfg.seed = cfg.seed + seed_offset
    result = Trainer(model, objective, pairs.to(torch.float32), config=tcfg).fit()
    return result.ema_model.eval().requires_grad_(False), [h["loss"] for h in result.history]


@dataclass
class SBCFMResult:
    """The two networks of SB-CFM (EMA weights) and their loss histories."""

    velocity_model: DiffusionModel
    noise_model: DiffusionModel
    sigma: float
    losses: dict[str, list[float]] = field(default_factory=dict)

    def sde(self, direction: str = "backward") -> BridgeSDE:
        """The learned bridge's SDE (``backward``: from source samples at ``t = 1`` to the target)."""
        return BridgeSDE(self.sigma, direction, velocity_model=self.velocity_model, noise_model=self.noise_model)


def train_sbcfm(x0: torch.Tensor, x1: torch.Tensor, config: BridgeConfig | None = None) -> SBCFMResult:
    """SB-CFM / [SF]2M between target samples ``x0 (n, *event)`` and source samples ``x1 (m, *event)``.

    Minibatches of ``x0`` and ``x1`` are re-paired by the Schrodinger plan of diffusion ``sigma``
    (the two sides are drawn independently: ``x1`` is resampled to ``n`` items with a seeded generator).
    """
    cfg = config if config is not None else BridgeConfig()
    _check_sides(x0, x1)
    gen = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randint(x1.shape[0], (x0.shape[0],), generator=gen)
    pairs = pack_pairs(x0.to(torch.float32), x1[idx].to(torch.float32))
    coupling = {"name": "schrodinger", "sigma": cfg.sigma}
    v, v_loss = _fit(pairs, PairedFlowMatching(coupling=coupling, bridge_sigma=cfg.sigma), None, cfg.steps, cfg, 0)
    z, z_loss = _fit(pairs, PairedFlowMatching(coupling=coupling, bridge_sigma=cfg.sigma, field="noise"), None, cfg.steps, cfg, 1)
    return SBCFMResult(v, z, cfg.sigma, {"velocity": v_loss, "noise": z_loss})


@dataclass
class DSBMResult:
    """DSBM-IMF's last forward and backward drift models, and per-fit reports."""

    forward_model: DiffusionModel
    backward_model: DiffusionModel
    sigma: float
    fits: list[dict[str, Any]] = field(default_factory=list)

    def sde(self, direction: str = "backward") -> BridgeSDE:
        """``backward``: from source samples at ``t = 1`` to the target; ``forward``: the other way."""
        model = self.backward_model if direction == "backward" else self.forward_model
        return BridgeSDE(self.sigma, direction, drift_model=model)


def run_dsbm(x0: torch.Tensor, x1: torch.Tensor, config: BridgeConfig | None = None,
             log: Callable[[str], None] | None = None) -> DSBMResult:
    """DSBM with iterative Markovian fitting between target samples ``x0`` and source samples ``x1`` (module docstring).

    Iteration ``k``: fit the backward drift on the current coupling's bridges, simulate it from
    ``n_pairs`` source samples to a new coupling; fit the forward drift on that coupling's bridges,
    simulate it from target samples. The first coupling is independent. Networks are warm-started
    from the previous fit of the same direction.
    """
    cfg = config if config is not None else BridgeConfig()
    _check_sides(x0, x1)
    gen = torch.Generator().manual_seed(cfg.seed)
    x0, x1 = x0.to(torch.float32), x1.to(torch.float32)

    def draw(side: torch.Tensor) -> torch.Tensor:
        return side[torch.randint(side.shape[0], (cfg.n_pairs,), generator=gen)]

    pairs = pack_pairs(draw(x0), draw(x1))
    fwd = bwd = None
    fits: list[dict[str, Any]] = []
    say = log or (lambda line: None)
    for k in range(cfg.iterations):
        steps = cfg.first_steps if (k == 0 and cfg.first_steps) else cfg.steps
        bwd, losses = _fit(pairs, PairedFlowMatching(bridge_sigma=cfg.sigma, field="backward_drift"), bwd, steps, cfg, 2 * k)
        start = draw(x1)
        end = simulate_bridge(BridgeSDE(cfg.sigma, "backward", drift_model=bwd), start, steps=cfg.sim_steps, method=cfg.method,
                              seed=cfg.seed * 1_000_003 + (2 * k) * cfg.n_pairs)
        pairs = pack_pairs(end, start)
        fits.append({"iteration": k, "direction": "backward", "final_loss": losses[-1] if losses else None})
        say(str(fits[-1]))
        fwd, losses = _fit(pairs, PairedFlowMatching(bridge_sigma=cfg.sigma, field="forward_drift"), fwd, cfg.steps, cfg, 2 * k + 1)
        start = draw(x0)
        end = simulate_bridge(BridgeSDE(cfg.sigma, "forward", drift_model=fwd), start, steps=cfg.sim_steps, method=cfg.method,
                              seed=cfg.seed * 1_000_003 + (2 * k + 1) * cfg.n_pairs)
        pairs = pack_pairs(start, end)
        fits.append({"iteration": k, "direction": "forward", "final_loss": losses[-1] if losses else None})
        say(str(fits[-1]))
    return DSBMResult(fwd, bwd, cfg.sigma, fits)
