"""Torsional diffusion: a diffusion model on the torsion angles of the rotatable bonds, on the torus.

After Jing, Corso, Chang, Barzilay & Jaakkola (2022), "Torsional Diffusion for Molecular Conformer
Generation" (NeurIPS): bond lengths and bond angles of a molecule are nearly rigid, and what varies
between its conformers are the torsion angles of its rotatable bonds. So the model generates those
angles only and sets them on a local structure (bond lengths and angles) taken from a conformer.

**The state.** ``theta in R^k``: the ``k`` torsions ``a-b-c-d`` of :func:`~.metrics.torsion_quadruples`
(a single bond in no ring, each end bonded to another heavy atom), in radians. **Methyl (and other
terminal) rotors do not count**: their end has no heavy neighbour besides the bond, their three
hydrogens are exchanged by the rotation's 3-fold symmetry, and the MMFF minima all hold them staggered;
they keep the local structure's staggered position. For butane ``k = 1``, the C-C-C-C torsion.

**The process.** The existing VE process of :mod:`sdeflow.processes` on the real line,
``theta_t = theta_0 + sigma(t) eps``, ``sigma`` log-uniform in time from ``SIGMA_MIN = 0.01 pi`` (Jing et
al.'s minimum, 1.8 degrees) to ``SIGMA_MAX = 3 pi``; angles are read modulo ``2 pi``. On the circle the
marginal is the wrapped normal ``p_t(theta) = int p_0(theta_0) sum_{m in Z} N(theta - theta_0 + 2 pi m;
0, sigma^2) d theta_0`` with Fourier series ``(1 / 2 pi) (1 + 2 sum_{n >= 1} exp(-n^2 sigma^2 / 2)
c_n cos(...))``, ``|c_n| <= 1``; so ``|2 pi p_T - 1| <= 2 sum_{n >= 1} exp(-n^2 sigma^2 / 2)``
(:func:`wrapped_uniformity`), which at ``sigma = 3 pi`` is ``1.0e-19``: the prior ``N(0, (3 pi)^2)``
read modulo ``2 pi`` is the uniform distribution of the circle to machine precision (``2.2e-16``).

**Why plain denoising score matching learns the torus score.** The network :class:`~sdeflow.nn.TorsionNet`
sees ``theta_t`` only through ``cos`` and ``sin``, i.e. only ``u = theta_t mod 2 pi``. The minimizer of
``E |eps_hat(theta_t, t) - eps|^2`` over such functions is ``E[eps | u]``: the regression target is averaged
over every lift ``theta_t = u + 2 pi m`` of the same angle. With ``d = sigma eps = theta_t - theta_0``::

    E[d | u] = sum_m int p_0(theta_0) N(u - theta_0 + 2 pi m) (u - theta_0 + 2 pi m) d theta_0 / p_t(u)
             = -sigma^2 d/du log p_t(u),

since ``d/du N(v) = -v N(v) / sigma^2``. So ``eps_hat = -sigma grad log p_t``: the existing ``eps``
objective, with periodic inputs, has as its minimizer the score of the **wrapped** marginal. The reverse
SDE and probability-flow ODE on ``R`` with this periodic drift project, modulo ``2 pi``, onto the reverse
processes on the circle, and every solver of :func:`sdeflow.sample` combines states and predictions
linearly, so it commutes with shifts by ``2 pi``. Hence training is
:class:`~sdeflow.training.DenoisingScoreMatching` + :class:`~sdeflow.training.Trainer` (checkpoints, EMA,
resume) and sampling is :func:`sdeflow.sample` with any solver, then angles modulo ``2 pi``.
(:func:`wrapped_normal_score` sums the lifts in closed form; the tests check that the exact regression
minimizer ``E[eps | u]`` equals ``-sigma`` times it.)

**Conformers.** Sample ``i`` sets its torsions on local structure ``(seed + i) mod n_templates`` of the
``n_templates`` stored in the network: conformers of the training set (ETKDG embeddings minimized with
MMFF94), so bond lengths and angles are those of force-field minima. Each torsion is set by a rigid
rotation of the atoms on the ``c`` side of its bond about the axis ``b -> c`` (:func:`set_torsions`),
which keeps every bond length and bond angle and every torsion about another bond.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..._utils import check_int, check_positive
from .data import ConformerSet
from .metrics import dihedral, torsion_angles, torsion_quadruples

__all__ = [
    "SIGMA_MIN",
    "SIGMA_MAX",
    "wrap_angle",
    "wrapped_normal_score",
    "wrapped_normal_logpdf",
    "torus_mixture_eps",
    "torsion_score_check",
    "wrapped_uniformity",
    "set_torsions",
    "rotatable_torsions",
    "torsion_process",
    "build_torsional_model",
    "train_torsional_model",
    "sample_torsions",
    "torsions_to_conformers",
]

SIGMA_MIN = 0.01 * math.pi
"""Smallest noise level (radians): Jing et al. (2022)'s ``0.01 pi``, 1.8 degrees."""
SIGMA_MAX = 3.0 * math.pi
"""Largest noise level (radians): the prior wrapped to the circle is uniform to ``1.0e-19`` (module docstring)."""


def wrap_angle(theta: Any) -> np.ndarray:
    """Angles (radians) mapped into ``[-pi, pi)``."""
    return np.mod(np.asarray(theta, dtype=np.float64) + math.pi, 2.0 * math.pi) - math.pi


def wrapped_normal_score(theta: Any, mu: Any, sigma: float, lifts: int | None = None) -> np.ndarray:
    """``d/d theta log p(theta)`` of the wrapped normal ``p = sum_m N(theta + 2 pi m; mu, sigma^2)``.

    The sum over lifts ``m = -lifts .. lifts`` (default ``lifts = 2 + ceil(6 sigma / pi)``: every omitted lift is
    at least ``5 pi + 12 sigma`` away, so its weight is below ``exp(-72) = 5e-32`` of the largest, far below
    float64 rounding) is taken with log-sum-exp weights:
    ``score = -sum_m w_m (theta - mu + 2 pi m) / sigma^2``, ``w_m`` the posterior of lift ``m``.
    """
    sigma = check_positive(sigma, "sigma")
    if lifts is None:
        lifts = _lifts(sigma)
    check_int(lifts, "lifts", minimum=0)
    v = wrap_angle(np.asarray(theta, dtype=np.float64) - np.asarray(mu, dtype=np.float64))
    m = np.arange(-lifts, lifts + 1, dtype=np.float64)
    d = v[..., None] + 2.0 * math.pi * m
    logw = -0.5 * (d / sigma) ** 2
    w = np.exp(logw - logw.max(axis=-1, keepdims=True))
    return -(w * d).sum(-1) / (w.sum(-1) * sigma**2)


def _lifts(sigma: float) -> int:
    return 2 + math.ceil(6.0 * sigma / math.pi)


def wrapped_normal_logpdf(theta: Any, mu: Any, sigma: float) -> np.ndarray:
    """``log sum_m N(theta + 2 pi m; mu, sigma^2)``: the log-density of the wrapped normal on ``[-pi, pi)`` (log-sum-exp)."""
    sigma = check_positive(sigma, "sigma")
    v = wrap_angle(np.asarray(theta, dtype=np.float64) - np.asarray(mu, dtype=np.float64))
    m = np.arange(-_lifts(sigma), _lifts(sigma) + 1, dtype=np.float64)
    z = -0.5 * ((v[..., None] + 2.0 * math.pi * m) / sigma) ** 2
    top = z.max(axis=-1)
    return top + np.log(np.exp(z - top[..., None]).sum(-1)) - math.log(sigma * math.sqrt(2.0 * math.pi))


def torus_mixture_eps(theta: Any, centres: Any, sigma: float) -> np.ndarray:
    """The exact minimizer ``E[eps | theta_t mod 2 pi = theta] = -sigma grad log p_sigma(theta)`` for data at ``centres``.

    ``p_sigma`` is the empirical distribution of ``centres (N, k)`` (radians) convolved with ``N(0, sigma^2 I)``
    and wrapped to the torus: ``(1/N) sum_i prod_j WN(theta_j; c_ij, sigma)``. With the posterior weights
    ``w_i ~ prod_j WN(theta_j; c_ij, sigma)``, ``grad log p = sum_i w_i s(theta - c_i)``, ``s`` the wrapped normal's
    score per coordinate (:func:`wrapped_normal_score`). ``theta (M, k)`` -> ``(M, k)``. It is what a model trained
    on these data by :func:`train_torsional_model` converges to (module docstring).
    """
    sigma = check_positive(sigma, "sigma")
    theta = np.asarray(theta, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    if theta.ndim != 2 or centres.ndim != 2 or theta.shape[1] != centres.shape[1]:
        raise ValueError(f"theta (M, k) and centres (N, k) must be angle arrays with the same k; got {theta.shape}, {centres.shape}")
    logp = wrapped_normal_logpdf(theta[:, None, :], centres[None], sigma).sum(-1)  # (M, N)
    w = np.exp(logp - logp.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    score = wrapped_normal_score(theta[:, None, :], centres[None], sigma)  # (M, N, k)
    return -sigma * (w[..., None] * score).sum(axis=1)


def torsion_score_check(model, centres: Any, noise_levels: Sequence[float] = (0.1, 0.3, 1.0, 2.0), *, points: int = 720,
                        plot: str | Path | None = None) -> list[dict[str, float]]:
    """How far a trained torsional model's ``eps_hat`` is from the exact minimizer :func:`torus_mixture_eps` of its data.

    For a one-torsion model (``k = 1``), on ``points`` angles ``u`` of the circle and each noise level ``sigma``
    (radians): ``rms_error``, the RMS of ``eps_hat(u, sigma) - eps*(u, sigma)`` weighted by the noised data density
    ``p_sigma(u)`` (the excess of the denoising loss at that level is its square), and ``rms_target``, the same RMS of
    ``eps*``. ``centres (N, 1)``: the training torsions in radians. ``plot``: a picture of both curves per level.
    """
    model = _torsion_model(model)
    if model.net.n_torsions != 1:
        raise ValueError(f"torsion_score_check compares curves of one torsion; this model has {model.net.n_torsions}")
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 1)
    check_int(points, "points", minimum=8)
    u = np.linspace(-math.pi, math.pi, points + 1)[:-1]
    rows, curves = [], []
    for sigma in noise_levels:
        sigma = check_positive(sigma, "noise_levels entries")
        exact = torus_mixture_eps(u[:, None], centres, sigma)[:, 0]
        t = model.process.t_from_noise_level(torch.tensor(float(sigma), dtype=torch.float64)).float()
        with torch.no_grad():
            got = model(torch.as_tensor(u[:, None], dtype=torch.float32), t.expand(points)).double().numpy()[:, 0]
        logp = wrapped_normal_logpdf(u[:, None], centres[None, :, 0], sigma)  # (points, N)
        top = logp.max()
        p = np.exp(logp - top).mean(axis=1)
        p /= p.sum()
        rows.append({"noise_level": float(sigma), "rms_error": float(np.sqrt((p * (got - exact) ** 2).sum())),
                     "rms_target": float(np.sqrt((p * exact**2).sum()))})
        curves.append((sigma, exact, got, p))
    if plot is not None:
        from ...plots import _finish, _plt

        plt = _plt()
        fig, axes = plt.subplots(1, len(curves), figsize=(3.4 * len(curves), 3.0), squeeze=False)
        for ax, (sigma, exact, got, p) in zip(axes[0], curves):
            deg = np.degrees(u)
            ax.plot(deg, exact, label="exact E[eps | u]", linewidth=2.2, alpha=0.6)
            ax.plot(deg, got, "--", label="model", linewidth=1.3)
            ax.fill_between(deg, 0, p / p.max() * np.abs(exact).max(), color="0.85", label="p_sigma (scaled)")
            ax.set_title(f"sigma = {sigma:g} rad", fontsize=9)
            ax.set_xlabel("torsion u (degrees)")
            ax.set_xlim(-180, 180)
        axes[0][0].legend(fontsize=7)
        _finish(fig, plot, "torsional model: eps_hat against the exact torus minimizer")
    return rows


def wrapped_uniformity(sigma: float) -> float:
    """``max_theta |2 pi p(theta) - 1|`` for ``N(mu, sigma^2)`` wrapped to the circle: ``2 sum_n exp(-n^2 sigma^2 / 2)``."""
    sigma = check_positive(sigma, "sigma")
    n = np.arange(1, 64, dtype=np.float64)
    return float(2.0 * np.exp(-0.5 * (n * sigma) ** 2).sum())


def _side(n_atoms: int, bonds: Sequence[Sequence[int]], b: int, c: int) -> list[int]:
    """Atoms reachable from ``c`` without crossing the bond ``b-c`` (``c`` included)."""
    adjacency: list[list[int]] = [[] for _ in range(n_atoms)]
    for i, j, *_ in bonds:
        adjacency[int(i)].append(int(j))
        adjacency[int(j)].append(int(i))
    if c not in adjacency[b]:
        raise ValueError(f"quad: atoms {b} and {c} are not bonded; the torsion's middle atoms must share a bond")
    seen, frontier = {c}, [c]
    while frontier:
        nxt = []
        for a in frontier:
            for k in adjacency[a]:
                if (a, k) in ((c, b), (b, c)) or k in seen:
                    continue
                seen.add(k)
                nxt.append(k)
        frontier = nxt
    if b in seen:
        raise ValueError(f"quad: the bond {b}-{c} lies in a ring; its torsion cannot be set by rotating one side")
    return sorted(seen)


def set_torsions(coords: Any, torsions: Sequence[Sequence[int]], bonds: Sequence[Sequence[int]], angles: Any) -> np.ndarray:
    """``coords (m, n, 3)`` with torsion ``torsions[j] = (a, b, c, d)`` of conformer ``i`` set to ``angles[i, j]`` degrees.

    Each torsion in turn: the atoms on ``c``'s side of the bond ``b-c`` rotate rigidly about the axis
    ``b -> c`` by the difference between the asked and the present dihedral (Rodrigues' formula
    ``v cos d + (k x v) sin d + k (k . v)(1 - cos d)``), which keeps every bond length, bond angle and every
    torsion about another bond (a quadruple of another bond either lies on one side, or has two of its
    atoms on the axis). Float64.
    """
    x = np.array(coords, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"coords must be conformers of shape (m, n_atoms, 3); got {x.shape}")
    phi = np.asarray(angles, dtype=np.float64)
    if phi.shape != (x.shape[0], len(torsions)):
        raise ValueError(f"angles must be (m, k) = ({x.shape[0]}, {len(torsions)}) degrees; got {phi.shape}")
    for j, quad in enumerate(torsions):
        if len(quad) != 4:
            raise ValueError(f"each torsion must be 4 atom indices (a, b, c, d); got {quad!r}")
        a, b, c, d = (int(v) for v in quad)
        side = _side(x.shape[1], bonds, b, c)
        delta = np.radians(phi[:, j] - dihedral(x, (a, b, c, d)))[:, None, None]
        k = x[:, c] - x[:, b]
        k = (k / np.linalg.norm(k, axis=-1, keepdims=True))[:, None, :]
        v = x[:, side] - x[:, b][:, None, :]
        # The dihedral a-b-c-d grows by delta when d turns by +delta about b -> c (right-handed, IUPAC sign).
        rotated = v * np.cos(delta) + np.cross(k, v) * np.sin(delta) + k * (v * k).sum(-1, keepdims=True) * (1.0 - np.cos(delta))
        x[:, side] = x[:, b][:, None, :] + rotated
    return x


def rotatable_torsions(conformers: ConformerSet) -> list[tuple[int, int, int, int]]:
    """The torsions the model diffuses: those of the metrics (:func:`~.metrics.torsion_quadruples`)."""
    return torsion_quadruples(conformers.mol())


def torsion_process(sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX):
    """The VE process of the torsion angles (radians)."""
    from ...processes import VE

    return VE(sigma_min=sigma_min, sigma_max=sigma_max)


def build_torsional_model(
    conformers: ConformerSet, *, width: int = 64, depth: int = 3, harmonics: int = 1, n_templates: int = 32,
    sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, seed: int = 0,
):
    """An ``eps``-predicting :class:`~sdeflow.training.DiffusionModel` on the torsions of ``conformers``' molecule.

    The network (:class:`~sdeflow.nn.TorsionNet`) stores the first ``min(n_templates, len(conformers))``
    conformers (centred) as local structures; its time input is ``log(sigma) / 4``.
    """
    from ...nn import TorsionNet
    from ...training import DiffusionModel

    quads = rotatable_torsions(conformers)
    if not quads:
        raise ValueError(f"{conformers.name} has no rotatable torsion (a single bond in no ring between two atoms that each "
                         "have another heavy neighbour); the torsional model needs one: use the EGNN model")
    check_int(n_templates, "n_templates")
    templates = conformers.coords[: min(n_templates, len(conformers))]
    templates = templates - templates.mean(axis=1, keepdims=True)
    net = TorsionNet(quads, conformers.bonds, conformers.atomic_numbers.tolist(), n_templates=templates.shape[0], width=width,
                     depth=depth, harmonics=harmonics, seed=seed)
    with torch.no_grad():
        net.local_structures.copy_(torch.as_tensor(templates, dtype=torch.float64))
    return DiffusionModel(net, torsion_process(sigma_min, sigma_max), "eps", time_input="log_noise")


def train_torsional_model(
    conformers: ConformerSet,
    *,
    config=None,
    width: int = 64,
    depth: int = 3,
    harmonics: int = 1,
    n_templates: int = 32,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
):
    """Train :func:`build_torsional_model` by denoising score matching (``eps``, uniform weight, uniform ``t``).

    The data given to the Trainer are the torsion angles of ``conformers`` in radians, ``(m, k)`` float32.
    ``config`` defaults to 2,000 steps of batch 64 at learning rate 2e-3 (EMA 0.995).
    """
    from ...training import DenoisingScoreMatching, TrainConfig, Trainer

    config = config if config is not None else TrainConfig(steps=2000, batch_size=64, lr=2e-3, warmup_steps=50, ema_decay=0.995)
    model = build_torsional_model(conformers, width=width, depth=depth, harmonics=harmonics, n_templates=n_templates,
                                  seed=config.seed)
    angles = np.radians(torsion_angles(conformers.coords, model.net.torsions))
    data = torch.as_tensor(angles, dtype=torch.float32)
    info = {
        "name": f"molecule:{conformers.name}",
        "kind": "molecule",
        "transform": None,
        "molecule": {"name": conformers.name, "smiles": conformers.smiles, "seed": conformers.seed, "model": "torsional",
                     "torsions": model.net.torsions},
    }
    trainer = Trainer(model, DenoisingScoreMatching(model.process, "eps"), data, config=config, out_dir=out_dir, data_info=info)
    return trainer.fit(resume=resume, overwrite=overwrite)


def _torsion_model(model):
    from ...nn import TorsionNet
    from ...training import DiffusionModel

    if not isinstance(model, DiffusionModel) or not isinstance(model.net, TorsionNet):
        raise TypeError(f"model must be a DiffusionModel with a TorsionNet (from train_torsional_model); got {type(model).__name__}")
    return model


def sample_torsions(model, n: int, *, seed: int = 0, solver: str | None = None, steps: int = 25, progress: bool = False,
                    **solver_options: Any) -> np.ndarray:
    """``(n, k)`` torsion angles in radians, in ``[-pi, pi)``: :func:`sdeflow.sample` from ``N(0, sigma_max^2)``, mod ``2 pi``.

    Sample ``i`` starts from the prior with seed ``seed + i`` (and its Brownian path, for stochastic solvers).
    """
    from ...sample import sample

    model = _torsion_model(model)
    check_int(n, "n")
    seeds = torch.arange(n, dtype=torch.int64) + int(seed)
    x = model.process.prior_sample((n, model.net.n_torsions), seeds=seeds, dtype=torch.float32)
    with torch.no_grad():
        # pilot=False: the default's pilot scores configurations by Euclidean distances in R^k, which on torsion
        # angles (a torus: angles mod 2 pi) is not the distance that matters; with no solver the fixed rule is used.
        out = sample(model, model.process, x, solver=solver, steps=steps, seed=seed, progress=progress, pilot=False,
                     **solver_options)
    return wrap_angle(out.samples.double().numpy())


def torsions_to_conformers(model, angles: Any, *, seed: int = 0) -> np.ndarray:
    """``(n, n_atoms, 3)`` angstrom, centroid 0: ``angles (n, k)`` (radians) set on the model's local structures.

    Conformer ``i`` uses local structure ``(seed + i) mod n_templates`` (module docstring).
    """
    net = _torsion_model(model).net
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim != 2 or angles.shape[1] != net.n_torsions:
        raise ValueError(f"angles must be (n, {net.n_torsions}) radians; got {angles.shape}")
    templates = net.local_structures.detach().double().cpu().numpy()
    pick = (int(seed) + np.arange(angles.shape[0])) % templates.shape[0]
    x = set_torsions(templates[pick], net.torsions, net.bonds, np.degrees(angles))
    return x - x.mean(axis=1, keepdims=True)
