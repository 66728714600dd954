"""DPM-Solver++ multistep (Lu et al. 2022b): 2M, 3M and their SDE variants, on the exponential kernel."""

from __future__ import annotations

from dataclasses import dataclass

from .._utils import check_nonnegative
from ._exponential import ExponentialMultistep, check_order, data_step
from .base import register

__all__ = ["DPMSolverPP", "DPMSolverPP2M", "DPMSolverPP3M", "DPMSolverPP2MSDE", "DPMSolverPP3MSDE", "DPMPP2M", "SOLVER_TYPES"]

SOLVER_TYPES = ("heun", "midpoint")
"""How a two-node step weights the linear term: ``heun`` (exact ``phi_2``) or ``midpoint`` (diffusers' default)."""


@register
@dataclass(frozen=True)
class DPMSolverPP(ExponentialMultistep):
    r"""DPM-Solver++ multistep in data prediction, any order 1-3, ODE (``eta = 0``) or SDE (``eta > 0``).

    Step ``s -> t`` with ``h = lambda_t - lambda_s`` (half log-SNR), the x0 predictions
    ``m_0, m_1, ...`` of the last ``k`` steps at ``lambda_s = lambda_0 > lambda_1 > ...`` and
    ``c = 1 + eta^2``:

        ``x_t = (sigma_t/sigma_s) e^{-eta^2 h} x_s + alpha_t c int_0^h e^{-c(h-u)} P(u) du
        + sigma_t sqrt(1 - e^{-2 eta^2 h}) z``

    where ``P`` is the polynomial through ``(lambda_j - lambda_s, m_j)``, integrated exactly with
    phi-functions (Lu et al. 2022b, eq. 9 and Algorithm 2; :mod:`._exponential`). ``k = 2`` is
    DPM-Solver++(2M) with the exact ``phi_2`` weight of the linear term (diffusers'
    ``solver_type="heun"``), ``k = 3`` is DPM-Solver++(3M) with the exact ``phi_3`` weight of the
    quadratic term; ``eta = 1`` gives DPM-Solver++(2M/3M) SDE.

    ``solver_type="midpoint"`` (diffusers' default ``solver_type``, k-diffusion's ``sample_dpmpp_2m``
    and ``sample_dpmpp_2m_sde``) weights the divided difference ``D_1 = (m_0 - m_1)/r``,
    ``r = h_prev/h``, by half the constant term's weight instead of the exact ``phi_2`` moment
    (Lu et al. 2022b, Algorithm 2, the form their code calls "midpoint"):

        ``x_t = (sigma_t/sigma_s) e^{-eta^2 h} x_s + alpha_t (1 - e^{-c h}) (m_0 + D_1/2) + noise``.

    Both flavours are second order and agree up to ``O(h^3)`` per step; ``solver_type`` changes only
    steps with two nodes (all of 2M after its warm-up; the second step of 3M, as in diffusers). Warm-up steps use fewer nodes; the
    step to ``sigma = 0`` is the denoising step ``x = x0_hat``. The Brownian increment of the step
    (``z = dW/sqrt|dt|``) makes the noise a function of the seed's Brownian path.

    ODE order ``k``; one model call per step.
    """

    name = "dpm_solver_pp"
    mode = "x0"
    description = "DPM-Solver++ multistep (data prediction), order 1-3; eta>0: SDE variant"

    order: int = 2
    eta: float = 0.0
    solver_type: str = "heun"

    def __post_init__(self) -> None:
        check_order(self.order, self.name, 3)
        check_nonnegative(self.eta, "eta")
        if self.solver_type not in SOLVER_TYPES:
            raise ValueError(f"solver_type must be one of {list(SOLVER_TYPES)}; got {self.solver_type!r}")

    @property
    def ode_order(self) -> int | None:  # type: ignore[override]
        return self.order if self.eta == 0 else None

    @property
    def weak_order(self) -> float | None:  # type: ignore[override]
        return 1.0 if self.eta > 0 else None

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.eta > 0

    def stochasticity(self) -> float:
        return self.eta

    def weights(self, tab, i, k):
        a, b, std = data_step(tab, i, list(range(i, i - k, -1)), self.eta)
        if k != 2 or self.solver_type == "heun" or tab.sigma[i + 1] <= 0.0:
            return a, b, std
        # Midpoint: the constant term's weight W = b_0 + b_1 = alpha_t (1 - e^{-c h}) (exact), and
        # W (m_0 + (m_0 - m_1)/(2 r)) = W (1 + 1/(2r)) m_0 - W/(2r) m_1 with r = h_prev / h.
        r = (tab.lam[i] - tab.lam[i - 1]) / (tab.lam[i + 1] - tab.lam[i])
        total = b[0] + b[1]
        return a, [total * (1.0 + 0.5 / r), -total * 0.5 / r], std


def _variant(cls_name: str, name: str, order: int, eta: float, description: str,
             solver_type: str = "heun") -> type[DPMSolverPP]:
    """A registered :class:`DPMSolverPP` with other defaults (``order``, ``eta``, ``solver_type``), under its usual name."""
    body = {
        "__doc__": f"{description}: :class:`DPMSolverPP` with ``order = {order}``, ``eta = {eta:g}``, "
                   f"``solver_type = {solver_type!r}``.",
        "__annotations__": {"order": int, "eta": float, "solver_type": str},
        "__module__": __name__,
        "name": name,
        "description": description,
        "order": order,
        "eta": eta,
        "solver_type": solver_type,
    }
    return register(dataclass(frozen=True)(type(cls_name, (DPMSolverPP,), body)))


DPMSolverPP2M = _variant("DPMSolverPP2M", "dpm_solver_pp_2m", 2, 0.0, "DPM-Solver++(2M), second order multistep ODE")
DPMSolverPP3M = _variant("DPMSolverPP3M", "dpm_solver_pp_3m", 3, 0.0, "DPM-Solver++(3M), third order multistep ODE")
DPMSolverPP2MSDE = _variant("DPMSolverPP2MSDE", "dpm_solver_pp_2m_sde", 2, 1.0,
                            "DPM-Solver++(2M) SDE (eta=1 reverse SDE), Brownian-tree noise")
DPMSolverPP3MSDE = _variant("DPMSolverPP3MSDE", "dpm_solver_pp_3m_sde", 3, 1.0,
                            "DPM-Solver++(3M) SDE (eta=1 reverse SDE), Brownian-tree noise")
DPMPP2M = _variant("DPMPP2M", "dpmpp_2m", 2, 0.0,
                   "DPM-Solver++(2M) midpoint: k-diffusion's sample_dpmpp_2m, diffusers' default", "midpoint")
