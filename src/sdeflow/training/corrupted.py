"""Training clean priors from corrupted data: noisy observations and linear measurements.

Two kinds of corrupted data (the corruption is known; the clean ``x0`` is never seen):

* **Noisy data** ``y = x0 + sigma_n z`` (``z ~ N(0, I)``, ``sigma_n`` known, in model units; a float
  or a tensor of the event shape for per-coordinate levels). :class:`NoisyDataObjective` trains
  the clean denoiser ``E[x0 | x_t]``.
* **Linear measurements** ``y_i = A_i x0_i + sigma_y z`` with a known ``A_i`` per sample (random
  masks are ``A_i = diag(mask_i)``). :class:`ExpectationMaximization` (DiEM) alternates posterior
  sampling with the current model and denoising score matching on the posterior samples.

Notation: ``x_t = alpha x0 + sigma eps`` and ``xt = x_t / alpha = x0 + s eps`` with ``s = sigma / alpha``
the noise level (EDM's ``sigma``); ``h(x_t, t)`` is the model's ``x0`` prediction (any prediction
kind is converted through the hub).

Noisy data, above the data's noise level (``s > sigma_n``). ``xt`` can be drawn from ``y`` alone,
``xt = y + sqrt(s^2 - sigma_n^2) w``, and Tweedie's formula applied once to ``x0`` (noise ``s``) and
once to ``y`` (noise ``sqrt(s^2 - sigma_n^2)``) about the same density of ``xt`` gives
(Daras et al. 2024, "Consistent Diffusion Meets Tweedie", eq. 3.2, per coordinate):

    E[x0 | xt] = s^2 / (s^2 - sigma_n^2) E[y | xt] - sigma_n^2 / (s^2 - sigma_n^2) xt        (double Tweedie)

so regressing ``g = ((s^2 - sigma_n^2) h + sigma_n^2 xt) / s^2`` on ``y`` has minimizer
``g* = E[y | xt]``, i.e. ``h* = E[x0 | xt]``, the clean law's denoiser (:func:`double_tweedie`).
The SURE alternative (Stein 1981; Kawar et al. 2024, Aali et al. 2023) replaces the unseen ``x0`` in
``|h(xt) - x0|^2`` by Stein's unbiased risk estimate. It is taken about the data's own noise
``y - x0 = sigma_n z`` (``xt = y + sqrt(s^2 - sigma_n^2) w`` depends on ``z`` through ``y``, so
Stein's lemma gives ``E[h . (y - x0)] = E[sum_i sigma_n,i^2 dh_i/dxt_i]``):

    SURE(h) = |h(xt) - y|^2 + 2 sum_i sigma_n,i^2 dh_i/dxt_i - sum_i sigma_n,i^2 ,    E[SURE] = E|h(xt) - x0|^2

with the divergence from one Rademacher probe ``b``: ``sum_i sigma_n,i^2 dh_i/dxt_i ~ b . J^T (sigma_n^2 b)``,
``J = dh/dxt`` (Hutchinson 1989). The same estimate about the whole noise ``xt - x0 = s eps``
(``|h - xt|^2 + 2 s^2 div h - D s^2``) has the same expectation, but its residual and divergence
terms grow as ``s^2`` rather than ``sigma_n^2``: its gradient noise was ``s / sigma_n`` times larger, and it
trained to W2 9.2x the clean-data model's in 2-D and 3.4x in 8-D (BENCHMARKS-corrupted.md before this form).

Below the noise level (``s < sigma_n``) ``xt`` cannot be drawn from ``y``. The exact denoiser is a
martingale along the reverse process: ``E[h(x_{t'}, t') | x_u] = h(x_u, u)`` for ``t' < u``
(Daras et al. 2023, "Consistent Diffusion Models"). The consistency term draws ``xt_u`` at
``s_u = sqrt(2) max(sigma_n)`` from ``y``, takes the model's own (stop-gradient) ``x0_u = h(x_u, u)``,
draws two independent ``xt'`` from the Gaussian bridge of the forward process given
``(xt_u, x0_u)``,

    xt' ~ N( x0_u + (s'^2 / s_u^2) (xt_u - x0_u),  s'^2 (s_u^2 - s'^2) / s_u^2 I ),

and minimizes ``(h(x'_1, t') - x0_u) . (h(x'_2, t') - x0_u)``, an unbiased estimate of
``|E[h(x', t') | x_u] - x0_u|^2`` (two draws, so the square is of the conditional mean). The bridge's
mean is exact for any law (the tower property); its spread around the mean is the one-step
approximation of the reverse kernel, exact for denoisers linear in ``xt`` (Gaussian data, where the
tests check that the exact denoiser is the stationary point).

Linear measurements: :class:`ExpectationMaximization` (Rozet et al. 2024, "Learning Diffusion
Priors from Observations by Expectation Maximization"). Round 0 fits a Gaussian prior by closed-form
EM and draws exact Gaussian posterior samples; every later round draws ``x_i ~ p_theta(x | y_i)`` with
the moment-matching posterior denoiser (:class:`PosteriorDenoiser`, MMPS, Rozet et al. 2024, eq. 11):

    E[x0 | xt, y] ~ h + s^2 J^T A^T (sigma_y^2 I + s^2 A J A^T)^{-1} (y - A h),     J = dh/dxt

(Tweedie's covariance ``Cov[x0 | xt] = s^2 J``; the linear system solved by conjugate gradients with
vector-Jacobian products), run by :func:`sdeflow.sample` like any model, and trains the model on the
samples with denoising score matching. Above two prior standard deviations of noise the EM rounds use
``Cov[x0 | xt] ~ diag(s^2 v / (s^2 + v))`` with ``v`` the Gaussian fit's variances instead: there
``s^2 J`` is a difference of ``O(1/alpha)`` terms that a learned network does not cancel (DiEM diverged
in 8-D without it), and the exact covariance tends to the prior's as ``s`` grows. Below that level a
step whose learned ``J`` acts as no covariance can (its correction moves ``A x0`` further than the
residual ``y - A h``) is shortened to the residual's length (:class:`PosteriorDenoiser`).
The posterior step lives here rather than in :mod:`sdeflow.inverse`, whose operators are one ``A`` for
a whole batch of measurements: EM needs a different ``A_i`` for every observation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .._utils import check_int, check_nonnegative, check_positive, check_state, expand_to
from ..models.parameterization import from_x0_eps, to_x0_eps
from ..processes.base import DiffusionProcess
from .couplings import Coupling
from .objectives import LossOutput, Objective
from .time_samplers import TimeSampler
from .weighting import Weighting, eps_error_scale2

__all__ = [
    "double_tweedie",
    "check_noise_level",
    "x0_error_weight",
    "NoisyDataObjective",
    "LinearCorruption",
    "mask_corruption",
    "gaussian_em",
    "PosteriorDenoiser",
    "posterior_sample",
    "ExpectationMaximization",
    "EMRound",
    "NOISY_METHODS",
]

NOISY_METHODS = ("tweedie", "sure")
CONSISTENCY_STEPS = 4
"""Default length of the model's own ancestral chain that draws the consistency term's ``x'`` (see :class:`NoisyDataObjective`)."""


# ----------------------------------------------------------------------------------- noisy data
def double_tweedie(y_hat: torch.Tensor, xt: torch.Tensor, s: torch.Tensor, sigma_n: torch.Tensor | float) -> torch.Tensor:
    """``E[x0 | xt]`` from ``E[y | xt]``: ``(s^2 y_hat - sigma_n^2 xt) / (s^2 - sigma_n^2)`` (Daras et al. 2024, eq. 3.2).

    Args:
        y_hat: ``E[y | xt]`` for ``y = x0 + sigma_n z``, shape ``(batch, *event_shape)``.
        xt: ``x_t / alpha``, the state in noise-level units, same shape.
        s: ``(batch,)`` or ``()`` noise levels ``sigma / alpha``, each ``> sigma_n``.
        sigma_n: the data's noise level, a float or a tensor broadcastable to the event shape.
    """
    s2 = expand_to(s, xt) ** 2
    n2 = torch.as_tensor(sigma_n, dtype=xt.dtype, device=xt.device) ** 2
    return (s2 * y_hat - n2 * xt) / (s2 - n2)


def check_noise_level(sigma_n: Any, event_shape: Sequence[int], *, units: str | None = None,
                      data: torch.Tensor | None = None, name: str = "sigma_n") -> torch.Tensor:
    """``sigma_n`` as a float64 tensor broadcastable to ``event_shape``, checked.

    A level above the data's own standard deviation with ``units=None`` is refused: the usual
    mistake is a level stated in the units of the raw data (e.g. pixel values 0..255) applied to
    normalized data; say ``units="model"`` (the level is in the units the model trains in) to
    confirm it.
    """
    if units not in (None, "model"):
        raise ValueError(f"units must be None or 'model' (convert data units with the data's scale first); got {units!r}")
    if isinstance(sigma_n, bool) or not isinstance(sigma_n, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a float or a tensor of the event shape; got {type(sigma_n).__name__}")
    level = torch.as_tensor(sigma_n, dtype=torch.float64).detach().cpu()
    if level.ndim > len(event_shape) or (level.ndim and tuple(level.shape) != tuple(event_shape)[len(event_shape) - level.ndim:]):
        raise ValueError(f"{name} must be a float or a tensor of the event shape {tuple(event_shape)}; got shape {tuple(level.shape)}")
    if not bool(torch.isfinite(level).all()) or not bool((level > 0).all()):
        raise ValueError(f"{name} must be finite and > 0 (the standard deviation of the data's noise); got {level.flatten()[:4].tolist()}")
    if units is None and data is not None and data.numel() > 1:
        scale = float(data.double().std())
        if float(level.max()) > scale:
            raise ValueError(
                f"{name}={float(level.max()):.4g} is larger than the data's standard deviation {scale:.4g}: is it in the units "
                "of the raw data while the data was normalized? State it in the model's units and pass units='model' "
                "(the CLI's --corruption noise:S is in data units and converts it)"
            )
    return level


def x0_error_weight(objective: Objective, t: torch.Tensor) -> torch.Tensor:
    """``(batch,)`` weights of a squared ``x0`` error equal to ``objective``'s weighting of its own prediction.

    ``|out - target|^2 = (c_k^2 / c_x0^2) |x0 error|^2`` for prediction ``k``, so ``w(t) c_k^2 / c_x0^2``
    times the time sampler's importance weight puts an ``x0`` regression on the scale of
    :class:`~sdeflow.training.DenoisingScoreMatching` of the same prediction.
    """
    p, k = objective.process, objective.prediction
    return (objective.weighting.weight(p, t, k) * eps_error_scale2(k, p, t) / eps_error_scale2("x0", p, t)
            * objective.time_sampler.importance_weight(p, t))


class NoisyDataObjective(Objective):
    """Learn the clean denoiser from data ``y = x0 + sigma_n z`` (see the module docstring).

    Per sample, ``t`` comes from the time sampler; where ``s(t) > sigma_n`` the ambient term
    (``method="tweedie"``: double Tweedie; ``"sure"``: Stein's unbiased risk estimate), elsewhere the
    consistency term (weight ``consistency``; 0 leaves the model untrained below ``sigma_n``). The
    ambient term is weighted like denoising score matching of the same prediction (the weighting
    carried to the ``x0`` error), so the scale of the loss matches
    :class:`~sdeflow.training.DenoisingScoreMatching`.

    **The consistency term's** ``x'`` (noise level ``s' < sigma_n``) is drawn from the anchor ``xt_u``
    (level ``s_u = sqrt(2) max sigma_n``) by the model's own ancestral chain of ``consistency_steps``
    steps, levels ``s_u (s' / s_u)^(k / K)``, each step the Gaussian bridge of the module docstring
    from the model's ``x0`` estimate at the current level (no gradient). One step has the
    exact mean of ``x'`` given ``x_u``, so for a denoiser linear in ``xt`` (Gaussian data) it is unbiased;
    for other data it leaves out the spread of ``x0`` given ``x_u`` (the law of ``x'`` given ``x_u`` has the
    extra covariance ``(1 - r)^2 Cov[x0 | x_u]``, ``r = s'^2 / s_u^2``). A longer chain approaches the law as
    its steps shorten, but its mean is no longer exact on the way (tested on a two-point prior: variance
    error 0.68 / 0.37 / 0.10 of 0.69 for 1 / 4 / 16 steps, mean error 0 / 0.24 / 0.08).
    ``consistency_weighting="anchor"`` (default) weights the term by the ``x0``-error weight
    of the anchor level for every ``s'``; ``"dsm"`` uses that of ``s'`` itself, which grows as ``1 / s'^2``
    for eps and v prediction while the term's per-sample value stays of the order of ``Cov[x0 | x_u]``
    (it does not shrink with ``s'`` as a clean DSM residual does), so its gradient noise grew as
    ``1 / s'^2``. Neither choice moves the term's minimizer (per noise level, the exact denoiser). Measured
    with double Tweedie on the mixtures of ``benchmarks/corrupted.py`` (W2 on 10,000 points, seed 0, 3,000
    steps): in 2-D (clean model 0.057, floor 0.074) one step with ``"dsm"`` weights 0.179, four steps 0.188;
    one step with ``"anchor"`` 0.150, four steps 0.120; in 8-D (clean 0.383, floor 0.441) ``"dsm"`` 0.449,
    ``"anchor"`` 0.421 with one or four steps. With SURE (the estimate about ``y``'s noise) in 2-D, four
    steps against one on seeds 0-4: 0.096 / 0.094 / 0.093 / 0.095 / 0.124 against 0.108 / 0.123 / 0.124 /
    0.112 / 0.124; double Tweedie in 2-D, seeds 0-4: 0.120 / 0.149 / 0.110 / 0.145 / 0.160 against 0.150 /
    0.161 / 0.160 / 0.164 / 0.176; in 8-D both level (means 0.420 and 0.419 with four steps); on noisy digits
    (``sigma_n = 0.2``, a small U-Net, 800 steps, one seed) double Tweedie's Frechet distance 18.7 against
    26.5. So the defaults are the weighting whose argument is general and four steps: better in 9 of 10 2-D
    runs and level in the tenth, level in 8-D, better on digits, at 1.2 to 1.5 times the training CPU
    (medians over the protocol's seeds).

    Args:
        process, prediction, weighting, time_sampler: as for :class:`~sdeflow.training.Objective`.
        sigma_n: the data's noise level in model units (float, or a tensor of the event shape).
        method: ``"tweedie"`` or ``"sure"``.
        consistency: weight of the consistency term below ``sigma_n``.
        consistency_steps: steps of the chain that draws ``x'`` (default 4; 1: the single Gaussian bridge).
        consistency_weighting: ``"anchor"`` or ``"dsm"`` (above).

    Costs per sample: one model call above ``sigma_n`` (SURE: plus one backward for the divergence,
    with ``create_graph``); ``2 K + 1`` below (``2 K - 1`` without gradient, ``K = consistency_steps``).
    """

    name = "noisy"

    def __init__(
        self,
        process: DiffusionProcess | str,
        prediction: str = "eps",
        *,
        sigma_n: float | torch.Tensor,
        method: str = "tweedie",
        consistency: float = 1.0,
        consistency_steps: int = CONSISTENCY_STEPS,
        consistency_weighting: str = "anchor",
        weighting: Weighting | str | dict = "uniform",
        time_sampler: TimeSampler | str | dict = "uniform",
        coupling: Coupling | str | dict = "independent",
    ) -> None:
        super().__init__(process, prediction, weighting=weighting, time_sampler=time_sampler, coupling=coupling)
        if self.coupling.name != "independent":
            raise ValueError(f"the noisy-data objective needs independent pairs; got coupling {self.coupling.name!r}")
        if method not in NOISY_METHODS:
            raise ValueError(f"method must be one of {list(NOISY_METHODS)}; got {method!r}")
        level = torch.as_tensor(sigma_n, dtype=torch.float64) if isinstance(sigma_n, (int, float, torch.Tensor)) and not isinstance(sigma_n, bool) else None
        if level is None or not bool(torch.isfinite(level).all()) or not bool((level > 0).all()):
            raise ValueError(f"sigma_n must be a positive float or tensor (the data's noise level in model units); got {sigma_n!r}")
        self.sigma_n = level
        self.method = method
        self.consistency = check_nonnegative(consistency, "consistency")
        self.consistency_steps = check_int(consistency_steps, "consistency_steps")
        if consistency_weighting not in ("anchor", "dsm"):
            raise ValueError(f"consistency_weighting must be 'anchor' or 'dsm'; got {consistency_weighting!r}")
        self.consistency_weighting = consistency_weighting
        self.s_max = float(level.max())
        # The consistency term's upper level s_u = sqrt(2) max sigma_n must lie on the process.
        top = float(self.process.noise_level(torch.tensor(float(self.process.T), dtype=torch.float64)))
        if top <= math.sqrt(2.0) * self.s_max:
            raise ValueError(
                f"sigma_n={self.s_max:.4g} is too large for the process: its largest noise level (at T) is {top:.4g}, "
                f"and the objective needs levels above sqrt(2) sigma_n = {math.sqrt(2) * self.s_max:.4g}"
            )
        self.t_u = float(self.process.t_from_noise_level(torch.tensor(math.sqrt(2.0) * self.s_max, dtype=torch.float64)))
        self._anchor_weight = float(x0_error_weight(self, torch.tensor([self.t_u], dtype=torch.float64))[0])

    def config(self) -> dict[str, Any]:
        out = super().config()
        level = self.sigma_n
        out.update({"sigma_n": float(level) if level.ndim == 0 else level.tolist(), "method": self.method, "consistency": self.consistency,
                    "consistency_steps": self.consistency_steps, "consistency_weighting": self.consistency_weighting})
        return out

    def _x0(self, model, x_t: torch.Tensor, t: torch.Tensor, labels) -> torch.Tensor:
        t_in = t.to(x_t.dtype)
        out = model(x_t, t_in) if labels is None else model(x_t, t_in, labels)
        if not isinstance(out, torch.Tensor) or out.shape != x_t.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the model returned {shape} for a state of shape {tuple(x_t.shape)}; it must return the state's shape")
        return to_x0_eps(self.prediction, out.to(x_t.dtype), x_t, t, self.process)[0]

    def loss(self, model, x0: torch.Tensor, *, generator: torch.Generator, labels: torch.Tensor | None = None) -> LossOutput:
        """The objective on a minibatch ``x0`` of noisy data ``y`` (named ``x0`` as in every objective)."""
        check_state(x0, "x0")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator (sdeflow never uses the global one); got {type(generator).__name__}")
        y = x0
        n, dtype, dev = y.shape[0], y.dtype, y.device
        nz = self.sigma_n.to(dtype=dtype, device=dev)
        if nz.ndim and tuple(nz.shape) != tuple(y.shape[y.ndim - nz.ndim:]):
            raise ValueError(f"sigma_n has shape {tuple(nz.shape)}, which is not the data's event shape {tuple(y.shape[1:])}")

        def randn(like: torch.Tensor) -> torch.Tensor:
            return torch.randn(like.shape, generator=generator, dtype=dtype, device=generator.device).to(dev)

        t = self.time_sampler.sample(self.process, n, generator).to(dev).to(dtype).to(torch.float64)
        s = self.process.noise_level(t)
        above = s > self.s_max
        weight = x0_error_weight(self, t)
        per_sample = torch.zeros(n, dtype=dtype, device=dev)
        w = randn(y)  # drawn for every sample, so that a sample's noise does not depend on the others' times
        if bool(above.any()):
            i = above.nonzero().reshape(-1)
            yi, si, ti = y[i], s[i], t[i]
            lab = labels[i] if labels is not None else None
            s2 = expand_to(si, yi).to(dtype) ** 2
            xt = yi + torch.sqrt(s2 - nz**2) * w[i]
            alpha = expand_to(self.process.alpha(ti), yi).to(dtype)
            if self.method == "tweedie":
                h = self._x0(model, alpha * xt, ti, lab)
                g = ((s2 - nz**2) * h + nz**2 * xt) / s2
                sq = (g - yi).pow(2).reshape(len(i), -1).mean(dim=1)
            else:
                # Stein's unbiased risk estimate about y's noise (module docstring); per coordinate, mean over the event
                probe = torch.where(randn(yi) > 0, 1.0, -1.0).to(dtype)
                n2 = (nz**2).expand_as(yi)
                with torch.enable_grad():
                    xt = xt.detach().requires_grad_(True)
                    h = self._x0(model, alpha * xt, ti, lab)
                    (jb,) = torch.autograd.grad((h * n2 * probe).sum(), xt, create_graph=True)
                div = (jb * probe).reshape(len(i), -1).mean(dim=1)
                sq = (h - yi).pow(2).reshape(len(i), -1).mean(dim=1) + 2.0 * div - n2.reshape(len(i), -1).mean(dim=1)
            per_sample = per_sample.index_put((i,), expand_to(weight[i], sq).to(dtype) * sq)
        below = ~above
        if bool(below.any()) and self.consistency > 0:
            i = below.nonzero().reshape(-1)
            yi, si, ti = y[i], s[i], t[i]
            lab = labels[i] if labels is not None else None
            t_u = torch.full_like(ti, self.t_u)
            s_u2 = (math.sqrt(2.0) * self.s_max) ** 2
            a_u = self.process.alpha(t_u)
            xt_u = yi + torch.sqrt(s_u2 - nz**2) * w[i]
            with torch.no_grad():
                x0_u = self._x0(model, expand_to(a_u, yi).to(dtype) * xt_u, t_u, lab)
            tt = torch.cat([ti, ti])
            lab2 = None if lab is None else torch.cat([lab, lab])
            # two independent chains per sample (the unbiased square of the conditional mean below)
            both = self.bridge_chain(model, torch.cat([xt_u, xt_u]), torch.cat([x0_u, x0_u]), s_u2, torch.cat([si, si]) ** 2,
                                     lambda like: torch.cat([randn(yi), randn(yi)]), lab2)
            a_t = expand_to(self.process.alpha(ti), yi).to(dtype)
            h = self._x0(model, torch.cat([a_t, a_t]) * both, tt, lab2)
            h1, h2 = h[: len(i)], h[len(i):]
            sq = ((h1 - x0_u) * (h2 - x0_u)).reshape(len(i), -1).mean(dim=1)
            cw = weight[i] if self.consistency_weighting == "dsm" else torch.full_like(weight[i], self._anchor_weight)
            per_sample = per_sample.index_put((i,), self.consistency * expand_to(cw, sq).to(dtype) * sq)
        return LossOutput(per_sample.mean(), per_sample, t)

    def bridge_chain(self, model, xt_u: torch.Tensor, x0_u: torch.Tensor, s_u2: float, s2: torch.Tensor,
                     noise: Callable[[torch.Tensor], torch.Tensor], labels: torch.Tensor | None = None) -> torch.Tensor:
        """Draw ``xt'`` at levels ``s2`` (``(batch,)`` squared noise levels) from ``xt_u`` at ``s_u2`` with the model's own chain.

        ``consistency_steps = K`` ancestral steps through the levels ``s_u2 (s2 / s_u2)^(k / K)``; step ``k`` draws from the
        Gaussian bridge ``N(x0_k + r (x_k - x0_k), s_{k+1}^2 (1 - r) I)``, ``r = s_{k+1}^2 / s_k^2``, with ``x0_k`` the model's
        ``x0`` estimate at ``x_k`` (``x0_u`` given for the first; no gradient). ``noise(like)`` returns standard normal
        draws shaped like ``like``. States are in the VE form ``xt = x_t / alpha``.
        """
        dtype = xt_u.dtype
        s2 = s2.to(torch.float64)
        x, x0_k = xt_u, x0_u
        hi = torch.full_like(s2, float(s_u2))
        K = self.consistency_steps
        for k in range(1, K + 1):
            lo = s2 * (s_u2 / s2) ** (1.0 - k / K) if k < K else s2
            r = expand_to(lo / hi, x).to(dtype)
            std = expand_to(torch.sqrt(lo * (hi - lo) / hi), x).to(dtype)
            x = x0_k + r * (x - x0_k) + std * noise(x)
            if k < K:
                t_k = self.process.t_from_noise_level(lo.sqrt())
                with torch.no_grad():
                    x0_k = self._x0(model, expand_to(self.process.alpha(t_k), x).to(dtype) * x, t_k, labels)
            hi = lo
        return x


# ----------------------------------------------------------------------------------- linear measurements
@dataclass
class LinearCorruption:
    """Observations ``y_i = A_i x_i + sigma_y z`` with a known operator per sample.

    Attributes:
        y: ``(n, m)`` observations (flattened: ``x`` enters as ``(n, D)``).
        A: ``(n, m, D)`` operators (masks: ``A_i = diag(mask_i)``, ``m = D``, unobserved rows zero).
        sigma_y: the observation noise (``> 0``; DiEM's sigma_y, e.g. 0.01).
        event_shape: the shape of one clean item (``prod = D``).
    """

    y: torch.Tensor
    A: torch.Tensor
    sigma_y: float
    event_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.A, torch.Tensor) or self.A.ndim != 3:
            raise ValueError(f"A must be an (n, m, D) tensor of per-sample operators; got {getattr(self.A, 'shape', type(self.A).__name__)}")
        n, m, d = self.A.shape
        if not isinstance(self.y, torch.Tensor) or tuple(self.y.shape) != (n, m):
            raise ValueError(f"y must have shape (n, m) = ({n}, {m}) to match A of shape {tuple(self.A.shape)}; got {getattr(self.y, 'shape', None)}")
        self.event_shape = tuple(int(v) for v in self.event_shape)
        if math.prod(self.event_shape) != d:
            raise ValueError(f"event_shape {self.event_shape} has {math.prod(self.event_shape)} entries, A acts on D = {d}")
        self.sigma_y = check_positive(self.sigma_y, "sigma_y")

    @property
    def n(self) -> int:
        return int(self.A.shape[0])


def mask_corruption(x: torch.Tensor, mask: torch.Tensor, sigma_y: float = 1e-2, *, generator: torch.Generator | None = None) -> LinearCorruption:
    """Masked observations of ``x (n, *event_shape)``: ``y = mask * (x + sigma_y z)``, ``A_i = diag(mask_i)``.

    ``mask`` is ``(n, *event_shape)`` of 0/1 (or bool); the noise comes from ``generator`` (none: no noise added,
    ``sigma_y`` is then the assumed level of already-noisy observations).
    """
    check_state(x, "x")
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(x.shape):
        raise ValueError(f"mask must be a 0/1 tensor of the data's shape {tuple(x.shape)}; got {getattr(mask, 'shape', type(mask).__name__)}")
    m = mask.to(torch.float64)
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("mask must hold only 0 (missing) and 1 (observed)")
    n, d = x.shape[0], x[0].numel()
    flat = x.reshape(n, d).to(torch.float64)
    mf = m.reshape(n, d)
    if generator is not None:
        flat = flat + sigma_y * torch.randn(flat.shape, generator=generator, dtype=torch.float64)
    A = torch.diag_embed(mf)
    return LinearCorruption(mf * flat, A, sigma_y, tuple(x.shape[1:]))


def gaussian_em(corruption: LinearCorruption, iterations: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """A Gaussian prior ``N(mu, Sigma)`` fitted to linear observations by closed-form EM (DiEM's initialization).

    E step: ``Sigma_i = (Sigma^-1 + A_i^T A_i / sigma_y^2)^-1``, ``m_i = Sigma_i (Sigma^-1 mu + A_i^T y_i / sigma_y^2)``;
    M step: ``mu = mean m_i``, ``Sigma = mean (Sigma_i + (m_i - mu)(m_i - mu)^T)``. Starts at ``N(0, I)``.
    Returns ``(mu (D,), Sigma (D, D))`` in float64.
    """
    check_int(iterations, "iterations")
    A, y = corruption.A.to(torch.float64), corruption.y.to(torch.float64)
    d = A.shape[2]
    mu, cov = torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)
    for _ in range(iterations):
        means, covs = _gaussian_posterior(mu, cov, A, y, corruption.sigma_y)
        mu = means.mean(0)
        dev = means - mu
        cov = covs.mean(0) + dev.T @ dev / means.shape[0]
        cov = 0.5 * (cov + cov.T) + 1e-9 * torch.eye(d, dtype=torch.float64)
    return mu, cov


def _gaussian_posterior(mu, cov, A, y, sigma_y):
    prec = torch.linalg.inv(cov)
    post_prec = prec + A.mT @ A / sigma_y**2
    post_cov = torch.linalg.inv(post_prec)
    post_cov = 0.5 * (post_cov + post_cov.mT)
    rhs = (prec @ mu)[None, :] + (A.mT @ y[..., None])[..., 0] / sigma_y**2
    return (post_cov @ rhs[..., None])[..., 0], post_cov


class PosteriorDenoiser:
    """``x0`` prediction of ``p(x0 | x_t, y)`` by moment matching (MMPS; Rozet et al. 2024): a model for :func:`sdeflow.sample`.

    ``E[x0 | xt, y] ~ h + s^2 J^T A^T u`` with ``(sigma_y^2 I + s^2 A J A^T) u = y - A h``, ``J = dh/dxt``,
    ``u`` from ``cg_iters`` conjugate-gradient iterations (each one vector-Jacobian product).

    A learned ``J`` need not be a covariance (symmetric, positive). Two tests that every covariance passes
    keep such a ``J`` from throwing samples far away: a conjugate-gradient direction ``p`` along which
    ``C``'s own curvature ``(A^T p)^T C (A^T p)`` is not positive ends that sample's solve, and a
    correction whose observed part ``A C A^T u`` is longer than the residual ``y - A h`` (impossible for a
    covariance and an exact solve) is shortened to that length, its direction kept (counted in
    ``fallbacks``).

    Args:
        model: the prior model ``model(x_t, t)`` with ``prediction``.
        process: its process.
        y: ``(batch, m)`` observations of the batch being sampled; ``A``: ``(batch, m, D)``.
        sigma_y: observation noise.
        cg_iters: conjugate-gradient iterations (``m`` makes the solve exact).
        prior_var: ``(D,)`` prior variances ``v`` (e.g. the Gaussian EM fit's diagonal): the covariance used above
            ``max_level``.
        max_level: the noise level ``s`` above which ``diag(s^2 v / (s^2 + v))`` replaces Tweedie's ``s^2 J``.
    """

    prediction = "x0"

    def __init__(self, model, process: DiffusionProcess, y: torch.Tensor, A: torch.Tensor, sigma_y: float, *, cg_iters: int = 8,
                 prior_var: torch.Tensor | None = None, max_level: float | None = None) -> None:
        self.model, self.process, self.y, self.A = model, process, y, A
        self.sigma_y = check_positive(sigma_y, "sigma_y")
        self.cg_iters = check_int(cg_iters, "cg_iters")
        # Above max_level, Tweedie's s^2 J is a difference of O(1/alpha) terms that a learned network does not cancel
        # (measured: DiEM diverged in 8-D without this); there Cov[x0 | xt] ~ diag(s^2 v / (s^2 + v)), v the prior's
        # variances, which is also the limit of the exact covariance as s grows.
        if (prior_var is None) != (max_level is None):
            raise ValueError("prior_var and max_level go together (the covariance used above max_level)")
        self.prior_var = None if prior_var is None else torch.as_tensor(prior_var, dtype=torch.float64).reshape(-1)
        self.max_level = None if max_level is None else check_positive(max_level, "max_level")
        self._fallbacks: torch.Tensor | int = 0  # (sample, call) pairs shortened, a tensor on the state's device once counted
        self.kind = getattr(model, "prediction", None)
        if self.kind is None:
            raise ValueError("the prior model must carry its prediction kind (model.prediction)")

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        n = x_t.shape[0]
        t64 = t.to(torch.float64).expand(n) if t.ndim else t.to(torch.float64).expand(n)
        alpha = expand_to(self.process.alpha(t64), x_t).to(x_t.dtype)
        s2 = (self.process.noise_level(t64) ** 2).to(x_t.dtype)
        A = self.A.to(x_t.dtype)
        y = self.y.to(x_t.dtype)
        with torch.enable_grad():
            xt = (x_t / alpha).detach().requires_grad_(True)
            out = self.model(alpha * xt, t64.to(x_t.dtype))
            h = to_x0_eps(self.kind, out.to(x_t.dtype), alpha * xt, t64, self.process)[0].reshape(n, -1)

            def vjp(v: torch.Tensor) -> torch.Tensor:  # J^T v, (n, D)
                return torch.autograd.grad(h, xt, v, retain_graph=True)[0].reshape(n, -1)

            high = None
            if self.max_level is not None:
                high = (s2 > self.max_level**2)[:, None]
                v = self.prior_var.to(x_t.dtype)
                diag = s2[:, None] * v / (s2[:, None] + v)

            def cov(w: torch.Tensor) -> torch.Tensor:  # Cov[x0 | xt] w, (n, D)
                out = s2[:, None] * vjp(w)
                return out if high is None else torch.where(high, diag * w, out)

            r = y - torch.einsum("nmd,nd->nm", A, h.detach())
            corr = self._correction(cov, A, r)
            # For any covariance C >= 0 the observed part of the exact correction, A C A^T (sigma_y^2 + A C A^T)^-1 r, is
            # shorter than the residual r. A learned J can break this bound (measured: in 8-D, 4 % of DiEM's posterior
            # samples went to |x| ~ 1e2-1e6 from such steps at noise levels 0.5-1.5); such a correction keeps its direction,
            # which carries the data's structure, and is shortened to meet the bound. (Replacing it by the Gaussian fit's
            # diagonal covariance's correction instead fixed the 8-D case as well but lost the manifold protocol's curve:
            # Sinkhorn divergence 1.21 against 0.97 after 3 rounds.) The bound is exact for a solve run to convergence
            # (cg_iters >= m); a truncated solve can break it with a valid C too, and is then shortened as well.
            # ``fallbacks`` counts the (sample, call) pairs that were shortened.
            moved, bound = torch.einsum("nmd,nd->nm", A, corr).norm(dim=1), r.norm(dim=1)
            bad = ~(moved <= bound)
            scale = (bound / moved.clamp_min(1e-30)).nan_to_num(0.0)
            corr = torch.where(bad[:, None], corr * scale[:, None], corr)
            self._fallbacks = self._fallbacks + bad.sum()  # kept on the device: no host sync per model call
        return (h.detach() + corr.detach()).reshape(x_t.shape)

    @property
    def fallbacks(self) -> int:
        """How many (sample, call) pairs had their correction shortened by the covariance bound (see :meth:`__call__`)."""
        return int(self._fallbacks)

    def _correction(self, cov: Callable[[torch.Tensor], torch.Tensor], A: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``C A^T u`` with ``(sigma_y^2 I + A C A^T) u = r`` by conjugate gradients, ``C`` applied by ``cov``; ``(n, D)``."""

        def op(u: torch.Tensor) -> torch.Tensor:  # (sigma_y^2 + A C A^T) u, (n, m)
            return self.sigma_y**2 * u + torch.einsum("nmd,nd->nm", A, cov(torch.einsum("nmd,nm->nd", A, u)))

        u = torch.zeros_like(r)
        p, rr = r.clone(), (r * r).sum(1)
        for _ in range(min(self.cg_iters, r.shape[1])):
            ap = op(p)
            denom = (p * ap).sum(1)
            # p^T (sigma_y^2 + A C A^T) p >= sigma_y^2 |p|^2 for every covariance C >= 0. A learned J need not be symmetric
            # positive: a direction where C's own curvature (A^T p)^T C (A^T p) is not positive ends that sample's solve
            # (testing denom > 0 alone let curvatures just above 0 through, with steps up to 1 / sigma_y^2).
            ok = denom - self.sigma_y**2 * (p * p).sum(1) > 0
            step = torch.where(ok, rr / denom.clamp_min(1e-30), torch.zeros_like(rr))
            u = u + step[:, None] * p
            r = r - step[:, None] * ap
            rr_new = (r * r).sum(1)
            p = torch.where(ok[:, None], r + (rr_new / rr.clamp_min(1e-30))[:, None] * p, torch.zeros_like(p))
            rr = rr_new
        return cov(torch.einsum("nmd,nm->nd", A, u))


def posterior_sample(model, process: DiffusionProcess, corruption: LinearCorruption, *, seed: int = 0, solver: str = "euler_ancestral",
                     steps: int = 64, batch_size: int = 1024, cg_iters: int = 8, progress: bool = False,
                     prior_var: torch.Tensor | None = None, max_level: float | None = None,
                     stats: dict[str, Any] | None = None) -> torch.Tensor:
    """One posterior sample per observation, ``(n, *event_shape)``, with :class:`PosteriorDenoiser` and :func:`sdeflow.sample`.

    Sample ``i`` starts from the prior noise of seed ``seed + i``, so it does not depend on the batch. A dict
    ``stats`` receives ``fallback_share``: the share of (sample, model call) pairs whose correction was shortened
    because the learned covariance failed the covariance bound (see :class:`PosteriorDenoiser`).
    """
    from ..sample import sample

    out = []
    n = corruption.n
    bar = None
    if progress:
        from .._utils import progress_bar

        bar = progress_bar(total=n, desc="posterior samples", unit="sample", dynamic_ncols=True)
    fallbacks = calls = 0
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        x = process.prior_sample((stop - start, *corruption.event_shape), seeds=seed + start)
        den = PosteriorDenoiser(model, process, corruption.y[start:stop], corruption.A[start:stop], corruption.sigma_y, cg_iters=cg_iters,
                                prior_var=prior_var, max_level=max_level)
        with torch.no_grad():
            res = sample(den, process, x, prediction="x0", solver=solver, steps=steps, seed=seed + start)
        out.append(res.samples)
        fallbacks, calls = fallbacks + den.fallbacks, calls + res.nfe * (stop - start)
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    if stats is not None:
        stats["fallback_share"] = fallbacks / max(calls, 1)
    return torch.cat(out)


@dataclass
class EMRound:
    """One round of :class:`ExpectationMaximization`: its index, the posterior samples, CPU seconds, the trainer's result."""

    round: int
    samples: torch.Tensor
    seconds: float
    result: Any = None
    metrics: dict[str, Any] = field(default_factory=dict)


class ExpectationMaximization:
    """DiEM (Rozet et al. 2024): a diffusion prior from linear observations by Monte Carlo EM.

    Round 0: a Gaussian prior by closed-form EM (:func:`gaussian_em`) and exact Gaussian posterior
    samples (seed ``seed``). Round ``k >= 1``: posterior samples from the model of round ``k - 1``
    (:func:`posterior_sample`), then :class:`~sdeflow.training.Trainer` with ``objective`` for
    ``config.steps`` steps on them, continuing from the current weights (each round with its own
    seed ``seed + k`` and its own run folder ``out_dir/round_k``, so every round checkpoints and resumes
    as any training run; with ``resume=True`` a finished round is read back from its checkpoint instead
    of being re-run and an unfinished one resumes exactly).

    Args:
        model: a :class:`~sdeflow.training.DiffusionModel` (trained in place).
        objective: usually :class:`~sdeflow.training.DenoisingScoreMatching`.
        corruption: the observations.
        config: the :class:`~sdeflow.training.TrainConfig` of one round.
        rounds: EM rounds after the Gaussian initialization.
        solver, steps, cg_iters: the posterior sampler's.
        callback: ``callback(round: EMRound)`` after each round (e.g. a divergence to clean data).
    """

    def __init__(self, model, objective: Objective, corruption: LinearCorruption, config, *, rounds: int = 4,
                 out_dir: str | Path | None = None, solver: str = "euler_ancestral", steps: int = 64, cg_iters: int = 8,
                 gaussian_iterations: int = 16, callback: Callable[[EMRound], None] | None = None, progress: bool = True) -> None:
        if not isinstance(corruption, LinearCorruption):
            raise TypeError(f"corruption must be a LinearCorruption (see mask_corruption); got {type(corruption).__name__}")
        if tuple(corruption.event_shape) != tuple(getattr(model.net, "event_shape", corruption.event_shape)):
            raise ValueError(f"the model's event shape {model.net.event_shape} is not the corruption's {corruption.event_shape}")
        self.model, self.objective, self.corruption, self.config = model, objective, corruption, config
        self.rounds = check_int(rounds, "rounds", minimum=0)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.solver, self.steps, self.cg_iters = solver, check_int(steps, "steps"), check_int(cg_iters, "cg_iters")
        self.gaussian_iterations = check_int(gaussian_iterations, "gaussian_iterations")
        self.callback = callback
        self.progress = progress
        self.max_level_factor = 2.0  # the posterior step's Tweedie covariance is used below 2 prior standard deviations
        self.prior_var: torch.Tensor | None = None

    def gaussian_round(self) -> EMRound:
        """Round 0: closed-form Gaussian EM and exact posterior samples of it."""
        import time

        tic = time.process_time()
        c = self.corruption
        mu, cov = gaussian_em(c, self.gaussian_iterations)
        self.prior_var = cov.diagonal().clamp_min(1e-12)  # the covariance of later rounds' posterior step at high noise
        means, covs = _gaussian_posterior(mu, cov, c.A.to(torch.float64), c.y.to(torch.float64), c.sigma_y)
        gen = torch.Generator().manual_seed(int(self.config.seed))
        z = torch.randn(means.shape, generator=gen, dtype=torch.float64)
        chol = torch.linalg.cholesky(covs + 1e-12 * torch.eye(covs.shape[-1], dtype=torch.float64))
        x = means + (chol @ z[..., None])[..., 0]
        x = x.reshape((c.n, *c.event_shape)).to(torch.float32)
        return EMRound(0, x, time.process_time() - tic)

    def fit(self, *, resume: bool = False) -> list[EMRound]:
        """Run every round; returns their records (round 0 included)."""
        import time
        from dataclasses import replace

        from .trainer import Trainer

        done = [self.gaussian_round()]
        if self.callback is not None:
            self.callback(done[0])
        samples = done[0].samples
        for k in range(1, self.rounds + 1):
            tic = time.process_time()
            cfg = replace(self.config, seed=int(self.config.seed) + k)
            folder = None if self.out_dir is None else self.out_dir / f"round_{k}"
            finished = resume and folder is not None and _finished(folder, cfg.steps)
            trainer = Trainer(self.model, self.objective, samples, config=cfg, out_dir=folder)
            if finished:
                result = _load_round(trainer, folder)
            else:
                partial = resume and folder is not None and (folder / "checkpoints").exists()
                result = trainer.fit(resume=partial, overwrite=not partial and folder is not None and folder.exists())
            ema = result.ema_model
            stats: dict[str, Any] = {}
            if k < self.rounds:
                samples = posterior_sample(ema, self.model.process, self.corruption, seed=int(self.config.seed) + 1000 * k,
                                           solver=self.solver, steps=self.steps, cg_iters=self.cg_iters, progress=self.progress,
                                           prior_var=self.prior_var, max_level=self.max_level_factor * float(self.prior_var.mean().sqrt()),
                                           stats=stats)
            rec = EMRound(k, samples, time.process_time() - tic, result, metrics=stats)
            if self.callback is not None:
                self.callback(rec)
            done.append(rec)
        return done


def _finished(folder: Path, steps: int) -> bool:
    from .checkpoint import read_checkpoint

    try:
        return read_checkpoint(folder).step >= steps
    except (FileNotFoundError, ValueError):
        return False


def _load_round(trainer, folder: Path):
    """A finished round's result from its checkpoint (weights into the trainer's model; EMA as a copy)."""
    import copy

    from .checkpoint import read_checkpoint
    from .trainer import TrainResult

    ckpt = read_checkpoint(folder)
    trainer.model.net.load_state_dict(ckpt.weights(ema=False))
    ema = copy.deepcopy(trainer.model)
    ema.net.load_state_dict(ckpt.weights(ema=True))
    return TrainResult(model=trainer.model.eval(), ema_model=ema.eval(), step=ckpt.step, checkpoint=ckpt.path)
