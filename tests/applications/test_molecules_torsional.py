"""Torsional diffusion for conformers: the wrapped score, the uniform prior, torsion setting, end to end, learning."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch

from sdeflow.applications.molecules import (
    evaluate,
    generate_conformers,
    sample_conformers,
    set_torsions,
    train_conformer_model,
    wrapped_normal_score,
    wrapped_uniformity,
)
from sdeflow.applications.molecules import metrics as M
from sdeflow.applications.molecules.torsional import SIGMA_MAX, build_torsional_model, wrap_angle
from sdeflow.nn import TorsionNet
from sdeflow.training import TrainConfig


def _fourier_score(theta, mu, sigma, terms=200):
    """The wrapped normal's score from its Fourier series p = (1 + 2 sum_n q^(n^2) cos n(theta - mu)) / 2 pi,
    q = exp(-sigma^2 / 2): a closed form independent of the sum over lifts (Jacobi's theta-function identity)."""
    n = np.arange(1, terms + 1, dtype=np.float64)
    v = np.asarray(theta, dtype=np.float64)[..., None] - mu
    c = np.exp(-0.5 * (n * sigma) ** 2)
    return (-2.0 * (n * c * np.sin(n * v)).sum(-1)) / (1.0 + 2.0 * (c * np.cos(n * v)).sum(-1))


@pytest.mark.parametrize("sigma", [0.8, 1.5, 3.0])
def test_wrapped_normal_score_by_lifts_equals_the_fourier_series(sigma):
    # Expected: the two closed forms agree to 1e-9 (measured ~1e-13) at 101 angles; the score is 2 pi-periodic. (Below
    # sigma ~ 0.5 the Fourier series cancels to rounding near the antipode, where the density is ~exp(-pi^2 / 2 sigma^2).)
    theta = np.linspace(-3 * math.pi, 3 * math.pi, 101)
    got = wrapped_normal_score(theta, 0.7, sigma)
    assert np.abs(got - _fourier_score(theta, 0.7, sigma)).max() < 1e-9
    assert np.abs(got - wrapped_normal_score(theta + 2 * math.pi, 0.7, sigma)).max() < 1e-12


def test_periodic_dsm_regression_minimizer_is_minus_sigma_times_the_wrapped_score():
    # The minimizer of E|eps_hat(theta_t mod 2 pi) - eps|^2 over periodic functions is E[eps | u], u = theta_t mod 2 pi.
    # Monte Carlo: 4e6 pairs from a 3-point data law on the circle (butane's minima at 180 and +-65 degrees, weights
    # 0.47 / 0.27 / 0.26), theta_t = theta_0 + sigma eps on R, eps averaged in 60 bins of u. The wrapped marginal's
    # score is the mixture of the wrapped normals' (Fourier form). Expected: E[eps | u] = -sigma * score within
    # 0.03 everywhere (Monte Carlo standard error ~0.005 per bin, bin-width bias ~0.005; measured max ~0.015),
    # while the score of the lifted (non-periodic) marginal on R would differ by up to ~1 at sigma = 1.5.
    sigma = 1.5
    mus = np.radians([180.0, 65.0, -65.0])
    weights = np.array([0.47, 0.27, 0.26])
    rng = np.random.default_rng(0)
    n = 4_000_000
    theta0 = mus[rng.choice(3, n, p=weights)]
    eps = rng.standard_normal(n)
    u = wrap_angle(theta0 + sigma * eps)
    bins = 60
    idx = np.minimum(((u + math.pi) / (2 * math.pi) * bins).astype(int), bins - 1)
    mean_eps = np.bincount(idx, eps, bins) / np.bincount(idx, minlength=bins)
    centres = -math.pi + (np.arange(bins) + 0.5) * 2 * math.pi / bins
    q = np.arange(1, 200)
    dens = np.stack([1 + 2 * (np.exp(-0.5 * (q * sigma) ** 2) * np.cos(q * (centres[:, None] - m))).sum(-1) for m in mus], 1)
    score = (dens * weights * np.stack([_fourier_score(centres, m, sigma) for m in mus], 1)).sum(1) / (dens * weights).sum(1)
    assert np.abs(mean_eps - (-sigma * score)).max() < 0.03
    # The same through the library's lift sum (per component, mixed with the same weights).
    lifts = np.stack([wrapped_normal_score(centres, m, sigma) for m in mus], 1)
    assert np.abs((dens * weights * lifts).sum(1) / (dens * weights).sum(1) - score).max() < 1e-9


def test_the_prior_wrapped_to_the_circle_is_uniform_to_machine_precision():
    # Expected: the bound 2 sum_n exp(-n^2 sigma^2 / 2) is 1.0e-19 at sigma_max = 3 pi (module docstring), and the
    # density of N(0, (3 pi)^2) wrapped to the circle, summed over its lifts, is 1 / (2 pi) to 1e-14 relative (float64
    # rounding of the sum: measured ~2e-16). At sigma = pi (Jing et al.'s maximum) it would be 1.4e-2 off.
    assert 0.9e-19 < wrapped_uniformity(SIGMA_MAX) < 1.1e-19
    assert 1.3e-2 < wrapped_uniformity(math.pi) < 1.5e-2
    theta = np.linspace(-math.pi, math.pi, 1001)
    m = np.arange(-40, 41)
    x = theta[:, None] + 2 * math.pi * m
    density = (np.exp(-0.5 * (x / SIGMA_MAX) ** 2) / (SIGMA_MAX * math.sqrt(2 * math.pi))).sum(1)
    assert np.abs(2 * math.pi * density - 1.0).max() < 1e-14


@functools.lru_cache(maxsize=None)
def _conformers(name: str, n: int, seed: int):
    pytest.importorskip("rdkit")
    return generate_conformers(name, n, seed=seed)


def _bond_angles(x, bonds):
    """Every angle i-j-k of two bonds sharing atom j (radians), (m, count)."""
    nbrs: dict[int, list[int]] = {}
    for i, j, _ in bonds:
        nbrs.setdefault(i, []).append(j)
        nbrs.setdefault(j, []).append(i)
    triples = [(a, j, c) for j, ns in nbrs.items() for p, a in enumerate(ns) for c in ns[p + 1 :]]
    u = x[:, [t[0] for t in triples]] - x[:, [t[1] for t in triples]]
    v = x[:, [t[2] for t in triples]] - x[:, [t[1] for t in triples]]
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return np.arccos(np.clip(cos, -1, 1))


def test_set_torsions_sets_every_angle_and_keeps_bonds_angles_and_other_torsions():
    # Pentane (2 rotatable torsions, 17 atoms): random targets on 3 conformers. Expected: each torsion equals its
    # target to 1e-9 degrees; every bond length (1e-10 A), every bond angle (1e-10 rad) and every H-C-C-H torsion about
    # a methyl bond (1e-9 degrees) is unchanged: one side of each bond turns rigidly about the bond's axis.
    data = _conformers("pentane", 3, 0)
    quads = M.torsion_quadruples(data.mol())
    assert quads == [(0, 1, 2, 3), (1, 2, 3, 4)]
    target = np.random.default_rng(1).uniform(-180, 180, (3, 2))
    y = set_torsions(data.coords, quads, data.bonds, target)
    got = M.torsion_angles(y, quads)
    assert np.abs((got - target + 180.0) % 360.0 - 180.0).max() < 1e-9
    i, j = np.array([b[0] for b in data.bonds]), np.array([b[1] for b in data.bonds])
    lengths = lambda z: np.linalg.norm(z[:, i] - z[:, j], axis=-1)  # noqa: E731
    assert np.abs(lengths(y) - lengths(data.coords)).max() < 1e-10
    assert np.abs(_bond_angles(y, data.bonds) - _bond_angles(data.coords, data.bonds)).max() < 1e-10
    hydrogens = [n for n in range(data.n_atoms) if data.atomic_numbers[n] == 1]
    h0 = next(h for h in hydrogens if [0, h, 1] in data.bonds or [h, 0, 1] in data.bonds)
    h1 = next(h for h in hydrogens if [1, h, 1] in data.bonds or [h, 1, 1] in data.bonds)
    methyl = (h0, 0, 1, h1)
    assert np.abs(M.torsion_angles(y, [methyl]) - M.torsion_angles(data.coords, [methyl])).max() < 1e-9
    with pytest.raises(ValueError, match=r"angles must be \(m, k\) = \(3, 2\)"):
        set_torsions(data.coords, quads, data.bonds, target[:, :1])


def test_torsion_net_is_periodic_and_checks_its_input():
    # Expected: shifting any angle by 2 pi changes the output by float rounding only (1e-5; measured ~1e-6 in float32),
    # since the network sees cos and sin of the angles. Bad shapes and bad torsions are refused by name.
    net = TorsionNet([(0, 1, 2, 3), (1, 2, 3, 4)], [[0, 1, 1], [1, 2, 1], [2, 3, 1], [3, 4, 1]], [6] * 5, width=16, depth=2,
                     harmonics=2, seed=1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(3))
    c = torch.linspace(-0.8, 0.5, 8)
    shift = 2 * math.pi * torch.tensor([[1.0, -2.0]])
    assert (net(x, c) - net(x + shift, c)).abs().max() < 1e-5
    with pytest.raises(ValueError, match=r"x must be torsion angles of shape \(batch, 2\)"):
        net(torch.zeros(2, 3), c[:2])
    with pytest.raises(ValueError, match="torsions must be 4 distinct atom indices"):
        TorsionNet([(0, 1, 1, 3)], [], [6] * 4)
    with pytest.raises(ValueError, match="at least one rotatable torsion"):
        TorsionNet([], [], [6] * 4)


def test_torsional_model_refuses_a_molecule_without_rotatable_torsions(tmp_path, capsys):
    # Expected: ethanol (its only C-C bond ends in a methyl) is refused by the library and by the CLI (exit 2, one line
    # naming --model torsional and the molecule, before any conformer is made or folder written).
    from sdeflow.cli import main

    data = _conformers("CCO", 2, 0)
    with pytest.raises(ValueError, match="no rotatable torsion"):
        build_torsional_model(data)
    assert main(["molecules", "train", "--molecule", "CCO", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]) == 2
    assert "--model torsional: CCO has no rotatable torsion" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_cli_torsional_train_sample_and_checkpoint_round_trip(tmp_path):
    # Expected: `molecules train` defaults to the torsional model; its checkpoint holds the local structures (equal to
    # the first training conformers, centred, exactly), `molecules sample` reads the kind from it and writes 4 conformers
    # whose bonds are the training conformers' to 1e-9 A; `sdeflow sample` draws the (n, 1) torsion angles from the same
    # checkpoint; XYZ without evaluation needs no RDKit on the sampling side.
    from sdeflow.cli import main
    from sdeflow.training.checkpoint import load_checkpoint_model

    cache = str(tmp_path / "cache")
    run = tmp_path / "run"
    assert main(["molecules", "train", "--steps", "3", "--n-train", "16", "--width", "8", "--layers", "1", "--batch-size",
                 "8", "--cache", cache, "--out", str(run), "--quiet"]) == 0
    model, _, _, config = load_checkpoint_model(run)
    assert isinstance(model.net, TorsionNet) and config["data"]["molecule"]["model"] == "torsional"
    train = generate_conformers("butane", 16, seed=0, cache_dir=cache)
    centred = train.coords - train.coords.mean(axis=1, keepdims=True)
    assert np.array_equal(model.net.local_structures.numpy(), centred)
    out = tmp_path / "samples"
    assert main(["molecules", "sample", "--ckpt", str(run), "--n", "4", "--sample-steps", "2", "--cache", cache,
                 "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "torsional" and report["metrics"]["samples"]["bond_error"] < 0.01
    x = sample_conformers(model, 4, seed=0, solver=None, steps=2)
    i, j = np.array([b[0] for b in train.bonds]), np.array([b[1] for b in train.bonds])
    assert np.abs(np.linalg.norm(x[:, i] - x[:, j], axis=-1) - np.linalg.norm(train.coords[:4, i] - train.coords[:4, j], axis=-1)).max() < 1e-9
    gen = tmp_path / "gen"
    assert main(["sample", "--ckpt", str(run), "--n", "3", "--out", str(gen), "--quiet"]) == 0
    xyz = tmp_path / "xyz"
    assert main(["molecules", "sample", "--ckpt", str(run), "--n", "2", "--sample-steps", "2", "--format", "xyz",
                 "--no-eval", "--out", str(xyz), "--quiet"]) == 0
    assert (xyz / "conformers.xyz").read_text().splitlines()[2].startswith("C ")


@pytest.mark.slow
def test_short_torsional_training_learns_butanes_torsion_distribution():
    # Expected: 600 steps of batch 64 (width 64, 3 blocks; ~6 s of CPU) on 600 butane conformers; 300 samples with
    # UniPC in 25 steps against 300 held-out conformers: torsion JSD below 0.05 bits (measured 0.022; the floor, a
    # second held-out set of 300 against the first, is 0.009) and each staggered sector's share within 0.06 of the
    # held-out set's (measured 0.230 / 0.527 / 0.243 against 0.237 / 0.527 / 0.237); bond lengths are the local
    # structures' (error < 0.01 A). The Cartesian EGNN stays near uniform, 0.7 bits (docs/molecules.md).
    # The score itself: below.
    data = _conformers("butane", 600, 0)
    held = _conformers("butane", 300, 1)
    config = TrainConfig(steps=600, batch_size=64, lr=2e-3, warmup_steps=50, ema_decay=0.99, progress=False)
    result = train_conformer_model(data, model="torsional", config=config)
    x = sample_conformers(result.ema_model, 300, seed=10, solver=None, steps=25)
    from sdeflow.applications.molecules.diagnostics import staggered_sector

    quads = [(0, 1, 2, 3)]
    angles, ref = M.torsion_angles(x, quads), M.torsion_angles(held.coords, quads)
    jsd = M.torsion_jsd(angles, ref)["mean"]
    shares = [np.array([(staggered_sector(a)[:, 0] == k).mean() for k in range(3)]) for a in (angles, ref)]
    assert jsd < 0.05, jsd
    assert np.abs(shares[0] - shares[1]).max() < 0.06, shares
    assert M.bond_length_error(x, held.coords, held.bonds) < 0.01
    from sdeflow.applications.molecules import torsion_score_check

    # The learned eps_hat against the exact minimizer of the training torsions (torus_mixture_eps), RMS weighted by the
    # noised data density: measured 0.14, 0.15, 0.085 at sigma = 0.1, 0.3, 1.0 rad, where an untrained (zero) model is
    # off by the target's RMS, 1.00, 0.99, 0.25. Bound: a quarter of that at 0.1 and 0.3, half at 1.0.
    rows = torsion_score_check(result.ema_model, np.radians(M.torsion_angles(data.coords, quads)), (0.1, 0.3, 1.0))
    for row, share in zip(rows, (0.25, 0.25, 0.5)):
        assert row["rms_error"] < share * row["rms_target"], rows


def test_cli_resume_without_model_continues_the_runs_model(tmp_path, capsys):
    # Expected: an EGNN run resumed without --model stays an EGNN run (the default, torsional, would not match its
    # checkpoint): exit 0, report "model": "egnn" at step 3.
    from sdeflow.cli import main

    args = ["--n-train", "8", "--width", "8", "--layers", "1", "--batch-size", "4", "--cache", str(tmp_path / "cache"),
            "--out", str(tmp_path / "run")]
    assert main(["molecules", "train", "--model", "egnn", "--steps", "2", *args, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["molecules", "train", "--steps", "3", "--resume", *args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "egnn" and report["steps"] == 3


def test_torus_mixture_eps_is_the_regression_minimizer_for_point_data():
    # Two data points on the 2-torus (k = 2). The regression minimizer E[eps | u] is checked by the tower property:
    # within each of 8 x 8 bins of u, the mean of the drawn eps equals the mean of torus_mixture_eps(u) over the same
    # draws (no bin-width bias). 4e5 draws; bins with >= 3,000 draws: standard error <= 0.018, bound 0.06 (measured
    # max 0.034). The sum over lifts itself is checked against the Fourier series above.
    from sdeflow.applications.molecules import torus_mixture_eps

    sigma, centres = 0.9, np.array([[0.5, -2.0], [2.8, 1.0]])
    rng = np.random.default_rng(4)
    n = 400_000
    eps = rng.standard_normal((n, 2))
    u = wrap_angle(centres[rng.integers(0, 2, n)] + sigma * eps)
    exact = np.concatenate([torus_mixture_eps(u[i : i + 100_000], centres, sigma) for i in range(0, n, 100_000)])
    bins = 8
    idx = np.minimum(((u + math.pi) / (2 * math.pi) * bins).astype(int), bins - 1)
    flat = idx[:, 0] * bins + idx[:, 1]
    counts = np.bincount(flat, minlength=bins * bins)
    ok = counts >= 3000
    assert ok.sum() >= 20
    diff = np.stack([np.bincount(flat, eps[:, j] - exact[:, j], bins * bins) for j in range(2)], 1) / np.maximum(counts, 1)[:, None]
    assert np.abs(diff[ok]).max() < 0.06
