"""Metrics against closed forms: W2/KL between Gaussians, energy and MMD of Gaussians, JSD limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import norm

from sdeflow import metrics as M


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------- transport
def test_sliced_1d_equals_exact_w2_for_unequal_sizes():
    # In 1-D the sliced distance is the exact W2; the merged quantile functions must reproduce the
    # network-simplex optimum of POT to round-off (1e-10) for n != m (here 137 and 90 points).
    g = _rng(0)
    x, y = g.standard_normal(137), 2.0 + 0.5 * g.standard_normal(90)
    assert M.sliced_wasserstein2(x, y) == pytest.approx(M.wasserstein2(x, y), abs=1e-10)


def test_sliced_w2_of_a_translation():
    # y = x + c: every slice is shifted by <theta, c>, so SW2^2 = mean_l <theta_l, c>^2 exactly, whose
    # expectation over the sphere is |c|^2 / d. With 4096 directions in d = 4 the Monte Carlo relative
    # error is ~1.6% (sd of Beta(1/2, 3/2) / mean / 64); we allow 6%.
    g = _rng(1)
    x = g.standard_normal((500, 4))
    c = np.array([1.0, -2.0, 0.5, 0.0])
    sw = M.sliced_wasserstein2(x, x + c, n_projections=4096)
    assert sw**2 == pytest.approx(float(c @ c) / 4, rel=0.06)


def test_w2_of_a_translation_and_of_a_permutation():
    # W2(mu, mu + c) = |c| exactly (the identity coupling is optimal for the squared cost); a
    # permutation of the same points is at distance 0.
    g = _rng(2)
    x = g.standard_normal((200, 3))
    c = np.array([0.3, -0.4, 1.2])
    assert M.wasserstein2(x, x + c) == pytest.approx(float(np.linalg.norm(c)), rel=1e-9)
    assert M.wasserstein2(x, x[g.permutation(200)]) == pytest.approx(0.0, abs=1e-7)


def test_w2_equals_the_optimal_assignment():
    # For n = m uniform weights the optimal plan is a permutation (Birkhoff): W2^2 is the optimal
    # assignment cost / n, computed independently by scipy's Hungarian-type solver.
    g = _rng(3)
    x, y = g.standard_normal((60, 2)), g.standard_normal((60, 2)) + 0.3
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    r, c = linear_sum_assignment(cost)
    assert M.wasserstein2(torch.from_numpy(x), y) == pytest.approx(math.sqrt(cost[r, c].mean()), rel=1e-9)


def test_w2_rejects_too_many_points_with_the_fix():
    x = np.zeros((11, 2))
    with pytest.raises(ValueError, match="sliced_wasserstein2"):
        M.wasserstein2(x, x, max_points=10)


# ---------------------------------------------------------------------------------------- Gaussians
def test_kl_gaussian_closed_forms():
    # 1-D: KL = log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2.
    m1, s1, m2, s2 = 0.3, 0.7, -1.0, 1.9
    expected = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    assert M.kl_gaussian(m1, s1**2, m2, s2**2) == pytest.approx(expected, rel=1e-12)
    # Diagonal covariances: the sum of the 1-D divergences; a full matrix rotated jointly gives the same.
    v1, v2 = np.array([0.5, 2.0]), np.array([1.5, 0.25])
    mu1, mu2 = np.array([0.0, 1.0]), np.array([1.0, -1.0])
    per_dim = sum(
        math.log(math.sqrt(b / a)) + (a + (p - q) ** 2) / (2 * b) - 0.5 for a, b, p, q in zip(v1, v2, mu1, mu2)
    )
    assert M.kl_gaussian(mu1, v1, mu2, v2) == pytest.approx(per_dim, rel=1e-12)
    th = 0.7
    R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    rotated = M.kl_gaussian(R @ mu1, R @ np.diag(v1) @ R.T, R @ mu2, R @ np.diag(v2) @ R.T)
    assert rotated == pytest.approx(per_dim, rel=1e-10)
    assert M.kl_gaussian(mu1, v1, mu1, v1) == 0.0


def test_kl_gaussian_rejects_singular_covariance():
    with pytest.raises(ValueError, match="positive definite"):
        M.kl_gaussian([0, 0], np.zeros((2, 2)), [0, 0], np.eye(2))


def test_w2_gaussian_closed_forms():
    # Commuting (diagonal) covariances: W2^2 = |m1 - m2|^2 + sum (s1 - s2)^2.
    s1, s2 = np.array([0.5, 2.0, 1.0]), np.array([1.5, 0.5, 1.0])
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = math.sqrt(float(((m1 - m2) ** 2).sum() + ((s1 - s2) ** 2).sum()))
    assert M.w2_gaussian(m1, s1**2, m2, s2**2) == pytest.approx(expected, rel=1e-12)
    # Non-commuting 2x2: tr sqrt(P) = sqrt(tr P + 2 sqrt(det P)) for a 2x2 PSD P, so
    # tr (C1^{1/2} C2 C1^{1/2})^{1/2} = sqrt(tr(C1 C2) + 2 sqrt(det C1 det C2)) (an independent formula).
    C1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    C2 = np.array([[0.5, -0.3], [-0.3, 1.5]])
    cross = math.sqrt(np.trace(C1 @ C2) + 2 * math.sqrt(np.linalg.det(C1) * np.linalg.det(C2)))
    expected = math.sqrt(np.trace(C1) + np.trace(C2) - 2 * cross)
    assert M.w2_gaussian([0, 0], C1, [0, 0], C2) == pytest.approx(expected, rel=1e-10)
    assert M.w2_gaussian([0, 0], C2, [0, 0], C1) == pytest.approx(expected, rel=1e-10)  # symmetric
    # Singular covariances are fine (eigh with clipping): a point mass vs N(0, 1) is at distance 1.
    assert M.w2_gaussian(0.0, 0.0, 0.0, 1.0) == pytest.approx(1.0, rel=1e-12)


def test_frechet_distance_is_w2_squared_of_the_fits_and_estimates_the_truth():
    g = _rng(4)
    x = g.standard_normal((20000, 2)) * [1.0, 0.5]
    y = g.standard_normal((20000, 2)) * [2.0, 0.5] + [1.0, 0.0]
    mx, cx = M.gaussian_fit(x)
    my, cy = M.gaussian_fit(y)
    fd = M.frechet_distance(x, y)
    assert fd == pytest.approx(M.w2_gaussian(mx, cx, my, cy) ** 2, rel=1e-10)
    # Truth: |m|^2 + (1 - 2)^2 + 0 = 2; moment estimates at n = 20000 are good to ~2% here.
    assert fd == pytest.approx(2.0, rel=0.03)


# ---------------------------------------------------------------------------------------- kernels
def test_energy_distance_1d_gaussians_closed_form():
    # N(0,1) vs N(mu,1): 2 E|X - Y| - E|X - X'| - E|Y - Y'| with X - Y ~ N(-mu, 2):
    # E|Z| = s sqrt(2/pi) exp(-mu^2 / (2 s^2)) + mu (1 - 2 Phi(-mu / s)), s = sqrt 2; E|X - X'| = 2/sqrt(pi).
    # The V-statistic adds E|X - X'| (1/n + 1/m). At n = m = 4000 the sd is ~0.01 of the value 0.47.
    mu, s, n = 1.0, math.sqrt(2.0), 4000
    e_xy = s * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * s**2)) + mu * (1 - 2 * norm.cdf(-mu / s))
    d2 = 2 * e_xy - 2 * (2 / math.sqrt(math.pi))
    g = _rng(5)
    x, y = g.standard_normal(n), mu + g.standard_normal(n)
    expected = d2 + 2 / math.sqrt(math.pi) * (2 / n)
    assert M.energy_distance(x, y) == pytest.approx(expected, rel=0.05)


def test_energy_distance_1d_equals_twice_integrated_squared_cdf_difference():
    # In 1-D, D^2 of the empirical measures = 2 int (F_n - G_m)^2 exactly (Szekely & Rizzo 2013, eq. 2.3).
    g = _rng(6)
    x, y = g.standard_normal(50), 0.5 + g.standard_normal(70)
    grid = np.sort(np.concatenate([x, y]))
    F = np.searchsorted(np.sort(x), grid, side="right") / 50
    G = np.searchsorted(np.sort(y), grid, side="right") / 70
    integral = float(np.sum((F[:-1] - G[:-1]) ** 2 * np.diff(grid)))
    assert M.energy_distance(x, y) == pytest.approx(2 * integral, rel=1e-10)


def test_mmd_gaussians_closed_form():
    # RBF kernel exp(-|a - b|^2 / (2 h^2)), X ~ N(0, I_2), Y ~ N(mu, I_2):
    # E k(X, X') = E k(Y, Y') = r = h^2 / (h^2 + 2), E k(X, Y) = r exp(-|mu|^2 / (2 (h^2 + 2))),
    # so MMD^2 = 2 r (1 - exp(-|mu|^2 / (2 (h^2 + 2)))) = 0.1245 at h = 1, |mu| = 1. The unbiased
    # estimator at n = m = 1500 has sd ~0.004 here; we allow 12%.
    h, mu = 1.0, np.array([1.0, 0.0])
    r = h**2 / (h**2 + 2)
    expected = 2 * r * (1 - math.exp(-float(mu @ mu) / (2 * (h**2 + 2))))
    g = _rng(7)
    x, y = g.standard_normal((1500, 2)), g.standard_normal((1500, 2)) + mu
    assert M.mmd(x, y, bandwidths=h) == pytest.approx(expected, rel=0.12)
    # Equal distributions: the unbiased estimate is centred at 0 (|value| within 4 sd ~ 2e-3).
    assert abs(M.mmd(x, g.standard_normal((1500, 2)), bandwidths=h)) < 2e-3


# ---------------------------------------------------------------------------------------- divergences
def test_jensen_shannon_identical_disjoint_and_half_overlap():
    # Identical sets: 0. Disjoint supports: log 2 (the maximum). Uniform on [0, 1] vs on [0.5, 1.5]
    # on bins aligned with the overlap: M = 1/2 off the overlap, so JSD = (1/2) log 2 exactly.
    x = (np.arange(400) + 0.5) / 400
    assert M.jensen_shannon(x, x) == 0.0
    assert M.jensen_shannon(x, x + 5.0) == pytest.approx(math.log(2), abs=1e-12)
    assert M.jensen_shannon(x, x + 0.5, bins=6, range=(0.0, 1.5)) == pytest.approx(0.5 * math.log(2), abs=1e-12)
    xy = np.stack([x, x[::-1]], axis=1)
    assert M.jensen_shannon(xy, xy + [0.0, 3.0]) == pytest.approx(math.log(2), abs=1e-12)


def test_jensen_shannon_of_same_distribution_falls_with_n():
    # Two draws of N(0, I_2): the histogram JSD is pure finite-sample error and must fall with n
    # (roughly like cells / n; 16x more points should cut it by more than 2x).
    g = _rng(8)
    small = np.mean([M.jensen_shannon(g.standard_normal((500, 2)), g.standard_normal((500, 2))) for _ in range(3)])
    large = np.mean([M.jensen_shannon(g.standard_normal((8000, 2)), g.standard_normal((8000, 2))) for _ in range(3)])
    assert large < small / 2


def test_kl_histogram_smoothing_is_as_documented():
    # Two cells, P = (1, 0), Q = (0, 1), eps smoothing: P' = ((1 + e)/(1 + 2e), e/(1 + 2e)), Q' reversed,
    # KL = log((1 + e)/e) / (1 + 2e).
    e = 1e-10
    x, y = np.zeros(10), np.ones(10)
    assert M.kl_divergence(x, y, bins=2, eps=e) == pytest.approx(math.log((1 + e) / e) / (1 + 2 * e), rel=1e-12)
    assert M.kl_divergence(x, y, bins=2, eps=0.0) == math.inf
    assert M.kl_divergence(x, x) == 0.0


def test_density_divergences_against_closed_forms():
    # KL between N(0, 1) and N(1, 4) on a fine grid (midpoint rule, +-20: truncated tails < 1e-20) equals the closed form to 1e-8;
    # JSD of uniform densities overlapping by half is (1/2) log 2; JSD of disjoint densities is log 2.
    grid = np.linspace(-20, 20, 40001)
    dx = grid[1] - grid[0]
    p, q = norm.pdf(grid), norm.pdf(grid, 1.0, 2.0)
    assert M.kl_density(p, q, dx) == pytest.approx(M.kl_gaussian(0.0, 1.0, 1.0, 4.0), abs=1e-8)
    u = np.linspace(0, 1.5, 6, endpoint=False) + 0.125
    a = ((u > 0) & (u < 1)).astype(float)
    b = ((u > 0.5) & (u < 1.5)).astype(float)
    assert M.jensen_shannon_density(a, b, 0.25) == pytest.approx(0.5 * math.log(2), abs=1e-12)
    assert M.jensen_shannon_density(a * (u < 0.5), b * (u > 1.0), 0.25) == pytest.approx(math.log(2), abs=1e-12)
    # 2-D grid and per-cell areas give the same number as the uniform area.
    P, Q = np.outer(a, a), np.outer(b, a)
    assert M.jensen_shannon_density(P, Q, np.full(P.shape, 0.0625)) == pytest.approx(
        M.jensen_shannon_density(P, Q, 0.0625), abs=1e-15
    )


def test_density_divergence_input_errors():
    with pytest.raises(ValueError, match="non-negative"):
        M.jensen_shannon_density(np.array([1.0, -1.0]), np.array([1.0, 1.0]), 1.0)
    with pytest.raises(ValueError, match="same grid"):
        M.kl_density(np.ones(3), np.ones(4), 1.0)
    with pytest.raises(ValueError, match="normalize=True"):
        M.jensen_shannon_density(np.ones(3), np.ones(3), 1.0, normalize=False)


# ---------------------------------------------------------------------------------------- properties
SYMMETRIC = [
    M.sliced_wasserstein2,
    M.wasserstein2,
    lambda a, b: M.mmd(a, b, bandwidths=[0.5, 1.0]),
    M.energy_distance,
    M.frechet_distance,
    M.jensen_shannon,
]


@pytest.mark.parametrize("metric", SYMMETRIC, ids=["sw2", "w2", "mmd", "energy", "frechet", "jsd"])
def test_symmetric_and_zero_on_identical_samples(metric):
    # Each is symmetric in (x, y) and positive for different sets; every one except the unbiased MMD
    # is exactly 0 on the same set (1e-6 round-off); the unbiased MMD of a set with itself is
    # -O(1/n) (diagonal terms removed from the within sums only), so it is checked within 1e-2.
    g = _rng(9)
    x, y = g.standard_normal((300, 2)), 0.5 * g.standard_normal((250, 2)) + 1.0
    assert metric(x, y) == pytest.approx(metric(y, x), rel=1e-9, abs=1e-12)
    assert metric(x, y) > 0
    assert abs(metric(x, x)) < 1e-2 if metric is SYMMETRIC[2] else metric(x, x) == pytest.approx(0.0, abs=1e-6)


def test_torch_and_numpy_inputs_agree_and_event_shapes_flatten():
    g = _rng(10)
    x = g.standard_normal((100, 2, 3))
    y = g.standard_normal((80, 6))
    assert M.sliced_wasserstein2(torch.from_numpy(x).float(), y) == pytest.approx(
        M.sliced_wasserstein2(x.reshape(100, 6), y), rel=1e-6
    )


def test_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="same number of dimensions"):
        M.energy_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        M.frechet_distance(np.full((5, 2), np.nan), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        M.jensen_shannon(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="bins"):
        M.jensen_shannon(np.zeros(5), np.ones(5), bins=0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        M.mmd("abc", np.zeros(3))


@pytest.mark.parametrize(
    "metric, minimum",
    [("sliced_wasserstein2", 1), ("wasserstein2", 1), ("mmd", 2), ("energy_distance", 1),
     ("frechet_distance", 2), ("jensen_shannon", 1), ("kl_divergence", 1)],
)
def test_empty_input_names_the_argument_and_its_shape(metric, minimum):
    # Expected: an empty sample set (0, 2) is a ValueError naming x, the minimum number of samples and
    # the shape received (before: numpy's "cannot reshape array of size 0 into shape (0,newaxis)").
    with pytest.raises(ValueError, match=rf"x must hold at least {minimum} sample.*got shape \(0, 2\)"):
        getattr(M, metric)(torch.zeros(0, 2), torch.ones(10, 2))


def test_complex_bool_and_empty_dimension_inputs_are_refused():
    # Expected: complex samples (their imaginary part would be dropped with a warning) and boolean
    # masks are TypeErrors naming the argument and its dtype; a Gaussian of dimension 0 is a ValueError
    # naming m1 (before: "zero-size array to reduction operation maximum").
    with pytest.raises(TypeError, match=r"y must hold real numbers.*complex64"):
        M.energy_distance(torch.ones(5, 2), torch.zeros(5, 2, dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"x must hold real numbers.*bool"):
        M.sliced_wasserstein2(np.ones((5, 2), dtype=bool), np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"m1 must be a mean of at least one dimension"):
        M.kl_gaussian(np.zeros(0), np.zeros((0, 0)), np.zeros(0), np.zeros((0, 0)))
    with pytest.raises(ValueError, match=r"reference must hold at least 1 sample.*got shape \(0, 2\)"):
        M.two_sample_floor("energy_distance", torch.zeros(0, 2), 10)
