"""Exact likelihoods through the probability-flow ODE and the instantaneous change of variables.

The probability-flow ODE ``dx/dt = v(t, x) = f(t) x - g(t)^2/2 score(x, t)`` (Song et al. 2021,
eq. 13) carries ``p_t`` to ``p_s``; along a solution the log-density obeys the instantaneous change
of variables ``d log p_t(x_t) / dt = -div v(t, x_t)`` (Chen et al. 2018, Theorem 1). Integrating
forward from ``t_start`` to ``T``:

    log p_{t_start}(x) = log p_T(x_T) + int_{t_start}^{T} div v(t, x_t) dt        (Song et al. 2021, eq. 39)

with ``p_T`` replaced by the prior ``N(0, sigma(T)^2 I)``. The velocity comes from any model and
parameterization through :class:`sdeflow.models.Denoiser` (``v = d_alpha x0_hat + d_sigma eps_hat``).
The augmented state ``(x, log-density change)`` is integrated by the adaptive Dormand-Prince 5(4)
method of :func:`sdeflow.sdes.integrate.odeint` at tolerances ``rtol``, ``atol`` (error measured as the
RMS over the batch); ``div v`` is exact (autograd, ``D`` backward passes per
evaluation) or a Hutchinson-Skilling estimate with ``K`` probes held fixed along the path, so each
probe gives an unbiased estimate of the integral and their spread gives a standard error.

``t_start > 0`` (default ``1e-5 T``, the choice of Song et al. for VP) because the model cannot be
evaluated at ``t = 0``; the result is the density of ``x_{t_start}``, which differs from ``p_0`` by
``O(sigma(t_start)^2)`` relative to the data's local scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .._threads import with_threads
from .._utils import check_int, check_positive, progress_bar
from ..models.parameterization import check_prediction
from ..processes.base import DiffusionProcess
from ..sdes.integrate import odeint
from .discrete import bits_per_dim, check_data, dequantize, summarize
from .divergence import PROBES, divergence_exact, divergence_hutchinson, make_probes

__all__ = ["METHODS", "LikelihoodResult", "log_likelihood", "resolve_t_start"]

METHODS: tuple[str, ...] = ("exact", "hutchinson")


@dataclass(frozen=True)
class LikelihoodResult:
    """Log-likelihoods from :func:`log_likelihood`, one per data point (nats).

    Attributes:
        log_prob: ``(n,)`` float64, ``log p_{t_start}(x)`` in nats (of the dequantized point when
            ``bin_width`` is set: then ``log_prob + D log bin_width`` bounds the log-probability of
            the cell from below).
        stderr: ``(n,)`` standard error of each value from the Hutchinson probes (0 for ``exact``;
            NaN for a single probe).
        prior_log_prob: ``(n,)`` the prior's log-density at ``x_T`` (``log N(x_T; 0, sigma(T)^2 I)``
            by default).
        delta_log_prob: ``(n,)`` ``int div v dt`` (per-probe mean).
        x_T: ``(n, *event)`` the ODE's end points.
        dim: ``D``, the number of dimensions per point.
        nfe: model calls (forward passes) made, one per evaluation of the ODE's right-hand side.
        method, n_probes, probe, rtol, atol, t_start, bin_width: the settings.
    """

    log_prob: torch.Tensor
    stderr: torch.Tensor
    prior_log_prob: torch.Tensor
    delta_log_prob: torch.Tensor
    x_T: torch.Tensor
    dim: int
    nfe: int
    method: str
    n_probes: int
    probe: str | None
    rtol: float
    atol: float
    t_start: float
    bin_width: float | None

    @property
    def bits_per_dim(self) -> torch.Tensor:
        """``(n,)`` bits per dimension (with the ``D log bin_width`` term for discrete data)."""
        return bits_per_dim(self.log_prob, self.dim, self.bin_width)

    @property
    def nats_per_dim(self) -> torch.Tensor:
        """``(n,)`` ``log_prob / D``."""
        return self.log_prob / self.dim

    def summary(self, level: float = 0.95) -> dict[str, float]:
        """Mean nats and bits per dimension over the points, with normal intervals at ``level``.

        The standard error of the mean combines the spread over data points with the probe noise:
        ``sqrt(var(log_prob) / n)`` when ``n > 1`` (the probe noise is inside that spread), else the
        point's own Hutchinson standard error.
        """
        out = summarize(self.log_prob, self.stderr, self.dim, self.bin_width, level, "nats")
        out["nats_per_dim"] = out["nats"] / self.dim
        out["nfe"] = self.nfe
        return out


def resolve_t_start(process: DiffusionProcess, t_start: float | None) -> float:
    """``t_start`` checked to lie in ``(0, T)``; ``None`` gives ``1e-5 T``."""
    if t_start is None:
        return 1e-5 * float(process.T)
    t_start = check_positive(t_start, "t_start")
    if t_start >= float(process.T):
        raise ValueError(f"t_start must lie in (0, T) = (0, {process.T}); got {t_start}")
    return t_start


@with_threads
def log_likelihood(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    process: DiffusionProcess,
    x: torch.Tensor,
    *,
    prediction: str,
    method: str = "exact",
    n_probes: int = 4,
    probe: str = "rademacher",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    t_start: float | None = None,
    bin_width: float | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    max_steps: int = 10_000,
    prior: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
) -> LikelihoodResult:
    """``log p(x)`` of data under a model and process, through the probability-flow ODE (nats).

    Args:
        model: callable ``(x, t) -> prediction`` (see :class:`sdeflow.models.Denoiser`).
        process: the :class:`~sdeflow.processes.DiffusionProcess` the model was trained for.
        x: data ``(n, *event_shape)``, float32 or float64 (the ODE runs in this dtype).
        prediction: the model's kind: ``eps``, ``x0``, ``v``, ``score`` or ``velocity``.
        method: ``exact`` (autograd divergence, ``D`` backward passes per evaluation: small ``D``)
            or ``hutchinson`` (``n_probes`` vector-Jacobian products per evaluation).
        n_probes: probes per point for ``hutchinson`` (>= 2 to report a standard error).
        probe: ``rademacher`` (default, lower variance) or ``gaussian``.
        rtol, atol: tolerances of the adaptive Dormand-Prince solver (default ``1e-5``).
        t_start: start of the integration (default ``1e-5 T``).
        bin_width: lattice spacing of discrete data in model units: ``x`` is dequantized by uniform
            noise and bits per dimension include ``D log bin_width``. ``None``: continuous data.
        seed: point ``i`` (of the whole ``x``) uses seed ``seed + i`` for its probes and
            dequantization noise, so results do not depend on ``batch_size``.
        batch_size: points per ODE solve (default all at once); each batch has its own steps.
        max_steps: cap on ODE steps per batch.
        prior: log-density of ``x_T``, ``(b, *event) -> (b,)`` (default ``process.prior_log_prob``,
            ``N(0, sigma(T)^2 I)``; pass the exact ``p_T`` of a known target to separate the ODE's
            error from the prior's, e.g. ``lambda z: target.marginal_log_prob(z, process.T, process)``).
        progress: tqdm bar over the points.
        threads: torch CPU threads for this call (``None``: ``SDEFLOW_THREADS`` or 1, or the setting of an
            enclosing sdeflow call; an integer, ``"auto"`` or ``"torch"``; docs/threads.md).

    Returns:
        :class:`LikelihoodResult` (``log_prob`` per point, ``bits_per_dim``, ``summary()``).
    """
    x = check_data(x, "x")
    if not isinstance(process, DiffusionProcess):
        raise TypeError(f"process must be a sdeflow.processes.DiffusionProcess; got {type(process).__name__}")
    prediction = check_prediction(prediction)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {list(PROBES)}; got {probe!r}")
    n_probes = check_int(n_probes, "n_probes")
    if prior is not None and not callable(prior):
        raise TypeError(f"prior must be a callable x_T -> log-density (b,); got {type(prior).__name__}")
    prior_fn = prior
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    t0 = resolve_t_start(process, t_start)
    T = float(process.T)
    seed = check_int(seed, "seed", minimum=0)
    if prediction in ("eps", "score") and not float(process.alpha(T)) > 0:
        raise ValueError(
            f"alpha(T) = 0 for {process!r}: an {prediction!r} model cannot give the velocity at t = T; "
            f"end the process below 1 (e.g. {type(process).__name__}(T=0.999)) or use a 'velocity', 'x0' or 'v' model"
        )
    n = x.shape[0]
    batch_size = n if batch_size is None else check_int(batch_size, "batch_size")
    max_steps = check_int(max_steps, "max_steps")
    event = tuple(x.shape[1:])
    D = math.prod(event)
    seeds_all = torch.arange(seed, seed + n, dtype=torch.int64)
    if bin_width is not None:
        x = dequantize(x, bin_width, seeds_all)

    pf = process.probability_flow_ode(model, prediction)
    k = n_probes if method == "hutchinson" else 1
    outs: dict[str, list[torch.Tensor]] = {key: [] for key in ("logp", "se", "prior", "delta", "xT")}
    bar = progress_bar(total=n, desc=f"log-likelihood ({method})", unit="pt", disable=not progress)
    for start in range(0, n, batch_size):
        xb = x[start : start + batch_size]
        b = xb.shape[0]
        probes = None
        if method == "hutchinson":
            probes = make_probes(k, xb.shape, probe, seeds_all[start : start + b], dtype=xb.dtype, device=xb.device)

        def rhs(t: torch.Tensor, y: torch.Tensor, b=b, probes=probes) -> torch.Tensor:
            t = float(t)
            xs = y[:, :D].reshape((b,) + event)
            field = lambda z: pf.drift(t, z)  # noqa: E731  (the probability-flow velocity)
            if probes is None:
                v, div = divergence_exact(field, xs)
                div = div[:, None]
            else:
                v, div = divergence_hutchinson(field, xs, probes)
            return torch.cat([v.reshape(b, D), div.to(y.dtype)], dim=1)

        y0 = torch.cat([xb.reshape(b, D), torch.zeros((b, k), dtype=xb.dtype, device=xb.device)], dim=1)
        try:
            y1 = odeint(rhs, y0, [t0, T], rtol=rtol, atol=atol, method="dopri5", options={"max_num_steps": max_steps})[-1]
        except FloatingPointError:
            pf.denoiser.raise_if_nonfinite()  # the model's own message (which call, which t), where it is the cause
            raise
        pf.denoiser.raise_if_nonfinite()
        x_T = y1[:, :D].reshape((b,) + event)
        deltas = y1[:, D:].to(torch.float64)
        prior = (process.prior_log_prob if prior_fn is None else prior_fn)(x_T)
        if not isinstance(prior, torch.Tensor) or tuple(prior.shape) != (b,):
            got = tuple(prior.shape) if isinstance(prior, torch.Tensor) else type(prior).__name__
            raise ValueError(f"prior must return one log-density per point, shape (b,) = ({b},), for x_T of shape "
                             f"{tuple(x_T.shape)}; got {got} (sum over the event dimensions)")
        prior = prior.to(torch.float64)
        outs["prior"].append(prior)
        outs["delta"].append(deltas.mean(1))
        outs["logp"].append(prior + deltas.mean(1))
        if k > 1:
            outs["se"].append(deltas.std(1, unbiased=True) / math.sqrt(k))
        else:
            fill = 0.0 if method == "exact" else float("nan")
            outs["se"].append(torch.full((b,), fill, dtype=torch.float64, device=x.device))
        outs["xT"].append(x_T.detach())
        bar.update(b)
    bar.close()
    cat = {key: torch.cat(v) for key, v in outs.items()}
    if not bool(torch.isfinite(cat["logp"]).all()):
        raise FloatingPointError(
            "the log-likelihood is not finite for some points; check the model near t_start "
            f"(t_start = {t0}) and the prediction kind {prediction!r}"
        )
    return LikelihoodResult(
        log_prob=cat["logp"],
        stderr=cat["se"],
        prior_log_prob=cat["prior"],
        delta_log_prob=cat["delta"],
        x_T=cat["xT"],
        dim=D,
        nfe=pf.denoiser.nfe,
        method=method,
        n_probes=k,
        probe=probe if method == "hutchinson" else None,
        rtol=rtol,
        atol=atol,
        t_start=t0,
        bin_width=bin_width,
    )
