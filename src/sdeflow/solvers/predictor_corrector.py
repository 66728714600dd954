"""Predictor-corrector sampling (Song et al. 2021, Algorithms 2-5): a reverse-SDE predictor and
Langevin corrector steps at every noise level."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._utils import check_int, check_positive
from .base import Solver, StepResult, register

__all__ = ["PredictorCorrector", "helmert_normals"]


def helmert_normals(noise, t0: float, t1: float, m: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Split the step's Brownian path into the total increment and ``m`` independent standard normals.

    With ``m + 1`` equal sub-increments ``dW_k`` of variance ``delta`` (from the seed's Brownian
    tree), the Helmert contrasts ``c_j = (sum_{k<j} dW_k - j dW_j) / sqrt(j (j+1) delta)``,
    ``j = 1..m``, are iid ``N(0, I)`` and independent of the total ``sum_k dW_k`` (an orthogonal
    transform of iid Gaussians). Returns ``(W(t1) - W(t0), [c_1..c_m])``.
    """
    if m == 0:
        return noise(t0, t1), []
    knots = [t0 + (t1 - t0) * k / (m + 1) for k in range(m + 2)]
    knots[-1] = t1
    inc = [noise(knots[k], knots[k + 1]) for k in range(m + 1)]
    delta = abs(t1 - t0) / (m + 1)
    normals, partial = [], inc[0].clone()
    for j in range(1, m + 1):
        normals.append((partial - j * inc[j]) / math.sqrt(j * (j + 1) * delta))
        partial = partial + inc[j]
    return partial, normals


@register
@dataclass(frozen=True)
class PredictorCorrector(Solver):
    r"""Song et al. (2021) predictor-corrector sampler on any Gaussian path.

    At each grid time ``t0`` (going to ``t1 < t0``):

    * ``n_corrector`` Langevin steps (Algorithms 4-5): ``g = score(x, t0)``,
      ``x <- x + eps_L g + sqrt(2 eps_L) z`` with ``eps_L = 2 a (snr sigma_0)^2`` and
      ``a = (alpha_0/alpha_1)^2`` (``1 - beta_i`` of DDPM, 1 for VE). Song et al. take
      ``eps_L = 2 a (snr ||z|| / ||g||)^2`` with norms averaged over the batch; here ``||z||`` is its
      mean ``sqrt(d)`` and ``||g||`` the root-mean-square bound of the score, ``sqrt(d) / sigma_0``
      (the noised marginal's Fisher information is at most ``d / sigma^2``). The step is then
      the same for every sample, whatever its batch, and equals Song's where the noise dominates the
      data (``sigma_0`` large against ``alpha_0`` times the data's spread), the levels where the
      corrector matters; below, it is smaller than Song's, never larger. Per-sample norms instead
      explode where the score is near zero (a 1-D Gaussian: a third of the samples beyond five
      standard deviations) and overdisperse the result;
    * the predictor: ``"reverse_diffusion"`` (Algorithm 2/3: with the forward transition
      ``x_{t0} = c x_{t1} + s z``, ``c = alpha_0/alpha_1``, ``s^2 = sigma_0^2 - c^2 sigma_1^2``:
      ``x <- (2 - c) x + s^2 score + s z``) or ``"euler_maruyama"`` (the reverse SDE, eta = 1).

    The last step to ``t = 0`` returns the corrected ``x0_hat`` (the denoising step). Noise comes
    from the seed's Brownian path (:func:`helmert_normals`). ``1 + n_corrector`` calls per step.
    """

    name = "pc"
    needs = "denoiser"
    stochastic = True
    weak_order = 1.0
    description = "predictor-corrector (Song et al.): reverse-diffusion/EM predictor + Langevin corrector"

    predictor: str = "reverse_diffusion"
    snr: float = 0.16
    n_corrector: int = 1

    def __post_init__(self) -> None:
        if self.predictor not in ("reverse_diffusion", "euler_maruyama"):
            raise ValueError(f"predictor must be 'reverse_diffusion' or 'euler_maruyama'; got {self.predictor!r}")
        check_positive(self.snr, "snr")
        check_int(self.n_corrector, "n_corrector", minimum=0)

    @property
    def calls_per_step(self) -> int:  # type: ignore[override]
        return 1 + self.n_corrector

    def stochasticity(self) -> float:
        return 1.0

    def init(self, problem, ts, x):
        p = problem.process
        tt = torch.tensor(ts, dtype=torch.float64)
        alpha, sigma = p.alpha(tt).tolist(), p.sigma(tt).tolist()
        return (0, tuple(alpha), tuple(sigma))

    def step(self, problem, t0, t1, x, state, noise):
        i, alpha, sigma = state
        a0, s0, a1, s1 = alpha[i], sigma[i], alpha[i + 1], sigma[i + 1]
        total, normals = helmert_normals(noise, t0, t1, self.n_corrector)
        den = problem.denoiser
        lang = (a0 / a1) ** 2 if a1 > 0 else 1.0
        step = 2.0 * lang * (self.snr * s0) ** 2  # Song's step with ||g|| = sqrt(d)/sigma0, ||z|| = sqrt(d)
        for z in normals:  # Langevin corrector at t0: score = -eps/sigma0
            g = den(x, t0).eps * (-1.0 / s0)
            x = x + step * g + math.sqrt(2.0 * step) * z
        if s1 <= 0.0:
            d = den(x, t0)
            return StepResult(a1 * d.x0, (i + 1, alpha, sigma), d.x0)
        if self.predictor == "euler_maruyama":
            drift, d = problem.drift_and_denoised(t0, x)
            x1 = x + (t1 - t0) * drift + problem.diffusion_times(t0, x, total)
            return StepResult(x1, (i + 1, alpha, sigma), d.x0)
        d = den(x, t0)
        c = a0 / a1
        s2 = max(s0 * s0 - c * c * s1 * s1, 0.0)
        # score = -eps/sigma0; s z with z = dW/sqrt|dt|
        x1 = (2.0 - c) * x - (s2 / s0) * d.eps + math.sqrt(s2 / abs(t1 - t0)) * total
        return StepResult(x1, (i + 1, alpha, sigma), d.x0)
