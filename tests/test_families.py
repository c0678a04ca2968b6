"""The per-dimension conditional families: closed forms, normalisation, stable tails, sampling.

Families are tested directly (``family.log_prob(params, x, sigma)`` elementwise) against
torch/Pyro distributions and float64 references computed independently with SciPy, in float32
and float64, including far tails and the discretized family's edge bins.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pyro.distributions import Logistic
from scipy import integrate
from scipy.special import log_expit
from torch.distributions import Categorical, MixtureSameFamily, Normal

from ncmle_prob.distributions import family_names, get_family
from ncmle_prob.distributions.families.base import LOG_SCALE_MAX, LOG_SCALE_MIN
from ncmle_prob.testing.numerics import grid_gof, grid_points

F64 = torch.float64
K = 3
OPTIONS = {
    "gaussian": {},
    "gaussian_mixture": {"components": K},
    "logistic_mixture": {"components": K},
    "discretized_logistic_mixture": {"components": K, "bins": 7},
}
CONTINUOUS_AT_SIGMA = [(name, s) for name in OPTIONS for s in (0.0, 0.5)
                       if not (name == "discretized_logistic_mixture" and s == 0.0)]


def _params(name: str, n: int, dtype: torch.dtype = F64, seed: int = 0) -> torch.Tensor:
    """Random raw parameters; log-scales in about [-2, 1]."""
    fam = get_family(name, **OPTIONS[name])
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, fam.num_params, generator=g, dtype=F64)
    comps = 1 if name == "gaussian" else K
    p[:, -comps:] = -0.5 + 0.7 * p[:, -comps:]  # the log-scale block comes last
    return p.to(dtype)


def _reference(name: str, params: torch.Tensor) -> torch.distributions.Distribution:
    """The same conditional as a torch/Pyro distribution (continuous density)."""
    if name == "gaussian":
        loc, log_scale = params.unbind(-1)
        return Normal(loc, log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp())
    logits, loc, log_scale = params.split(K, dim=-1)
    scale = log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp()
    comp = Normal(loc, scale) if name == "gaussian_mixture" else Logistic(loc, scale)
    return MixtureSameFamily(Categorical(logits=logits), comp)


def _log_mass_reference(params: np.ndarray, x: np.ndarray, bins: int) -> np.ndarray:
    """log P(bin of x) of the discretized logistic mixture in float64 with SciPy: log-CDF
    differences in whichever tail is stable, edge bins extended to ±inf."""
    logits, loc, log_scale = np.split(params, 3, axis=-1)
    log_w = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    inv_s = np.exp(-np.clip(log_scale, LOG_SCALE_MIN, LOG_SCALE_MAX))
    half = 1.0 / (bins - 1)
    xk = x[..., None]
    a, b = (xk - loc + half) * inv_s, (xk - loc - half) * inv_s
    with np.errstate(divide="ignore"):
        lower = log_expit(a) + np.log1p(-np.exp(log_expit(b) - log_expit(a)))
        upper = log_expit(-b) + np.log1p(-np.exp(log_expit(-a) - log_expit(-b)))
    mid = np.where(a + b > 0, upper, lower)
    comp = np.where(xk <= -1 + half, log_expit(a), np.where(xk >= 1 - half, log_expit(-b), mid))
    return np.logaddexp.reduce(log_w + comp, axis=-1)


# ---------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize(("name", "sigma"), CONTINUOUS_AT_SIGMA)
def test_density_matches_torch_distribution(name: str, sigma: float, device) -> None:
    fam = get_family(name, **OPTIONS[name])
    params = _params(name, 200).to(device)
    x = 2.0 * torch.randn(200, dtype=F64, device=device)
    ref_name = "logistic_mixture" if name == "discretized_logistic_mixture" else name
    expected = _reference(ref_name, params).log_prob(x)
    got = fam.log_prob(params, x, torch.full_like(x, sigma))
    # float64, the same formula written twice: agreement to rounding (~1e-14).
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_log_scale_is_clamped_to_the_documented_range(device) -> None:
    fam = get_family("gaussian")
    x = torch.tensor([0.3, 0.3], dtype=F64, device=device)
    lo = fam.log_prob(torch.tensor([[0.0, -30.0], [0.0, LOG_SCALE_MIN]], dtype=F64,
                                   device=device), x, torch.zeros(2, dtype=F64, device=device))
    assert lo[0] == lo[1]
    hi = fam.log_prob(torch.tensor([[0.0, 30.0], [0.0, LOG_SCALE_MAX]], dtype=F64,
                                   device=device), x, torch.zeros(2, dtype=F64, device=device))
    assert hi[0] == hi[1]


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_discretized_masses_match_scipy_reference(dtype: torch.dtype, device) -> None:
    """Bulk and extremes: scales from e^-7 to e^2, locations inside and far outside [-1, 1]."""
    bins = 7
    fam = get_family("discretized_logistic_mixture", components=K, bins=bins)
    g = torch.Generator().manual_seed(1)
    n = 400
    params = torch.cat([torch.randn(n, K, generator=g, dtype=F64),  # logits
                        4.0 * torch.randn(n, K, generator=g, dtype=F64),  # locs, often outside
                        -7.0 + 9.0 * torch.rand(n, K, generator=g, dtype=F64)], dim=-1)
    x = grid_points(bins, 1, F64, torch.device("cpu"))[:, 0]
    x = x[torch.randint(0, bins, (n,), generator=g)]
    # the reference sees the same (rounded) inputs, so only the arithmetic is compared: near a
    # bin edge under a scale of e^-7 an input rounding of 6e-8 alone moves log P by ~1e-4
    params, x = params.to(dtype).double(), x.to(dtype).double()
    expected = torch.from_numpy(_log_mass_reference(params.numpy(), x.numpy(), bins))
    got = fam.log_prob(params.to(device, dtype), x.to(device, dtype),
                       torch.zeros(n, dtype=dtype, device=device)).cpu().double()
    assert bool(torch.isfinite(got).all())
    # float64: ~1e-12 relative. float32: the scaled distances reach ~5e3, so rounding inside
    # gives absolute errors ~1e-4 at |log P| ~ 1e3; 2e-6 relative plus 1e-5 absolute bounds
    # that, while a wrong bin edge or a lost edge extension is an O(1) error.
    tol = (1e-10, 1e-10) if dtype == F64 else (2e-6, 1e-5)
    torch.testing.assert_close(got, expected, rtol=tol[0], atol=tol[1])


# ---------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize(("name", "sigma"), CONTINUOUS_AT_SIGMA)
def test_continuous_families_integrate_to_one(name: str, sigma: float) -> None:
    fam = get_family(name, **OPTIONS[name])
    for row in _params(name, 4, seed=2):
        def density(t: float, row: torch.Tensor = row) -> float:
            x = torch.tensor([t], dtype=F64)
            return float(fam.log_prob(row[None], x, torch.tensor([sigma], dtype=F64)).exp())

        total, err = integrate.quad(density, -np.inf, np.inf, limit=400, epsabs=1e-11)
        # adaptive quadrature over the real line: ~1e-10; any wrong constant is O(1)
        assert abs(total - 1.0) < 1e-7, (total, err)


@pytest.mark.parametrize("bins", [2, 5, 256])
def test_discretized_masses_sum_to_one(bins: int, device) -> None:
    fam = get_family("discretized_logistic_mixture", components=K, bins=bins)
    g = torch.Generator().manual_seed(3)
    # rows: random, very narrow (log s = -7), very wide (log s = 7), far outside the grid
    p = torch.randn(4, fam.num_params, generator=g, dtype=F64)
    p[1, 2 * K:] = -7.0
    p[2, 2 * K:] = 7.0
    p[3, K:2 * K] = 40.0
    levels = grid_points(bins, 1, F64, device)[:, 0]
    for dtype, tol in ((F64, 1e-12), (torch.float32, 1e-5)):
        lp = fam.log_prob(p.to(device, dtype)[:, None, :].expand(4, bins, -1),
                          levels.to(dtype).expand(4, bins), torch.zeros(4, bins, dtype=dtype,
                                                                        device=device))
        total = lp.double().exp().sum(-1)
        # Edge bins extend to ±inf, so masses telescope to exactly 1 up to rounding (float32:
        # ~bins * 6e-8).
        torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=tol)


# ---------------------------------------------------------------------------- tails
@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_tails_are_finite_with_finite_gradients(name: str, dtype: torch.dtype, device) -> None:
    """x = ±50 under the narrowest conditionals (log s = -7, i.e. |z| ≈ 5.5e4): log_prob and
    its gradients in x and in the parameters stay finite (no log(0), no inf - inf)."""
    fam = get_family(name, **OPTIONS[name])
    comps = 1 if name == "gaussian" else K
    p = torch.zeros(4, fam.num_params, dtype=dtype, device=device)
    p[:, -comps:] = -7.0
    p[2:, -comps:] = 7.0  # and the widest
    x = torch.tensor([50.0, -50.0, 50.0, -50.0], dtype=dtype, device=device)
    for sigma in (0.0, 0.3):
        if name == "discretized_logistic_mixture" and sigma == 0.0:
            x_eval = x.clamp(-1, 1)  # the edge bins, with the mode 1 away (≈ 1100 scales)
            p_eval = p.clone()
            p_eval[:, K:2 * K] = -x_eval[:, None]
        else:
            x_eval, p_eval = x, p
        pr = p_eval.clone().requires_grad_(True)
        xr = x_eval.clone().requires_grad_(True)
        lp = fam.log_prob(pr, xr, torch.full_like(x, sigma))
        assert bool(torch.isfinite(lp).all()), lp
        gp, gx = torch.autograd.grad(lp.sum(), (pr, xr))
        assert bool(torch.isfinite(gp).all()) and bool(torch.isfinite(gx).all())
        # far out, log p is dominated by the quadratic (Gaussian) or linear (logistic) tail:
        # under the narrowest conditional at distance 50 it is hugely negative, not -inf.
        assert bool((lp[:2] < -1e3).all())
        # the float64 value agrees with float32 to float32 precision (relative 1e-6)
        if dtype == torch.float32:
            lp64 = fam.log_prob(p_eval.double(), x_eval.double(),
                                torch.full_like(x, sigma).double())
            torch.testing.assert_close(lp.detach().double(), lp64, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(("name", "sigma"), CONTINUOUS_AT_SIGMA)
def test_float32_matches_float64_in_the_bulk(name: str, sigma: float, device) -> None:
    fam = get_family(name, **OPTIONS[name])
    p = _params(name, 300).to(device)
    x = 2.0 * torch.randn(300, dtype=F64, device=device)
    s = torch.full_like(x, sigma)
    lp64 = fam.log_prob(p, x, s)
    lp32 = fam.log_prob(p.float(), x.float(), s.float())
    assert lp32.dtype == torch.float32
    # float32 rounding of O(1-100) log densities: ~1e-6 relative
    torch.testing.assert_close(lp32.double(), lp64, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- sampling
@pytest.mark.parametrize(("name", "sigma"), CONTINUOUS_AT_SIGMA)
def test_family_samples_fit_the_density(name: str, sigma: float, device) -> None:
    from ncmle_prob.testing.numerics import auto_gof

    fam = get_family(name, **OPTIONS[name])
    n = 3000
    params = _params(name, 1, seed=4).to(device).expand(n, -1)
    s = torch.full((n,), sigma, dtype=F64, device=device)
    x = fam.sample(params, s, torch.Generator(device).manual_seed(0))
    assert x.shape == (n,) and x.dtype == F64 and bool(torch.isfinite(x).all())
    p = auto_gof(x, fam.log_prob(params, x, s).exp())
    # fixed seed; a correct sampler gives a fixed p-value (0.1-0.9 here), a wrong one ~0
    assert p > 1e-4


def test_discretized_samples_fit_the_masses_at_sigma_zero(device) -> None:
    fam = get_family("discretized_logistic_mixture", components=K, bins=7)
    n = 4000
    params = _params("discretized_logistic_mixture", 1, seed=5).to(device)
    zero = torch.zeros(n, dtype=F64, device=device)
    x = fam.sample(params.expand(n, -1), zero, torch.Generator(device).manual_seed(0))
    pts = grid_points(7, 1, F64, device)
    log_mass = fam.log_prob(params.expand(7, -1), pts[:, 0], zero[:7])
    assert grid_gof(pts, log_mass, x[:, None]) > 1e-4
    # per-element σ: σ = 0 rows are on the grid, σ > 0 rows are continuous
    s = torch.tensor([0.0, 0.5] * 50, dtype=F64, device=device)
    mixed = fam.sample(params.expand(100, -1), s, torch.Generator(device).manual_seed(1))
    on_grid = ((mixed + 1) * 3 - torch.round((mixed + 1) * 3)).abs() < 1e-9
    assert bool(on_grid[0::2].all()) and not bool(on_grid[1::2].any())


@pytest.mark.parametrize("name", list(OPTIONS))
def test_extreme_scale_samples_are_finite_in_float32(name: str, device) -> None:
    fam = get_family(name, **OPTIONS[name])
    comps = 1 if name == "gaussian" else K
    p = torch.zeros(1000, fam.num_params, device=device)
    p[:500, -comps:] = 7.0
    p[500:, -comps:] = -7.0
    x = fam.sample(p, torch.full((1000,), 0.2, device=device))
    assert bool(torch.isfinite(x).all())
    assert bool(torch.isfinite(fam.log_prob(p, x, torch.full((1000,), 0.2, device=device))).all())


# ---------------------------------------------------------------------------- registry by name
@pytest.mark.parametrize("name", list(OPTIONS))
def test_config_rebuilds_the_family(name: str) -> None:
    fam = get_family(name, **OPTIONS[name])
    config = fam.config()
    rebuilt = get_family(config.pop("family"), **config)
    assert type(rebuilt) is type(fam) and rebuilt.config() == fam.config()
    assert rebuilt.num_params == (2 if name == "gaussian" else 3 * K)
    assert fam.discrete_at_zero == (name == "discretized_logistic_mixture")
    assert get_family(fam) is fam
    assert name in family_names() and repr(fam).startswith(type(fam).__name__)


def test_family_names_are_the_four_documented() -> None:
    assert set(family_names()) >= set(OPTIONS)
    assert math.isclose(get_family("discretized_logistic_mixture", bins=256).bin_width,
                        2 / 255)
