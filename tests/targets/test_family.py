"""The exact-score problem family: determinism, disjoint splits, exact scores, data scale and coverage.

Every expected figure comes from the recipe's mathematics (an independent density built with
torch.distributions, the normalization the recipe solves for, bounds that follow from the layout) or
from the ranges the family promises in its docstring; none is a stored sum.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from sdeflow.processes import EDM, VP
from sdeflow.targets import (
    DATA_STD,
    FAMILY_SPLITS,
    FamilyProblem,
    GaussianMixture,
    family,
    family_names,
    family_problem,
    mixture64d,
    random_mixture,
    ring2d,
)

F64 = torch.float64
DIMS = {2, 4, 16, 32, 64, 128, 256, 512}


@functools.lru_cache(maxsize=None)
def _split(split: str) -> tuple[FamilyProblem, ...]:
    # Built once per test session (inside a test, so on the one thread the suite's fixture sets).
    return tuple(family(split))


def _all() -> list[FamilyProblem]:
    return [p for split in FAMILY_SPLITS for p in _split(split)]


def _component_scales(g: GaussianMixture) -> torch.Tensor:
    """``sqrt(tr(Sigma_k) / D) / data_std``: each component's RMS standard deviation relative to the data."""
    return torch.sqrt(torch.diagonal(g.covs, dim1=-2, dim2=-1).mean(-1)) / DATA_STD


def _eigenvalues(g: GaussianMixture) -> torch.Tensor:
    """``(K, D)`` eigenvalues of the component covariances."""
    if g.covariance_type == "full":
        return torch.linalg.eigvalsh(g.covs)
    return torch.diagonal(g.covs, dim1=-2, dim2=-1)


def _nearest_mode_distance(g: GaussianMixture) -> torch.Tensor:
    """Per mode, the distance to its nearest other mode in combined RMS stds ``|mu_j - mu_k| / sqrt(s_j^2 + s_k^2)``."""
    s = _component_scales(g) * DATA_STD
    d = torch.cdist(g.means, g.means) / torch.sqrt(s[:, None] ** 2 + s[None, :] ** 2)
    d.fill_diagonal_(math.inf)
    return d.min(dim=1).values


# ------------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("rotated", [False, True])
def test_random_mixture_is_deterministic(rotated):
    """The same arguments give bit-identical weights, means and covariances (the recipe draws from
    its own numpy generator only); another seed gives other means (by far more than round-off: the
    centres are O(data_std) apart, so a max difference below 1e-3 would mean the seed was ignored)."""
    kwargs = dict(scale=(0.01, 1.0), anisotropy=30.0, rotated=rotated, n_clusters=3, separation=1.5)
    a = random_mixture(7, 12, 6, **kwargs)
    b = random_mixture(7, 12, 6, **kwargs)
    assert torch.equal(a.weights, b.weights)
    assert torch.equal(a.means, b.means)
    assert torch.equal(a.covs, b.covs)
    c = random_mixture(8, 12, 6, **kwargs)
    assert float((a.means - c.means).abs().max()) > 1e-3


def test_family_is_deterministic():
    """Two builds of each split: the same names in the same order and bit-identical parameters."""
    for split in FAMILY_SPLITS:
        first, second = family(split), family(split)
        assert [p.name for p in first] == [p.name for p in second] == family_names(split)
        for p, q in zip(first, second):
            assert torch.equal(p.target.weights, q.target.weights), p.name
            assert torch.equal(p.target.means, q.target.means), p.name
            assert torch.equal(p.target.covs, q.target.covs), p.name


def test_given_weights_change_only_the_weights():
    """``weights=`` replaces the Dirichlet draw, which is still made, so every later draw is the same:
    the covariances are bit-identical to those without ``weights=`` (they do not depend on the weights),
    and the weights are the given ones, normalized (to 1e-15, one rounding). A recipe that skipped the
    draw would shift the stream and change the covariances."""
    base = random_mixture(3, 8, 4, scale=0.05, anisotropy=10.0)
    given = random_mixture(3, 8, 4, scale=0.05, anisotropy=10.0, weights=[1.0, 2.0, 3.0, 4.0])
    assert torch.equal(base.covs, given.covs)
    torch.testing.assert_close(given.weights, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64), rtol=0, atol=1e-15)
    # The means move (b and the mixture mean depend on the weights) but stay centred at 0.
    assert float(given.mean.abs().max()) < 1e-12


def test_family_problem_looks_up_by_name():
    """``family_problem(name)`` gives the problem of that name in its split, with identical parameters."""
    for split in FAMILY_SPLITS:
        p = _split(split)[3]
        q = family_problem(p.name)
        assert (q.name, q.split, q.seed) == (p.name, split, p.seed)
        assert torch.equal(q.target.means, p.target.means)
        assert torch.equal(q.target.covs, p.target.covs)


# ------------------------------------------------------------------------------------ the split
def test_splits_are_disjoint_and_exclude_the_public_benchmarks():
    """No name, no seed and no parameter set is shared between the splits, and neither split contains
    ring2d or mixture64d. Parameters are compared per dimension: a tuning and a validation problem of
    the same dimension must have some mean more than 1e-3 (data units) apart from every mean of the
    other, i.e. not even one component is shared. The same test against ring2d (D = 2) and mixture64d
    (D = 64), which share (D, K) with tuning problems, shows the family is not those targets."""
    tuning, validation = _split("tuning"), _split("validation")
    assert len(tuning) == len(validation) == 8
    assert not {p.name for p in tuning} & {p.name for p in validation}
    assert not {p.seed for p in tuning} & {p.seed for p in validation}
    assert all("ring" not in p.name and "mixture64" not in p.name for p in _all())

    def shares_a_component(g: GaussianMixture, h: GaussianMixture) -> bool:
        if g.dim != h.dim:
            return False
        return bool((torch.cdist(g.means, h.means) < 1e-3).any())

    for p in tuning:
        for q in validation:
            assert not shares_a_component(p.target, q.target), (p.name, q.name)
    publics = [ring2d(), mixture64d()]
    for p in _all():
        for public in publics:
            assert not shares_a_component(p.target, public), (p.name, public)
    # The check can fire: a problem shares its components with itself.
    assert shares_a_component(tuning[0].target, tuning[0].target)


# ------------------------------------------------------------------------------------ exact scores
def _reference_log_density(g: GaussianMixture, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """``log sum_k w_k N(x; alpha mu_k, alpha^2 Sigma_k + sigma^2 I)`` for ``x`` ``(n, D)`` at one time,
    from torch.distributions with the covariances read back from ``g.covs``: a second implementation
    of the marginal density."""
    covs = g.covs
    loc = alpha * g.means  # (K, D)
    if g.covariance_type == "full":
        cov = alpha**2 * covs + sigma**2 * torch.eye(g.dim, dtype=F64)
        log_n = MultivariateNormal(loc, covariance_matrix=cov).log_prob(x[:, None, :])
    else:
        std = torch.sqrt(alpha**2 * torch.diagonal(covs, dim1=-2, dim2=-1) + sigma**2)
        log_n = Normal(loc, std).log_prob(x[:, None, :]).sum(-1)
    return torch.logsumexp(log_n + torch.log(g.weights), dim=-1)


# EDM: noise levels from sigma_min to sigma_max; VP: from t_min (sigma ~ 0.01) to T.
PROCESS_TIMES = [(EDM(), [0.002, 0.05, 1.0, 80.0]), (VP(), [1e-3, 0.05, 0.4, 1.0])]


@pytest.mark.parametrize("split", FAMILY_SPLITS)
def test_exact_score_and_x0_match_autograd_of_the_marginal_density(split):
    """On every problem, EDM and VP, at 4 times from the data end to the noise end, at 3 exact samples
    of ``p_t`` per time (drawn together, so one time per sample):

    - ``marginal_log_prob`` equals the torch.distributions density to rtol 1e-10 (float64; measured
      worst 7e-13: the two sum O(D) terms in different orders);
    - ``score`` equals autograd of that independent density, and of ``marginal_log_prob``, to 1e-10
      times the sample's max |score| (measured worst 2e-13: Cholesky against eigenbasis solves of
      matrices with condition number <= 1e4, and sharp components make |score| ~ 1e3 at small noise);
    - ``x0`` equals Tweedie's ``(x + sigma^2 grad log p) / alpha`` to 1e-9 (1 + max |x|) (measured worst
      7e-12, at VP's t = 1 where dividing by alpha = 0.0066 amplifies the cancellation in the sum)."""
    for p in _split(split):
        g = p.target
        for process, ts in PROCESS_TIMES:
            t = torch.tensor([ti for ti in ts for _ in range(3)], dtype=F64)
            x = g.noised_sample(t.shape[0], t, process, seeds=range(p.seed, p.seed + t.shape[0]), dtype=F64)
            x.requires_grad_(True)
            alpha, sigma = process.alpha(t), process.sigma(t)
            ref = torch.cat(
                [
                    _reference_log_density(g, x[3 * j : 3 * j + 3], float(alpha[3 * j]), float(sigma[3 * j]))
                    for j in range(len(ts))
                ]
            )
            (grad_ref,) = torch.autograd.grad(ref.sum(), x)
            own = g.marginal_log_prob(x, t, process)
            (grad_own,) = torch.autograd.grad(own.sum(), x)
            x = x.detach()
            torch.testing.assert_close(own.detach(), ref.detach(), rtol=1e-10, atol=0, msg=p.name)

            score = g.score(x, t, process)
            scale = score.abs().amax(dim=1, keepdim=True)
            for grad in (grad_ref, grad_own):
                err = ((score - grad).abs() / scale).max()
                assert float(err) <= 1e-10, (p.name, process.name, float(err))

            tweedie = (x + sigma[:, None] ** 2 * grad_ref) / alpha[:, None]
            err = (g.x0(x, t, process) - tweedie).abs().amax(dim=1) / (1.0 + x.abs().amax(dim=1))
            assert float(err.max()) <= 1e-9, (p.name, process.name, float(err.max()))


# ------------------------------------------------------------------------------------ weights, scale
def test_weights_sum_to_one_and_are_unequal():
    """Weights sum to 1 (to 1e-12) and are unequal: in every problem max/min >= 2 (Dirichlet with
    concentration <= 2 over K >= 4 components; equal weights would give exactly 1)."""
    for p in _all():
        w = p.target.weights
        assert abs(float(w.sum()) - 1.0) <= 1e-12, p.name
        assert float(w.max() / w.min()) >= 2.0, (p.name, w.tolist())


def test_data_scale_is_order_one():
    """Every problem is centred (|mean| <= 1e-12) and has ``sqrt(tr(Cov) / D) = DATA_STD = 0.5`` (to
    1e-12 relative: the recipe solves for it in closed form); no coordinate's std exceeds 2 (4 DATA_STD;
    the largest, 1.6, is a 2-centre problem whose spread lies along one random direction); and, from
    2000 exact samples, >= 90% of all coordinates lie in [-1, 1] (95.4% for N(0, 0.5^2) coordinates;
    the family ranges 93-100%)."""
    assert DATA_STD == 0.5
    for p in _all():
        g = p.target
        cov = g.covariance
        assert float(g.mean.abs().max()) <= 1e-12, p.name
        rms = math.sqrt(float(torch.diagonal(cov).mean()))
        assert abs(rms - DATA_STD) <= 1e-12 * DATA_STD, (p.name, rms)
        assert float(torch.sqrt(torch.diagonal(cov)).max()) <= 2.0, p.name
        x = g.sample(2000, seeds=range(2000), dtype=F64)
        inside = float((x.abs() <= 1.0).to(F64).mean())
        assert inside >= 0.9, (p.name, inside)


# ------------------------------------------------------------------------------------ coverage
def test_each_problem_is_what_its_name_says():
    """Per problem, from its GaussianMixture alone: the component scales run exactly from the stated
    low to high (rel 1e-9: log-spaced with both ends drawn), every component's eigenvalue ratio is the
    stated anisotropy (rel 1e-6; eigvalsh round-off on full covariances), full covariances iff rotated,
    K as named. "near" problems have a mode within sqrt(2) separation combined stds of another (two
    modes of one centre: |o_j - o_k| <= separation (s_j + s_k) <= sqrt(2) separation sqrt(s_j^2 + s_k^2));
    "far" problems with sharp components (scale <= 0.3) have every mode >= 10 combined stds from all
    others (their centres are O(1) apart, the stds <= 0.15)."""
    for p in _all():
        g = p.target
        lo, hi = p.scale
        scales = _component_scales(g)
        assert math.isclose(float(scales.min()), lo, rel_tol=1e-9), (p.name, float(scales.min()))
        assert math.isclose(float(scales.max()), hi, rel_tol=1e-9), (p.name, float(scales.max()))
        eig = _eigenvalues(g)
        ratio = eig.amax(dim=1) / eig.amin(dim=1)
        torch.testing.assert_close(ratio, torch.full_like(ratio, p.anisotropy), rtol=1e-6, atol=0, msg=p.name)
        assert g.covariance_type == ("full" if p.rotated else "diagonal"), p.name
        assert (g.dim, g.n_components) == (p.dim, p.n_components)
        assert p.name.startswith(f"d{p.dim}-k{p.n_components}-") and p.name.endswith(f"-s{p.seed}")
        nearest = _nearest_mode_distance(g)
        if p.near:
            assert float(nearest.min()) <= math.sqrt(2.0) * p.separation + 1e-9, (p.name, float(nearest.min()))
        elif hi <= 0.3:
            assert float(nearest.min()) >= 10.0, (p.name, float(nearest.min()))


@pytest.mark.parametrize("split", FAMILY_SPLITS)
def test_each_split_covers_the_stated_ranges(split):
    """Each split alone spans the family: one problem per dimension 2, 4, 16, 32, 64, 128, 256, 512;
    component scales reaching 1e-3 and 1 (relative to the data, rel 1e-9); anisotropy 100 (two decades
    of variance) somewhere and >= 10 everywhere; diagonal and full covariances; overlapping modes
    (nearest < 2.5 combined stds) and well-separated ones (every mode >= 100 apart) in some problems.
    Cost bounds: K <= 32, and full covariances with K D^2 <= 2^18 (2 MiB of float64)."""
    problems = _split(split)
    assert sorted(p.dim for p in problems) == sorted(DIMS)
    scales = torch.cat([_component_scales(p.target) for p in problems])
    assert math.isclose(float(scales.min()), 1e-3, rel_tol=1e-9)
    assert math.isclose(float(scales.max()), 1.0, rel_tol=1e-9)
    anisotropies = [p.anisotropy for p in problems]
    assert max(anisotropies) == 100.0 and min(anisotropies) >= 10.0
    assert {p.target.covariance_type for p in problems} == {"diagonal", "full"}
    nearest = [float(_nearest_mode_distance(p.target).min()) for p in problems]
    assert min(nearest) < 2.5 and max(nearest) >= 100.0, nearest
    for p in problems:
        assert p.n_components <= 32, p.name
        if p.rotated:
            assert p.n_components * p.dim**2 <= 2**18, p.name


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_components=1), "n_components"),
        (dict(dim=0), "dim"),
        (dict(seed=-1), "seed"),
        (dict(scale=0.0), "scale"),
        (dict(scale=1.5), "scale"),
        (dict(scale=(0.5, 0.1)), "scale"),
        (dict(scale="wide"), "scale"),
        (dict(anisotropy=0.5), "anisotropy"),
        (dict(n_clusters=1), "n_clusters"),
        (dict(n_clusters=5), "n_clusters"),
        (dict(separation=-1.0), "separation"),
        (dict(concentration=0.0), "concentration"),
        (dict(weights=[1.0, 2.0]), "weights"),
        (dict(weights=[1.0, 0.0, 1.0, 1.0]), "weights"),
        (dict(data_std=0.0), "data_std"),
        # All components as wide as the data leave no variance for the centres.
        (dict(scale=1.0), "no variance for the mode centres"),
        # In D = 1 offsets of 3 stds (seed 0 draws both signs) add tr(Cov) / D = 4.3 to the 0.49 of the components.
        (dict(scale=0.7, separation=3.0, dim=1), "no variance for the mode centres"),
    ],
)
def test_random_mixture_rejects_bad_knobs(kwargs, match):
    """Each bad knob is a ValueError that names it (or says what to lower)."""
    args = dict(seed=0, dim=4, n_components=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        random_mixture(**args)


def test_bad_split_and_name_are_value_errors():
    with pytest.raises(TypeError, match="rotated"):
        random_mixture(0, 4, 4, rotated=1)
    with pytest.raises(ValueError, match="split"):
        family("test")
    with pytest.raises(ValueError, match="split"):
        family_names("train")
    with pytest.raises(ValueError, match="unknown family problem"):
        family_problem("ring2d")
