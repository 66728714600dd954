r"""Synthetic return paths from a diffusion model, checked with the stylized facts of finance and by pricing.

The data are paths of daily log-returns ``r_t = ln(S_{t+1} / S_t)``, ``t = 0 .. L - 1`` (``L = 64``
trading days by default), either simulated from a stochastic-volatility model (:class:`~sdeflow.finance.Heston`
integrated by :func:`sdeflow.sdeint`, full-truncation Euler at ``substeps`` steps a day, from a seed)
or supplied by the user as an array file of shape ``(n_paths, L)`` (:func:`load_paths`). A path is one
vector of ``L`` returns; the model is a flow-matching model (conditional flow matching on the linear
path, Lipman et al. 2023; Liu et al. 2023) whose network is the residual :class:`~sdeflow.nn.MLP` over
the whole path, trained by the library's :class:`~sdeflow.training.Trainer` on returns normalized
as ``(r - m) / s`` with ``m`` and ``s`` the mean and standard deviation of all training returns (one
number each, stored in the checkpoint, :func:`return_statistics`). Samples come from
:func:`sdeflow.sample` (via :func:`~sdeflow.training.sample_checkpoint`).

The checks are the stylized facts of asset returns (Cont 2001, "Empirical properties of asset
returns: stylized facts and statistical issues", Quantitative Finance 1) and option prices:

* heavy tails: the kurtosis ``E (r - m)^4 / (E (r - m)^2)^2`` of all returns (3 for a Gaussian;
  :func:`kurtosis`);
* volatility clustering: the autocorrelation of absolute returns ``corr(|r_t|, |r_{t+k}|)`` is positive
  and decays slowly with the lag ``k``, while the autocorrelation of raw returns is ~0
  (:func:`autocorrelation`);
* leverage effect: ``corr(r_t, |r_{t+k}|) < 0`` for ``k >= 1`` (falls in price raise later volatility;
  under Heston it comes from ``rho < 0``; :func:`leverage`);
* European calls on ``S_T = S_0 exp(sum_t r_t)`` at several strikes, priced by Monte Carlo on the
  synthetic paths with standard errors (:func:`call_prices`), against the simulator's price by Heston's
  semi-closed form (:func:`~sdeflow.finance.heston_price`), and their implied volatilities (the smile).

Every statistic is pooled over paths and times (the mean ``m``, variance and the lagged products of all
``n_paths * (L - k)`` pairs), so its standard error for i.i.d. data is known: ``sqrt(24 / N)`` for the
kurtosis of ``N`` Gaussian returns and ``1 / sqrt(n_paths (L - k))`` for a correlation at lag ``k``
(Bartlett). :func:`compare` scores a synthetic sample against the simulator's and reports the same
score for a second, held-out simulated sample: the floor that sampling noise alone gives.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .._utils import check_int

__all__ = [
    "DEFAULT_HESTON",
    "TRADING_DAYS",
    "simulate_returns",
    "load_paths",
    "return_statistics",
    "train_path_model",
    "sample_paths",
    "kurtosis",
    "autocorrelation",
    "leverage",
    "stylized_facts",
    "call_prices",
    "heston_calls",
    "compare",
    "plot_report",
]

TRADING_DAYS = 252
"""Trading days a year: a daily step is ``dt = 1 / 252`` years."""


def _default_heston():
    from ..finance import Heston

    return Heston(s0=100.0, v0=0.04, r=0.0, kappa=2.0, theta=0.04, xi=0.6, rho=-0.7)


DEFAULT_HESTON = _default_heston()
r"""The simulator of the worked example: ``v0 = theta = 0.04`` (20% volatility), mean reversion
``kappa = 2`` (half-life 0.35 years), vol of vol ``xi = 0.6`` (the Feller condition ``2 kappa theta >= xi^2``
fails: the variance touches 0) and ``rho = -0.7`` (a strong leverage effect), ``r = 0``, ``S_0 = 100``."""


# ------------------------------------------------------------------------------------------- data
def simulate_returns(
    model=None,
    n_paths: int = 20_000,
    n_steps: int = 64,
    *,
    dt: float = 1.0 / TRADING_DAYS,
    substeps: int = 8,
    seed: int = 0,
) -> torch.Tensor:
    r"""``n_paths`` paths of ``n_steps`` log-returns ``ln(S_{t+dt} / S_t)`` of a Heston model, float64.

    :func:`sdeflow.sdeint` integrates ``model`` (default :data:`DEFAULT_HESTON`) on ``(ln S, v)`` from
    its initial state with Euler-Maruyama (the full-truncation scheme, Lord et al. 2010) at ``dt /
    substeps`` and records ``ln S`` every ``dt``; the Brownian path comes from ``seed``, so the same
    seed gives the same paths. Returns ``(n_paths, n_steps)``.
    """
    from ..finance import Heston
    from ..sdes.integrate import sdeint

    model = DEFAULT_HESTON if model is None else model
    if not isinstance(model, Heston):
        raise TypeError(f"model must be a sdeflow.finance.Heston; got {type(model).__name__}")
    check_int(n_paths, "n_paths")
    check_int(n_steps, "n_steps", minimum=2)
    check_int(substeps, "substeps")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0 (years per step; 1/252 is one trading day); got {dt!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    ts = torch.arange(n_steps + 1, dtype=torch.float64) * dt
    ys = sdeint(model, model.initial(n_paths, torch.float64), ts, method="euler", dt=dt / substeps, seed=seed)
    log_s = ys[:, :, 0].T  # (n_paths, n_steps + 1)
    return log_s[:, 1:] - log_s[:, :-1]


def load_paths(path: str | Path, *, kind: str = "returns", n_steps: int | None = None) -> torch.Tensor:
    r"""User-supplied paths from a ``.npy`` or ``.csv`` file of shape ``(n_paths, n_columns)``, as float64 returns.

    ``kind="returns"``: each row holds ``n_columns`` log-returns; ``kind="prices"``: each row holds
    ``n_columns`` positive prices, turned into ``n_columns - 1`` log-returns ``ln(S_{t+1} / S_t)``. A CSV
    file has one path per line, comma-separated, with no header. With ``n_steps`` the file must give
    exactly that many returns per path. A file of another shape, with non-finite values or (for
    prices) values ``<= 0`` is refused with a ValueError naming the file and the expected shape.
    """
    if kind not in ("returns", "prices"):
        raise ValueError(f"kind must be 'returns' or 'prices'; got {kind!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"paths file {path} is a folder; expected a .npy or .csv file of shape (n_paths, n_steps)")
    if not path.is_file():
        raise ValueError(f"paths file {path} does not exist (expected a .npy or .csv file of shape (n_paths, n_steps))")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            arr = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        else:
            raise ValueError(f"paths file {path}: expected a .npy or .csv file of shape (n_paths, n_steps); got a {suffix or 'file without suffix'}")
    except (OSError, ValueError) as err:
        if "expected a .npy" in str(err):
            raise
        raise ValueError(f"paths file {path} could not be read as a numeric (n_paths, n_steps) array: {err}") from err
    extra = 1 if kind == "prices" else 0
    want = f"(n_paths, {n_steps + extra})" if n_steps is not None else "(n_paths, n_steps)"
    what = "prices" if kind == "prices" else "log-returns"
    if arr.dtype.kind not in "fiu" or arr.ndim != 2:
        raise ValueError(f"paths file {path} holds an array of shape {arr.shape} ({arr.dtype}); expected {what} of shape {want}, one path per row")
    if arr.shape[0] < 2 or arr.shape[1] < 2 + extra or (n_steps is not None and arr.shape[1] != n_steps + extra):
        raise ValueError(f"paths file {path} has shape {arr.shape}; expected {what} of shape {want} with at least 2 paths and 2 steps")
    x = torch.as_tensor(np.asarray(arr, dtype=np.float64))
    if not bool(torch.isfinite(x).all()):
        rows = (~torch.isfinite(x)).any(dim=1).nonzero().reshape(-1)
        raise ValueError(f"paths file {path} holds NaN or infinite values in {rows.numel()} paths (first rows {rows[:5].tolist()})")
    if kind == "prices":
        if bool((x <= 0).any()):
            raise ValueError(f"paths file {path} holds prices <= 0; kind='prices' expects positive prices of shape {want}")
        x = torch.diff(torch.log(x), dim=1)
    return x


def return_statistics(returns: torch.Tensor) -> dict[str, float]:
    """The normalization of the model: ``{"shift": m, "scale": s}``, the mean and standard deviation of all returns."""
    r = _paths(returns)
    scale = float(r.std())
    if not scale > 0:
        raise ValueError("returns must not all be equal (their standard deviation is the model's scale)")
    return {"shift": float(r.mean()), "scale": scale}


def _paths(returns: Any, name: str = "returns") -> torch.Tensor:
    """``returns`` as a float64 ``(n_paths, n_steps)`` tensor with ``n_paths, n_steps >= 2`` and finite values."""
    if isinstance(returns, np.ndarray):
        returns = torch.as_tensor(returns)
    if not isinstance(returns, torch.Tensor) or not (returns.is_floating_point()):
        raise TypeError(f"{name} must be a float tensor or array of shape (n_paths, n_steps); got {type(returns).__name__}")
    if returns.ndim != 2 or returns.shape[0] < 2 or returns.shape[1] < 2:
        raise ValueError(f"{name} must have shape (n_paths, n_steps) with n_paths, n_steps >= 2; got {tuple(returns.shape)}")
    r = returns.detach().to(torch.float64)
    if not bool(torch.isfinite(r).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return r


# --------------------------------------------------------------------------------- the model
def train_path_model(
    returns: torch.Tensor,
    *,
    steps: int = 8000,
    batch_size: int = 256,
    lr: float = 1e-3,
    width: int = 256,
    depth: int = 3,
    seed: int = 0,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    data_info: dict[str, Any] | None = None,
    threads: int | str | None = None,
):
    r"""Train a flow-matching model on return paths ``(n_paths, L)``; returns a :class:`~sdeflow.training.TrainResult`.

    The returns are normalized to ``(r - m) / s`` (:func:`return_statistics`, stored as the checkpoint's
    ``data.transform``, so :func:`sample_paths` gives returns); the network is
    ``MLP((L,), width, depth)`` predicting the velocity of the linear path ``x_t = (1 - t) x0 + t eps``
    (:class:`~sdeflow.training.FlowMatching` with independent pairs). ``out_dir`` receives checkpoints
    (needed by :func:`sample_paths`; ``resume`` continues an interrupted run there, ``overwrite`` replaces
    one); ``data_info`` adds entries to the checkpoint's ``data`` record
    (the CLI stores the simulator there, so that ``sdeflow finance sample`` can compare with it).
    """
    from ..nn import MLP
    from ..training import DiffusionModel, FlowMatching, TrainConfig, Trainer

    r = _paths(returns)
    stats = return_statistics(r)
    x = ((r - stats["shift"]) / stats["scale"]).to(torch.float32)
    objective = FlowMatching()
    net = MLP((r.shape[1],), width=width, depth=depth, seed=seed)
    model = DiffusionModel(net, objective.process, "velocity")
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress, threads=threads,
                         warmup_steps=min(100, max(1, steps // 10)), ckpt_every=None if out_dir is not None else 0)
    info = {"name": "return-paths", "kind": "finance-paths", "num_classes": 0,
            "transform": {"shift": [stats["shift"]], "scale": [stats["scale"]]}, **(data_info or {})}
    return Trainer(model, objective, x, config=config, out_dir=out_dir, data_info=info).fit(
        resume=resume, overwrite=overwrite)


def sample_paths(ckpt: str | Path, n: int, *, solver: str = "heun", steps: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` synthetic return paths ``(n, L)`` (float64) from a checkpoint of :func:`train_path_model`.

    :func:`~sdeflow.training.sample_checkpoint` integrates the probability-flow ODE with ``solver`` in
    ``steps`` steps by :func:`sdeflow.sample` from the prior noise of seeds ``seed .. seed + n - 1`` and
    maps the samples back to returns with the stored normalization.
    """
    from ..training import sample_checkpoint
    from ..training.checkpoint import read_checkpoint

    kind = read_checkpoint(ckpt).config["data"].get("kind")
    if kind != "finance-paths":
        raise ValueError(f"ckpt {ckpt} holds a model of {kind!r} data; expected one trained by train_path_model "
                         "(sdeflow finance train)")
    return sample_checkpoint(ckpt, n, solver=solver, steps=steps, seed=seed).to(torch.float64)


# ------------------------------------------------------------------------------ stylized facts
def kurtosis(returns: torch.Tensor) -> float:
    r"""Pooled kurtosis ``mean((r - m)^4) / mean((r - m)^2)^2`` of all returns (3 for Gaussian returns;
    its standard error for ``N`` i.i.d. Gaussian returns is ``sqrt(24 / N)``)."""
    r = _paths(returns).reshape(-1)
    c = r - r.mean()
    return float((c**4).mean() / (c**2).mean() ** 2)


def _lagged_corr(a: torch.Tensor, b: torch.Tensor, lags: Sequence[int]) -> list[float]:
    """``corr(a_t, b_{t+k})`` pooled: mean of ``(a_t - m_a)(b_{t+k} - m_b)`` over all pairs / ``(sd_a sd_b)``."""
    ca, cb = a - a.mean(), b - b.mean()
    denom = float(ca.pow(2).mean().sqrt() * cb.pow(2).mean().sqrt())
    return [float((ca[:, : a.shape[1] - k] * cb[:, k:]).mean()) / denom for k in lags]


def _lags(lags: Sequence[int] | int, n_steps: int) -> list[int]:
    lags = list(range(1, lags + 1)) if isinstance(lags, int) and not isinstance(lags, bool) else list(lags)
    for k in lags:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < n_steps:
            raise ValueError(f"lags must be integers in [1, n_steps - 1] = [1, {n_steps - 1}]; got {k!r}")
    return lags


def autocorrelation(returns: torch.Tensor, lags: Sequence[int] | int = 10, *, absolute: bool = False) -> list[float]:
    r"""Pooled autocorrelation ``corr(x_t, x_{t+k})`` of ``x = r`` (or ``|r|`` with ``absolute``) at each lag.

    ``lags`` is a list of lags or ``K`` for ``1 .. K``. For i.i.d. returns each value is 0 with standard
    error ``1 / sqrt(n_paths (L - k))``.
    """
    r = _paths(returns)
    x = r.abs() if absolute else r
    return _lagged_corr(x, x, _lags(lags, r.shape[1]))


def leverage(returns: torch.Tensor, lags: Sequence[int] | int = 10) -> list[float]:
    r"""Pooled leverage correlation ``corr(r_t, |r_{t+k}|)`` at each lag (negative: the leverage effect)."""
    r = _paths(returns)
    return _lagged_corr(r, r.abs(), _lags(lags, r.shape[1]))


def stylized_facts(returns: torch.Tensor, lags: Sequence[int] | int = 10) -> dict[str, Any]:
    """Kurtosis, autocorrelations of raw and absolute returns, leverage correlations and the daily volatility."""
    r = _paths(returns)
    lag_list = _lags(lags, r.shape[1])
    return {
        "n_paths": int(r.shape[0]),
        "n_steps": int(r.shape[1]),
        "mean": float(r.mean()),
        "std": float(r.std()),
        "kurtosis": kurtosis(r),
        "lags": lag_list,
        "acf_raw": autocorrelation(r, lag_list),
        "acf_abs": autocorrelation(r, lag_list, absolute=True),
        "leverage": leverage(r, lag_list),
    }


# ----------------------------------------------------------------------------------- pricing
def call_prices(returns: torch.Tensor, strikes: Sequence[float], *, s0: float = 100.0, r: float = 0.0,
                dt: float = 1.0 / TRADING_DAYS, martingale: bool = False) -> tuple[list[float], list[float]]:
    r"""Monte Carlo prices and standard errors of European calls on ``S_T = s0 exp(sum_t r_t)``, ``T = L dt``.

    ``price = e^{-rT} mean((S_T - K)+)``, standard error ``e^{-rT} sd((S_T - K)+) / sqrt(n)``. With
    ``martingale`` the terminal prices are first rescaled by ``s0 e^{rT} / mean(S_T)`` (the empirical
    martingale correction of Duan & Simonato 1998, which removes the sample's drift error so that the
    prices are those of a risk-neutral sample; the standard error is then the plain formula's, a close
    approximation).
    """
    x = _paths(returns)
    s_t = s0 * torch.exp(x.sum(dim=1))
    maturity = x.shape[1] * dt
    if martingale:
        s_t = s_t * (s0 * math.exp(r * maturity) / float(s_t.mean()))
    disc = math.exp(-r * maturity)
    prices, errors = [], []
    for k in strikes:
        pay = torch.relu(s_t - float(k)) * disc
        prices.append(float(pay.mean()))
        errors.append(float(pay.std() / math.sqrt(pay.numel())))
    return prices, errors


def heston_calls(model, strikes: Sequence[float], maturity: float) -> list[float]:
    """The simulator's call prices at ``strikes`` by Heston's semi-closed form (:func:`~sdeflow.finance.heston_price`)."""
    from ..finance import heston_price

    p = {k: float(v) for k, v in asdict(model).items() if k in ("s0", "r", "kappa", "theta", "xi", "rho", "v0")}
    return [heston_price(p["s0"], float(k), maturity, p["r"], p["kappa"], p["theta"], p["xi"], p["rho"], p["v0"])
            for k in strikes]


def _implied(prices: Sequence[float], strikes: Sequence[float], s0: float, maturity: float, r: float) -> list[float]:
    from ..finance import implied_vol

    return [float(v) for v in implied_vol(torch.tensor(prices, dtype=torch.float64), s0,
                                          torch.tensor(strikes, dtype=torch.float64), maturity, r)]


def _distance(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """How far two samples' stylized facts are: kurtosis and volatility ratios, mean absolute ACF/leverage gaps."""
    gap = lambda key: float(np.mean(np.abs(np.subtract(a[key], b[key]))))  # noqa: E731
    return {"kurtosis_gap": abs(a["kurtosis"] - b["kurtosis"]), "std_ratio": a["std"] / b["std"],
            "acf_abs_gap": gap("acf_abs"), "acf_raw_gap": gap("acf_raw"), "leverage_gap": gap("leverage")}


def compare(synthetic: torch.Tensor, reference: torch.Tensor, floor: torch.Tensor | None = None, *,
            model=None, strikes: Sequence[float] = (80.0, 90.0, 100.0, 110.0, 120.0), lags: Sequence[int] | int = 10,
            dt: float = 1.0 / TRADING_DAYS, s0: float | None = None) -> dict[str, Any]:
    r"""Stylized facts and option prices of ``synthetic`` paths against ``reference`` (the data or simulator).

    ``floor``: a second sample of the reference's law, held out (e.g. another seed of the simulator);
    its distances to ``reference`` are what sampling noise alone gives, the floor a perfect model
    reaches. ``model`` (a Heston model): the call prices at ``strikes`` for ``T = L dt`` are also
    given by its semi-closed form, and each sample's prices get a z-score ``(price - exact) / stderr``
    and implied volatilities. Returns a JSON-ready dict: ``facts`` of each sample, ``distance`` (to the
    reference) of the synthetic sample and of the floor, and ``pricing``.
    """
    samples = {"synthetic": _paths(synthetic, "synthetic"), "reference": _paths(reference, "reference")}
    if floor is not None:
        samples["floor"] = _paths(floor, "floor")
    lengths = {k: int(v.shape[1]) for k, v in samples.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"synthetic, reference and floor paths must have the same number of steps; got {lengths}")
    s0 = float(getattr(model, "s0", 100.0)) if s0 is None else float(s0)
    rate = float(getattr(model, "r", 0.0))
    maturity = lengths["reference"] * dt
    facts = {k: stylized_facts(v, lags) for k, v in samples.items()}
    report: dict[str, Any] = {"facts": facts, "distance": {k: _distance(facts[k], facts["reference"])
                                                           for k in samples if k != "reference"}}
    pricing: dict[str, Any] = {"strikes": [float(k) for k in strikes], "maturity": maturity, "s0": s0, "r": rate}
    exact = heston_calls(model, strikes, maturity) if model is not None else None
    if exact is not None:
        pricing["exact"] = exact
        pricing["exact_implied_vol"] = _implied(exact, strikes, s0, maturity, rate)
    for name, x in samples.items():
        for corrected in (False, True):
            key = name + ("_martingale" if corrected else "")
            p, se = call_prices(x, strikes, s0=s0, r=rate, dt=dt, martingale=corrected)
            entry: dict[str, Any] = {"price": p, "stderr": se, "implied_vol": _implied(p, strikes, s0, maturity, rate)}
            if exact is not None:
                # No z-score where every path pays the same (a standard error of 0: far out of the money).
                entry["z"] = [(a - b) / e if e > 0 else float("nan") for a, b, e in zip(p, exact, se)]
            pricing[key] = entry
    report["pricing"] = pricing
    return report


# ------------------------------------------------------------------------------------- plots
def plot_report(synthetic: torch.Tensor, reference: torch.Tensor, report: dict[str, Any], out_dir: str | Path,
                *, show: int = 12, s0: float = 100.0) -> list[Path]:
    """Four pictures in ``out_dir``: price paths, ACF of ``|r|`` (and ``r``), return histograms, implied-vol smiles.

    ``paths.png``: ``show`` price paths ``S_0 exp(cumsum r)`` of each sample; ``acf.png``: the
    autocorrelations of absolute and raw returns and the leverage correlations against the lag, with the
    i.i.d. band ``+-2 / sqrt(n_paths L)``; ``histogram.png``: densities of the normalized returns on a
    log scale against the standard normal; ``smile.png``: implied volatilities of the calls (Monte Carlo
    with 2 standard-error bars, and the semi-closed form when the report has it). Returns the paths.
    """
    from ..plots import _plt, _save

    plt = _plt()
    out = Path(out_dir)
    syn, ref = _paths(synthetic, "synthetic"), _paths(reference, "reference")
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, x, title in ((axes[0], ref, "simulator / data"), (axes[1], syn, "synthetic (model)")):
        days = np.arange(x.shape[1] + 1)
        for row in x[:show]:
            ax.plot(days, s0 * np.exp(np.concatenate(([0.0], np.cumsum(row.numpy())))), lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("trading day")
    axes[0].set_ylabel("price")
    fig.tight_layout()
    written.append(_save(fig, out / "paths.png"))

    facts = report["facts"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    lags = facts["reference"]["lags"]
    band = 2 / math.sqrt(facts["reference"]["n_paths"] * facts["reference"]["n_steps"])
    for ax, key, title in zip(axes, ("acf_abs", "acf_raw", "leverage"),
                              ("ACF of |r| (volatility clustering)", "ACF of r", "corr(r_t, |r_t+k|) (leverage)")):
        for name, style in (("reference", "o-"), ("floor", "x--"), ("synthetic", "s-")):
            if name in facts:
                ax.plot(lags, facts[name][key], style, ms=4, label=name)
        ax.axhspan(-band, band, color="0.85", label="iid +-2 se")
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set_title(title)
        ax.set_xlabel("lag k (days)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    written.append(_save(fig, out / "acf.png"))

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    m, s = float(ref.mean()), float(ref.std())
    edges = np.linspace(-8, 8, 81)
    for name, x in (("simulator / data", ref), ("synthetic", syn)):
        z = ((x - m) / s).reshape(-1).numpy()
        hist, _ = np.histogram(z, bins=edges, density=True)
        ax.step(edges[:-1], np.where(hist > 0, hist, np.nan), where="post",
                label=f"{name} (kurtosis {facts['reference' if x is ref else 'synthetic']['kurtosis']:.2f})")
    grid = np.linspace(-8, 8, 400)
    ax.plot(grid, np.exp(-grid**2 / 2) / math.sqrt(2 * math.pi), "k:", label="normal (kurtosis 3)")
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 1)
    ax.set_xlabel("(r - mean) / sd of the reference")
    ax.set_title("daily returns")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(_save(fig, out / "histogram.png"))

    pricing = report["pricing"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ks = np.array(pricing["strikes"])
    if "exact" in pricing:
        ax.plot(ks, pricing["exact_implied_vol"], "k-", label="Heston semi-closed form")
    for name, style in (("reference", "o"), ("synthetic", "s"), ("synthetic_martingale", "^")):
        if name not in pricing:
            continue
        entry = pricing[name]
        vol = np.array(entry["implied_vol"], dtype=float)
        hi = np.array(_implied([p + 2 * e for p, e in zip(entry["price"], entry["stderr"])], ks, pricing["s0"],
                               pricing["maturity"], pricing["r"]), dtype=float)
        ax.errorbar(ks, vol, yerr=np.abs(hi - vol), fmt=style, ms=4, capsize=3, label=f"{name} (Monte Carlo +-2 se)")
    ax.set_xlabel("strike")
    ax.set_ylabel(f"implied volatility (T = {pricing['maturity']:.3f} y)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(_save(fig, out / "smile.png"))
    return written
