"""Exactness against closed forms (float64).

* A Gaussian-family ``MADE`` whose weights are set by hand to a linear-Gaussian AR process has
  ``log_prob`` equal to ``torch.distributions.MultivariateNormal``.
* ``NoiseConditionalAutoregressive`` with a tiny exact conditioner (the conditionals of
  :math:`\\mathcal N(\\mu, \\Sigma + \\sigma^2 I)` from a Cholesky factor per example σ) matches the
  MVN at per-example σ: ``log_prob``, ``score``, ``denoise`` and ancestral sample moments.
* The oracles match ``MultivariateNormal(μ, Σ + σ²I)`` and their closed-form scores match
  autograd.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import MultivariateNormal

from ncmle_prob.distributions import (
    NoiseConditionalAutoregressive,
    NoisyGaussian,
    NoisyGaussianMixture,
    get_family,
)
from ncmle_prob.models import MADE

F64 = torch.float64
D = 4
#: Issue's tolerance for closed forms in float64; the computations agree to ~1e-12.
EXACT = 1e-5


def _problem(device: torch.device) -> tuple[Tensor, Tensor]:
    """A fixed mean and a well-conditioned, strongly correlated covariance in 4-D."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(D, generator=g, dtype=F64)
    a = torch.randn(D, D, generator=g, dtype=F64)
    cov = a @ a.T / D + 0.3 * torch.eye(D, dtype=F64)
    return mu.to(device), cov.to(device)


def _noisy_cov(cov: Tensor, sigma: Tensor) -> Tensor:
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    return cov + (sigma**2)[..., None, None] * eye


def _mvn_score(x: Tensor, mu: Tensor, cov: Tensor) -> Tensor:
    return -torch.linalg.solve(cov, (x - mu).unsqueeze(-1)).squeeze(-1)


def _set_made_to_ar(model: MADE, bias: Tensor, coef: Tensor, log_scale: Tensor,
                    junk_above_diagonal: bool = True) -> None:
    """Makes ``model`` the AR process x_i = bias_i + Σ_{j<i} coef_ij x_j + e^{log_scale_i} ε_i.

    The nflows network's final layer is zeroed (its bias holds the constants; the output layout
    is (D, num_params) interleaved: index i * 2 + p, p = 0 loc, p = 1 log-scale) and the AR
    coefficients go into the skip connection (D × D, added to the location parameter), whose
    mask is strictly lower-triangular. ``junk_above_diagonal`` also fills the masked-out
    entries, which must have no effect.
    """
    with torch.no_grad():
        model.net.final_layer.weight.zero_()
        model.net.final_layer.bias[0::2] = bias
        model.net.final_layer.bias[1::2] = log_scale
        allowed = torch.ones(D, D, dtype=torch.bool, device=bias.device).tril(-1)
        junk = torch.full((D, D), 123.0 if junk_above_diagonal else 0.0, dtype=bias.dtype,
                          device=bias.device)
        w = torch.where(allowed, coef, junk)  # masked entries must not leak into outputs
        model.skip.weight.copy_(w)


def test_hand_set_made_is_the_linear_gaussian_ar_process(device) -> None:
    g = torch.Generator().manual_seed(1)
    bias = torch.randn(D, generator=g, dtype=F64).to(device)
    coef = (0.8 * torch.randn(D, D, generator=g, dtype=F64)).tril(-1).to(device)
    log_scale = (0.5 * torch.randn(D, generator=g, dtype=F64)).to(device)
    model = MADE(D, hidden_features=8, family="gaussian", linear_skip=True)
    model = model.to(device=device, dtype=F64)
    _set_made_to_ar(model, bias, coef, log_scale)
    # x = b + A x + S ε  =>  x = (I - A)^{-1} (b + S ε) ~ N((I - A)^{-1} b, M S² Mᵀ).
    m_inv = torch.linalg.inv(torch.eye(D, dtype=F64, device=device) - coef)
    mean = m_inv @ bias
    cov = m_inv @ torch.diag(torch.exp(2 * log_scale)) @ m_inv.T
    mvn = MultivariateNormal(mean, cov)
    x = mvn.sample((64,)) + torch.randn(64, D, dtype=F64, device=device)  # also off the bulk
    for sigma in (0.0, 0.5):  # the hand-set network ignores σ (zero final weights)
        dist = model(sigma)
        torch.testing.assert_close(dist.log_prob(x), mvn.log_prob(x), rtol=0, atol=EXACT)
        torch.testing.assert_close(dist.score(x), _mvn_score(x, mean, cov), rtol=0, atol=EXACT)
    # Ancestral samples have the AR process's moments (5 standard errors).
    xs = model().sample((20000,))
    se_mean = (torch.diagonal(cov) / 20000).sqrt()
    assert bool(((xs.mean(0) - mean).abs() < 5 * se_mean).all())


@pytest.mark.parametrize("sigma0", [0.3, 1.0])
def test_hand_set_made_matches_the_noisy_law_at_its_sigma(sigma0: float, device) -> None:
    """MADE set to the AR representation of N(μ, Σ + σ₀²I): with L its Cholesky factor, the
    conditional mean is μ_i + Σ_j B_ij (x_j - μ_j) with B = I - diag(L) L^{-1} (strictly lower)
    and the conditional scale is L_ii."""
    mu, cov = _problem(device)
    noisy = _noisy_cov(cov, torch.tensor(sigma0, dtype=F64, device=device))
    chol = torch.linalg.cholesky(noisy)
    eye = torch.eye(D, dtype=F64, device=device)
    coef = eye - torch.diag(torch.diagonal(chol)) @ torch.linalg.inv(chol)
    model = MADE(D, hidden_features=8, family="gaussian", linear_skip=True)
    model = model.to(device=device, dtype=F64)
    _set_made_to_ar(model, (eye - coef) @ mu, coef, torch.log(torch.diagonal(chol)))
    x = MultivariateNormal(mu, noisy).sample((64,))
    torch.testing.assert_close(model(sigma0).log_prob(x), MultivariateNormal(mu, noisy).log_prob(x),
                               rtol=0, atol=EXACT)
    torch.testing.assert_close(model(sigma0).score(x), _mvn_score(x, mu, noisy), rtol=0,
                               atol=EXACT)


# ---------------------------------------------------------------------------- exact conditioner
class ExactGaussianConditioner(nn.Module):
    """The exact AR conditionals of N(μ, Σ + σ²I), one Cholesky factor per example σ.

    With :math:`L L^T = \\Sigma + \\sigma^2 I` and :math:`z = L^{-1}(x - \\mu)` (``z_j`` depends
    on ``x_{\\le j}`` only), :math:`x_i \\mid x_{<i} \\sim \\mathcal N(\\mu_i + \\sum_{j<i} L_{ij}
    z_j,\\; L_{ii}^2)`.
    """

    def __init__(self, loc: Tensor, covariance: Tensor) -> None:
        super().__init__()
        self.loc = nn.Parameter(loc.clone())
        self.covariance = nn.Parameter(covariance.clone())
        self.event_shape = torch.Size(loc.shape)

    def conditional_params(self, x: Tensor, sigma: Tensor) -> Tensor:
        chol = torch.linalg.cholesky(_noisy_cov(self.covariance, sigma))
        z = torch.linalg.solve_triangular(chol, (x - self.loc).unsqueeze(-1), upper=False)
        mean = self.loc + (chol.tril(-1) @ z).squeeze(-1)
        log_scale = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1))
        return torch.stack([mean, log_scale], dim=-1)


def _exact_dist(device: torch.device, sigma: float | Tensor = 0.0) -> tuple[
    NoiseConditionalAutoregressive, Tensor, Tensor
]:
    mu, cov = _problem(device)
    cond = ExactGaussianConditioner(mu, cov)
    return NoiseConditionalAutoregressive(cond, get_family("gaussian"), sigma), mu, cov


def test_exact_conditioner_log_prob_score_denoise_at_per_example_sigma(device) -> None:
    dist, mu, cov = _exact_dist(device)
    assert dist.dtype == F64
    n = 48
    sigma = torch.cat([torch.zeros(8, dtype=F64), torch.linspace(0.01, 3.0, n - 8, dtype=F64)])
    sigma = sigma.to(device)
    noisy = _noisy_cov(cov, sigma)  # (n, D, D): one law per example
    mvn = MultivariateNormal(mu, noisy)
    x = mvn.sample()
    torch.testing.assert_close(dist.log_prob(x, sigma), mvn.log_prob(x), rtol=0, atol=EXACT)
    torch.testing.assert_close(dist.score(x, sigma), _mvn_score(x, mu, noisy), rtol=0,
                               atol=EXACT)
    # Tweedie: E[x0 | x] = μ + Σ (Σ + σ²I)^{-1} (x - μ), exactly, for Gaussian data.
    posterior_mean = mu + (cov @ torch.linalg.solve(noisy, (x - mu).unsqueeze(-1))).squeeze(-1)
    torch.testing.assert_close(dist.denoise(x, sigma), posterior_mean, rtol=0, atol=EXACT)
    # And the oracle is the same law.
    oracle = NoisyGaussian(mu, cov)
    torch.testing.assert_close(oracle.log_prob(x, sigma), mvn.log_prob(x), rtol=0, atol=EXACT)


def test_exact_conditioner_ancestral_sample_moments(device) -> None:
    sigma = torch.tensor([0.0, 0.5, 1.5], dtype=F64, device=device)
    dist, mu, cov = _exact_dist(device, sigma)
    n = 20000
    xs = dist.sample((n,), generator=torch.Generator(device).manual_seed(3))
    assert xs.shape == (n, 3, D)
    noisy = _noisy_cov(cov, sigma)
    for b in range(3):
        xb = xs[:, b]
        c = noisy[b]
        var = torch.diagonal(c)
        # Monte Carlo: 5 standard errors (mean: sqrt(C_ii / n); covariance entry:
        # sqrt((C_ii C_jj + C_ij²) / n)); a wrong conditional mean or scale shifts these by
        # many standard errors at n = 20000.
        assert bool(((xb.mean(0) - mu).abs() < 5 * (var / n).sqrt()).all())
        emp = torch.cov(xb.T)
        se = ((var[:, None] * var[None, :] + c * c) / n).sqrt()
        assert bool(((emp - c).abs() < 5 * se).all()), (emp - c) / se


# ---------------------------------------------------------------------------- oracles
def test_noisy_gaussian_matches_mvn(device) -> None:
    mu, cov = _problem(device)
    sigma = torch.tensor([0.0, 0.2, 1.0, 2.5], dtype=F64, device=device)
    oracle = NoisyGaussian(mu, cov, sigma=sigma)
    noisy = _noisy_cov(cov, sigma)
    mvn = MultivariateNormal(mu, noisy)
    x = mvn.sample((16,))  # (16, 4, D)
    torch.testing.assert_close(oracle.log_prob(x), mvn.log_prob(x), rtol=0, atol=EXACT)
    torch.testing.assert_close(oracle.covariance_matrix, noisy, rtol=0, atol=1e-12)
    torch.testing.assert_close(oracle.mean, mu.expand(4, D), rtol=0, atol=0)
    xr = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(mvn.log_prob(xr).sum(), xr)
    # closed-form score vs autograd of torch's MVN log density (float64 rounding ~1e-12)
    torch.testing.assert_close(oracle.score(x), auto, rtol=0, atol=1e-9)


def test_noisy_gaussian_mixture_matches_mvn_components(device) -> None:
    g = torch.Generator().manual_seed(4)
    k = 3
    w = torch.tensor([0.2, 0.5, 0.3], dtype=F64)
    locs = 2 * torch.randn(k, D, generator=g, dtype=F64)
    a = torch.randn(k, D, D, generator=g, dtype=F64)
    covs = a @ a.mT / D + 0.1 * torch.eye(D, dtype=F64)
    w, locs, covs = w.to(device), locs.to(device), covs.to(device)
    sigma = torch.tensor([0.0, 0.3, 1.2], dtype=F64, device=device)
    oracle = NoisyGaussianMixture(3 * w, locs, covs, sigma=sigma)  # weights normalised inside
    comps = MultivariateNormal(locs, _noisy_cov(covs, sigma[:, None]))  # batch (3 σ, k)
    x = oracle.sample((32,), generator=torch.Generator(device).manual_seed(0))  # (32, 3, D)
    ref = torch.logsumexp(torch.log(w) + comps.log_prob(x.unsqueeze(-2)), dim=-1)
    torch.testing.assert_close(oracle.log_prob(x), ref, rtol=0, atol=EXACT)
    xr = x.clone().requires_grad_(True)
    lp = torch.logsumexp(torch.log(w) + comps.log_prob(xr.unsqueeze(-2)), dim=-1)
    (auto,) = torch.autograd.grad(lp.sum(), xr)
    torch.testing.assert_close(oracle.score(x), auto, rtol=0, atol=1e-9)
    # Tweedie for a mixture: Σ_k r_k(x) [μ_k + Σ_k (Σ_k + σ²I)^{-1} (x - μ_k)].
    resp = torch.softmax(torch.log(w) + comps.log_prob(x.unsqueeze(-2)), dim=-1)
    noisy = _noisy_cov(covs, sigma[:, None])
    diff = (x.unsqueeze(-2) - locs).unsqueeze(-1)
    post = locs + (covs @ torch.linalg.solve(noisy, diff)).squeeze(-1)
    expected = (resp.unsqueeze(-1) * post).sum(-2)
    torch.testing.assert_close(oracle.denoise(x), expected, rtol=0, atol=EXACT)
    # Component k is the NoisyGaussian of (μ_k, Σ_k) at the same σ.
    torch.testing.assert_close(oracle.component(1).log_prob(x), comps.log_prob(
        x.unsqueeze(-2))[..., 1], rtol=0, atol=EXACT)


def test_noisy_gaussian_mixture_moments(device) -> None:
    """Sample mean and covariance of the oracle match its ``mean`` and ``covariance_matrix``
    (law of total covariance plus σ²I) within 5 standard errors."""
    w = torch.tensor([0.6, 0.4], dtype=F64, device=device)
    locs = torch.tensor([[-1.0, 0.5], [2.0, -0.5]], dtype=F64, device=device)
    covs = torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.4]]], dtype=F64,
                        device=device)
    oracle = NoisyGaussianMixture(w, locs, covs, sigma=0.7)
    n = 40000
    xs = oracle.sample((n,), generator=torch.Generator(device).manual_seed(5))
    c = oracle.covariance_matrix
    var = torch.diagonal(c)
    assert bool(((xs.mean(0) - oracle.mean).abs() < 5 * (var / n).sqrt()).all())
    # For a non-Gaussian law the covariance SE uses the fourth moments: estimate it from the
    # centred products' sample variance.
    centred = xs - xs.mean(0)
    prods = centred.unsqueeze(-1) * centred.unsqueeze(-2)
    se = prods.var(0).div(n).sqrt()
    assert bool(((torch.cov(xs.T) - c).abs() < 5 * se).all())
    assert math.isclose(float(oracle.weights.sum()), 1.0, abs_tol=1e-12)
