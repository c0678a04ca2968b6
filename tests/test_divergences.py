"""The divergence helpers against closed forms: Gaussian KL, Gaussian energy distance."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from ncmle_prob.distributions import NoisyGaussian, NoisyGaussianMixture
from ncmle_prob.divergences import (
    energy_distance,
    energy_test,
    kl_divergence_grid,
    kl_divergence_mc,
)
from ncmle_prob.models import MADE

F64 = torch.float64


def gaussians(device: torch.device, d: int = 2) -> tuple[NoisyGaussian, NoisyGaussian]:
    if d == 2:
        p = NoisyGaussian(torch.tensor([0.2, -0.1], dtype=F64, device=device),
                          torch.tensor([[0.5, 0.3], [0.3, 0.4]], dtype=F64, device=device))
        q = NoisyGaussian(torch.tensor([-0.3, 0.4], dtype=F64, device=device),
                          torch.tensor([[0.8, -0.2], [-0.2, 0.3]], dtype=F64, device=device))
    else:
        p = NoisyGaussian(torch.tensor([0.3], dtype=F64, device=device),
                          torch.tensor([[0.25]], dtype=F64, device=device))
        q = NoisyGaussian(torch.tensor([-0.5], dtype=F64, device=device),
                          torch.tensor([[1.5]], dtype=F64, device=device))
    return p, q


def closed_form(p: NoisyGaussian, q: NoisyGaussian, sigma: float) -> float:
    mp = MultivariateNormal(p.loc, p.at(sigma).covariance_matrix)
    mq = MultivariateNormal(q.loc, q.at(sigma).covariance_matrix)
    return float(kl_divergence(mp, mq))


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("sigma", [0.0, 0.3, 1.0])
def test_grid_kl_equals_gaussian_closed_form(device: torch.device, d: int, sigma: float) -> None:
    # Midpoint rule, h = 0.03 against a smallest std of ~0.3: error O(h^2 f'') ~ 1e-5, and the
    # mass outside [-6, 6]^d is < 1e-20. Tolerance 1e-4 nats absolute.
    p, q = gaussians(device, d)
    n = 400 if d == 2 else 2000
    grid = float(kl_divergence_grid(p, q, sigma, lo=-6.0, hi=6.0, n=n))
    assert grid == pytest.approx(closed_form(p, q, sigma), abs=1e-4)


def test_grid_kl_of_equal_distributions_is_zero(device: torch.device) -> None:
    p, _ = gaussians(device)
    assert abs(float(kl_divergence_grid(p, p, 0.5, -6, 6, 100))) < 1e-12


def test_grid_kl_batch_sigma_and_event_shapes(device: torch.device) -> None:
    # A tensor σ gives one KL per level, each equal to the closed form (same tolerance as above).
    p, q = gaussians(device)
    sigmas = torch.tensor([0.0, 0.3, 1.0], dtype=F64, device=device)
    kl = kl_divergence_grid(p, q, sigmas, lo=-6.0, hi=6.0, n=400)
    assert kl.shape == (3,)
    for k, s in enumerate(sigmas.tolist()):
        assert float(kl[k]) == pytest.approx(closed_form(p, q, s), abs=1e-4)
    # Bound σ (sigma=None) is used when no σ is given.
    bound = float(kl_divergence_grid(p.at(0.3), q.at(0.3), None, -6.0, 6.0, 400))
    assert bound == pytest.approx(float(kl[1]), abs=1e-12)


def test_grid_kl_works_for_models_and_is_non_negative(device: torch.device) -> None:
    # Any NoiseConditionalDistribution: a MADE against an oracle mixture. Gibbs' inequality
    # and agreement with Monte Carlo (4 standard errors + 1e-3 quadrature allowance).
    torch.manual_seed(0)
    model = MADE(2, hidden_features=16, family="logistic_mixture", components=3).to(device)
    oracle = NoisyGaussianMixture(torch.tensor([0.5, 0.5], device=device),
                                  torch.tensor([[-1.0, 0.0], [1.0, 0.5]], device=device),
                                  0.2 * torch.eye(2, device=device).expand(2, 2, 2))
    grid = float(kl_divergence_grid(oracle, model(), 0.5, lo=-6, hi=6, n=200))
    g = torch.Generator(device=device).manual_seed(0)
    mc, se = kl_divergence_mc(oracle, model(), 0.5, 20000, g, return_stderr=True)
    assert grid > 0
    assert abs(grid - float(mc)) < 4 * float(se) + 1e-3


@pytest.mark.parametrize("d", [1, 2])
def test_mc_kl_is_unbiased(device: torch.device, d: int) -> None:
    # Monte Carlo within 4 of its own standard errors of the closed form (false alarm ~6e-5).
    p, q = gaussians(device, d)
    g = torch.Generator(device=device).manual_seed(0)
    kl, se = kl_divergence_mc(p, q, 0.3, 20000, g, return_stderr=True)
    assert abs(float(kl) - closed_form(p, q, 0.3)) < 4 * float(se)
    assert 0 < float(se) < 0.05
    # Same generator seed, same estimate.
    again = kl_divergence_mc(p, q, 0.3, 20000, torch.Generator(device=device).manual_seed(0))
    assert float(again) == float(kl)


def test_grid_refuses_a_grid_that_misses_mass(device: torch.device) -> None:
    p, q = gaussians(device)
    with pytest.raises(ValueError, match=r"widen \[lo, hi\]"):
        kl_divergence_grid(p, q, 0.3, lo=-1.0, hi=1.0, n=50)
    # The check can be switched off (e.g. to integrate over a region on purpose).
    kl_divergence_grid(p, q, 0.3, lo=-1.0, hi=1.0, n=50, mass_tolerance=None)


def test_bad_arguments(device: torch.device) -> None:
    p, q = gaussians(device)
    p1, _ = gaussians(device, 1)
    with pytest.raises(TypeError, match="q must be a NoiseConditionalDistribution"):
        kl_divergence_grid(p, MultivariateNormal(torch.zeros(2), torch.eye(2)))  # type: ignore
    with pytest.raises(ValueError, match="same event_shape"):
        kl_divergence_grid(p, p1)
    with pytest.raises(ValueError, match="1 or 2 scalars"):
        three = NoisyGaussian(torch.zeros(3, dtype=F64), torch.eye(3, dtype=F64))
        kl_divergence_grid(three, three)
    with pytest.raises(ValueError, match="lo < hi"):
        kl_divergence_grid(p, q, 0.3, lo=1.0, hi=-1.0)
    with pytest.raises(ValueError, match="n must be"):
        kl_divergence_grid(p, q, 0.3, n=1)
    with pytest.raises(ValueError, match="num_samples"):
        kl_divergence_mc(p, q, 0.3, num_samples=1)
    with pytest.raises(ValueError, match="sigma"):
        kl_divergence_grid(p, q, -0.1)


def test_discretized_family_at_sigma_zero_is_refused(device: torch.device) -> None:
    model = MADE(2, hidden_features=8, family="discretized_logistic_mixture", components=2,
                 bins=8).to(device)
    with pytest.raises(ValueError, match="log mass"):
        kl_divergence_grid(model(), model(), 0.0)
    with pytest.raises(ValueError, match="log mass"):
        kl_divergence_mc(model(), model(), 0.0, 10)
    # At σ > 0 it is a density and the KL of a model with itself is zero (pointwise, so the
    # heavy tails of a random model outside the grid do not matter: mass check off).
    kl = kl_divergence_grid(model(), model(), 0.2, -5, 5, 50, mass_tolerance=None)
    assert abs(float(kl)) < 1e-6


def _gaussian_abs_mean(mu: float, var: float) -> float:
    """E|Z| for Z ~ N(mu, var) (folded normal mean)."""
    s = math.sqrt(var)
    return s * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * var)) + mu * math.erf(
        mu / (s * math.sqrt(2))
    )


def test_energy_distance_closed_form_1d(device: torch.device) -> None:
    # X ~ N(0, 1), Y ~ N(1, 1): E = 2 E|N(1, 2)| - 2 E|N(0, 2)|. The U-statistic estimate from
    # 2000 + 2000 draws has a standard deviation of ~0.02; tolerance 0.06.
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(2000, 1, generator=g, device=device, dtype=F64)
    y = 1.0 + torch.randn(2000, 1, generator=g, device=device, dtype=F64)
    exact = 2 * _gaussian_abs_mean(1.0, 2.0) - 2 * _gaussian_abs_mean(0.0, 2.0)
    assert float(energy_distance(x, y)) == pytest.approx(exact, abs=0.06)
    # Symmetric, and equal laws give ~0 (unbiased U-statistic, sd ~1e-3 here).
    assert float(energy_distance(x, y)) == pytest.approx(float(energy_distance(y, x)), abs=1e-12)
    assert abs(float(energy_distance(x[:1000], x[1000:]))) < 0.01


def test_energy_test_level_and_power(device: torch.device) -> None:
    # Under equal laws the permutation p-value is ~uniform: over 20 independent pairs, fewer
    # than 5 fall below 0.05 (expected 1; P(>= 5) ~ 3e-3). Under a 0.5-sd shift with 200 + 200
    # draws the test has power ~1 at level 0.01.
    g = torch.Generator(device=device).manual_seed(0)
    small = 0
    for _ in range(20):
        x = torch.randn(60, 2, generator=g, device=device)
        y = torch.randn(60, 2, generator=g, device=device)
        _, p = energy_test(x, y, 99, g)
        assert 0 < p <= 1
        small += p < 0.05
    assert small < 5
    x = torch.randn(200, 2, generator=g, device=device)
    y = 0.5 + torch.randn(200, 2, generator=g, device=device)
    _, p = energy_test(x, y, 200, g)
    assert p < 0.01


def test_energy_bad_input() -> None:
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        energy_distance([1.0, 2.0], torch.zeros(2, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same event size"):
        energy_distance(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="N >= 2"):
        energy_distance(torch.zeros(1, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="NaN"):
        energy_distance(torch.full((3, 2), float("nan")), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="num_permutations"):
        energy_test(torch.zeros(3, 2), torch.zeros(3, 2), 0)
