"""Generic properties of every distribution in ``tests/registry.py``.

Each test runs over the registry (oracles and randomly initialised MADE models of every
family, bound to scalar and tensor σ), so a new entry gets every check for free. Tolerances are
stated next to each assertion with the reason they are enough.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import test_device
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numerics import Quadrature, auto_gof, binned_gof, grid_gof, grid_points, quadrature
from registry import EXAMPLES, Example, made_model

from ncmle_prob.distributions import NoiseConditionalDistribution, NoisyGaussian

#: Goodness-of-fit threshold. Seeds are fixed, so on one device each p-value is a fixed number;
#: with ~50 checks, 1e-4 keeps the chance that a new RNG stream (another device) fails a correct
#: sampler below 1 %, while a wrong sampler gives p < 1e-10 (see the negative controls below).
GOF_ALPHA = 1e-4
#: Threshold of Pyro's nearest-neighbour test, which is anti-conservative: in 2-D about 60 % of
#: the points are mutual nearest neighbours and share their distance, so its binned values are
#: not independent and its χ² is inflated (an exact oracle reaches p ~ 1e-5 at n = 6000). It
#: still rejects gross errors at p < 1e-15 (a sampler that ignores σ, see the controls).
NN_ALPHA = 1e-7


def _ids(examples: list[Example]) -> list[str]:
    return [e.id for e in examples]


def applying(check: str) -> list[Example]:
    return [e for e in EXAMPLES if e.applies(check)]


def _positive(sigma: torch.Tensor, fill: float = 0.25) -> torch.Tensor:
    """σ with its zeros replaced by ``fill`` (where a score or a density exists)."""
    return torch.where(sigma == 0, torch.full_like(sigma, fill), sigma)


def _lift(d: NoiseConditionalDistribution, t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape + (1,) * len(d.event_shape))


def _continuous_points(
    d: NoiseConditionalDistribution, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``x`` of shape ``(n, *batch, *event)`` and a positive σ of the batch shape."""
    sigma = _positive(d.sigma)
    x = d.at(sigma).sample((n,))
    return x, sigma


# ---------------------------------------------------------------------------- shapes
SAMPLE_SHAPES = [(), (5,), (2, 3)]
SIGMA_CASES = ["bound", "scalar", "per_example", "new_leading_dim"]


@pytest.mark.parametrize("sigma_case", SIGMA_CASES)
@pytest.mark.parametrize("sample_shape", SAMPLE_SHAPES, ids=str)
@pytest.mark.parametrize("ex", applying("shapes"), ids=_ids(applying("shapes")))
def test_shapes(ex: Example, sample_shape: tuple[int, ...], sigma_case: str, device) -> None:
    d = ex.make(torch.float32, device)
    batch, event = d.batch_shape, d.event_shape
    param_batch = d.at(0.0).batch_shape  # the batch shape of the parameters other than σ
    assert event.numel() == ex.dim
    assert d.discrete_at_zero == ex.discrete_at_zero

    x = d.sample(sample_shape)
    assert x.shape == torch.Size(sample_shape) + batch + event
    assert x.dtype == torch.float32 and x.device == device
    x_batch = x.shape[: x.dim() - len(event)]

    if sigma_case == "bound":
        sigma = None
        expected = x_batch
    elif sigma_case == "scalar":
        sigma = 0.35
        expected = torch.broadcast_shapes(x_batch, param_batch)
    elif sigma_case == "per_example":
        sigma = 0.1 + torch.rand(x_batch, device=device)
        expected = x_batch
    else:  # a σ with an extra leading dim broadcasts like any batch parameter (4 levels: a
        # shape (4, 1) never equals x_batch + (1,), which the contract rejects as ambiguous)
        sigma = torch.tensor([0.2, 0.5, 0.9, 1.3], device=device).reshape(
            (4,) + (1,) * len(x_batch))
        expected = torch.Size((4,)) + x_batch

    lp = d.log_prob(x, sigma)
    assert lp.shape == expected
    assert bool(torch.isfinite(lp).all())

    s = d.sigma if sigma is None else torch.as_tensor(sigma, device=device)
    if ex.discrete_at_zero and bool((s == 0).any()):
        with pytest.raises(ValueError, match="score is undefined at sigma = 0"):
            d.score(x, sigma)
        s = _positive(s.expand(expected) if s.dim() else s)
        sigma = s
    g = d.score(x, sigma)
    assert g.shape == expected + event and bool(torch.isfinite(g).all())
    assert d.denoise(x, sigma).shape == expected + event


@pytest.mark.parametrize("ex", applying("shapes"), ids=_ids(applying("shapes")))
def test_per_example_sigma_matches_one_at_a_time(ex: Example, device) -> None:
    """A batch of per-example σ gives, row by row, what each σ gives alone (no mixing)."""
    d = ex.make(torch.float64, device)
    x, _ = _continuous_points(d, 4)
    x_batch = x.shape[: x.dim() - len(d.event_shape)]
    sigma = torch.linspace(0.05, 1.2, math.prod(x_batch), device=device,
                           dtype=torch.float64).reshape(x_batch)
    lp = d.log_prob(x, sigma)
    for i in range(x.shape[0]):
        # float64: batched and single evaluations round differently only at ~1e-15.
        torch.testing.assert_close(lp[i], d.log_prob(x[i], sigma[i]), rtol=1e-10, atol=1e-10)


_dims = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(param_batch=_dims, sigma_batch=_dims, sample_shape=_dims, event=st.integers(1, 3),
       explicit=_dims)
def test_shapes_hypothesis(param_batch: tuple[int, ...], sigma_batch: tuple[int, ...],
                           sample_shape: tuple[int, ...], event: int,
                           explicit: tuple[int, ...]) -> None:
    """Any parameter batch × bound-σ batch × sample shape × event size × explicit-σ shape:
    shapes follow torch's broadcasting law, and values equal MultivariateNormal's."""
    from torch.distributions import MultivariateNormal

    device = test_device()
    try:
        batch = torch.broadcast_shapes(param_batch, sigma_batch)
    except RuntimeError:
        assume(False)
    loc = torch.randn(param_batch + (event,), dtype=torch.float64, device=device)
    cov = torch.eye(event, dtype=torch.float64, device=device) * 0.5
    sigma = 0.1 + torch.rand(sigma_batch, dtype=torch.float64, device=device)
    d = NoisyGaussian(loc, cov, sigma=sigma)
    assert d.batch_shape == batch and d.event_shape == (event,)
    x = d.sample(sample_shape)
    assert x.shape == sample_shape + batch + (event,)
    lp = d.log_prob(x)
    assert lp.shape == sample_shape + batch
    noisy = cov + (d.sigma**2)[..., None, None] * torch.eye(event, dtype=torch.float64,
                                                             device=device)
    torch.testing.assert_close(lp, MultivariateNormal(d.mean, noisy).log_prob(x))
    assert d.score(x).shape == x.shape and d.denoise(x).shape == x.shape
    # an explicit σ replaces the bound one and broadcasts against x's batch dims
    s2 = 0.2 + torch.rand(explicit, dtype=torch.float64, device=device)
    try:
        expected = torch.broadcast_shapes(sample_shape + batch, explicit, param_batch)
    except RuntimeError:
        with pytest.raises(ValueError, match="sigma"):
            d.log_prob(x, s2)
        return
    if len(explicit) == x.dim() and explicit[-1] in (1, event) and (
            explicit == x.shape or explicit == x.shape[:-1] + (1,)):
        with pytest.raises(ValueError, match="shaped like x"):
            d.log_prob(x, s2)
        return
    assert d.log_prob(x, s2).shape == expected
    assert d.score(x, s2).shape == expected + (event,)


# ---------------------------------------------------------------------------- expand / at
@pytest.mark.parametrize("ex", applying("expand"), ids=_ids(applying("expand")))
def test_expand(ex: Example, device) -> None:
    d = ex.make(torch.float32, device)
    new_batch = torch.Size((4,)) + d.batch_shape
    e = d.expand(new_batch)
    assert e.batch_shape == new_batch and e.event_shape == d.event_shape
    assert e.sigma.shape == new_batch
    x = e.sample((3,))
    assert x.shape == (3,) + new_batch + d.event_shape
    # Expanding copies nothing: the same numbers in every new row (exact equality).
    torch.testing.assert_close(e.log_prob(x), d.log_prob(x), rtol=0, atol=0)
    assert d.batch_shape == new_batch[1:]  # the original is untouched
    if d.batch_shape:  # anything is a broadcast of an empty batch_shape
        with pytest.raises(ValueError, match="expand: batch_shape"):
            d.expand((7,) + d.batch_shape[:-1] + (d.batch_shape[-1] + 1,))


@pytest.mark.parametrize("ex", applying("at"), ids=_ids(applying("at")))
def test_at(ex: Example, device) -> None:
    d = ex.make(torch.float32, device)
    original_sigma = d.sigma.clone()
    param_batch = d.at(0.0).batch_shape
    s2 = torch.tensor([0.2, 0.7], device=device).reshape((2,) + (1,) * len(param_batch))
    d2 = d.at(s2)
    assert d2.batch_shape == (2,) + param_batch
    torch.testing.assert_close(d2.sigma, s2.expand(d2.batch_shape), rtol=0, atol=0)
    torch.testing.assert_close(d.sigma, original_sigma, rtol=0, atol=0)  # d unchanged
    x = d2.sample((5,))
    assert x.shape == (5,) + d2.batch_shape + d.event_shape
    # Binding σ and passing it explicitly are the same computation (exact equality).
    torch.testing.assert_close(d2.log_prob(x), d.log_prob(x, s2), rtol=0, atol=0)
    torch.testing.assert_close(d2.score(x), d.score(x, s2), rtol=0, atol=0)
    # The bound σ really is used: another σ gives another density.
    assert not torch.allclose(d2.log_prob(x), d.log_prob(x, s2 + 0.5))


# ---------------------------------------------------------------------------- score
@pytest.mark.parametrize("ex", applying("score"), ids=_ids(applying("score")))
def test_score_matches_autograd(ex: Example, device) -> None:
    d = ex.make(torch.float64, device)
    x, sigma = _continuous_points(d, 6)
    g = d.score(x, sigma)
    xr = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(d.log_prob(xr, sigma).sum(), xr)
    # float64: closed-form (oracles) and autograd scores agree to rounding, ~1e-13 here.
    torch.testing.assert_close(g, ref, rtol=1e-9, atol=1e-9)
    # create_graph=True gives a differentiable score: d/dx sum(score) = Hessian row sums,
    # checked against central differences of the score (h = 1e-5: error ~h^2 f'''' ~ 1e-9).
    xr = x.clone().requires_grad_(True)
    g2 = d.score(xr, sigma, create_graph=True)
    (hess_sum,) = torch.autograd.grad(g2.sum(), xr)
    h = 1e-5
    batch_dims = x.dim() - len(d.event_shape)
    step = torch.zeros_like(x).flatten(batch_dims)
    step[..., 0] = h  # the first coordinate of every event
    step = step.reshape(x.shape)
    event_sum = tuple(range(batch_dims, x.dim()))
    fd = (d.score(x + step, sigma).sum(event_sum) - d.score(x - step, sigma).sum(event_sum))
    torch.testing.assert_close(hess_sum.flatten(batch_dims)[..., 0], fd / (2 * h), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("ex", applying("finite_differences"),
                         ids=_ids(applying("finite_differences")))
def test_score_matches_finite_differences(ex: Example, device) -> None:
    d = ex.make(torch.float64, device)
    x, sigma = _continuous_points(d, 5)
    g = d.score(x, sigma)
    flat = x.reshape(x.shape[: x.dim() - len(d.event_shape)] + (-1,))
    # Central differences in float64 with h = 1e-6: truncation ~h^2 |f'''| ~ 1e-12, rounding
    # ~1e-16 |log p| / h ~ 1e-9, so 1e-6 (relative to 1 + |score|) is safe, yet any wrong
    # term of the score (a missing cross term, a wrong sign, a missing sigma) is O(0.1-1).
    h = 1e-6
    fd = torch.empty_like(flat)
    for j in range(flat.shape[-1]):
        step = torch.zeros_like(flat)
        step[..., j] = h
        plus = d.log_prob((flat + step).reshape(x.shape), sigma)
        minus = d.log_prob((flat - step).reshape(x.shape), sigma)
        fd[..., j] = (plus - minus) / (2 * h)
    torch.testing.assert_close(g.reshape(fd.shape), fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("ex", applying("denoise"), ids=_ids(applying("denoise")))
def test_denoise_is_tweedie(ex: Example, device) -> None:
    d = ex.make(torch.float64, device)
    x = d.sample((6,))  # at the bound σ: grid points where a discretized family has σ = 0
    sigma = d.sigma
    den = d.denoise(x)
    positive = _lift(d, sigma > 0).expand_as(x)
    g = d.score(x, _positive(sigma))
    expected = torch.where(positive, x + _lift(d, sigma**2) * g, x)
    # float64: the same score and one multiply-add, equal to rounding.
    torch.testing.assert_close(den, expected, rtol=1e-12, atol=1e-12)
    assert bool(torch.isfinite(den).all())


# ---------------------------------------------------------------------------- normalisation
def _quadrature(d: NoiseConditionalDistribution, ex: Example, sigma: torch.Tensor) -> Quadrature:
    """exp(log_prob) at ``sigma`` on a sinh grid fitted to samples at that σ (or ``span``)."""
    if ex.span is not None:
        samples = torch.linspace(*ex.span, 9, dtype=d.dtype, device=d.device)[:, None]
        samples = samples.expand(9, ex.dim)
    else:
        gen = torch.Generator(d.device).manual_seed(2)
        samples = d.at(sigma).sample((2000,), generator=gen).reshape(-1, ex.dim)
    return quadrature(d, sigma, samples, 2001 if ex.dim == 1 else 161)


@pytest.mark.parametrize("ex", applying("normalisation"), ids=_ids(applying("normalisation")))
def test_normalisation(ex: Example, device) -> None:
    d = ex.make(torch.float64, device)
    sigma = d.sigma
    mass = d.is_mass(sigma)
    # Densities: integrate where σ > 0 or the family is continuous (σ = 0 elements of a
    # discretized family are integrated at σ = 0.25 instead, also a density there).
    total = _quadrature(d, ex, _positive(sigma) if ex.discrete_at_zero else sigma).integral()
    # 1e-3 is the requirement; the sinh-trapezoid rule reaches ~1e-6 here, and any
    # error in a normalising constant (a log-scale, 2π, a mixture weight) is O(1).
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-3)
    if bool(mass.any()):
        pts = grid_points(d.bins, ex.dim, d.dtype, device)
        x = pts.reshape((pts.shape[0],) + (1,) * len(d.batch_shape) + d.event_shape)
        masses = d.log_prob(x).exp().sum(0)
        # Log masses of a discretized family sum to 1 over the full grid up to float64
        # rounding (edge bins extend to ±inf): 1e-9 would catch one missing edge bin.
        torch.testing.assert_close(masses[mass], torch.ones_like(masses[mass]), rtol=0,
                                   atol=1e-9)


# ---------------------------------------------------------------------------- goodness of fit
def _pvalues(d: NoiseConditionalDistribution, ex: Example,
             x: torch.Tensor) -> tuple[list[float], list[float]]:
    """p-values of samples ``x`` (shape ``(n, *batch, *event)``) against ``d``'s log_prob, per
    batch element: ``(chi2, nn)``. ``chi2``: the χ² test of cell masses integrated from log_prob
    where the law is continuous, over the grid where it is a discretized family at σ = 0.
    ``nn``: Pyro's nearest-neighbour density test where the law is continuous."""
    batch = d.batch_shape
    nb = max(1, batch.numel())
    flat_x = x.reshape(x.shape[0], nb, ex.dim)
    flat_lp = d.log_prob(x).reshape(x.shape[0], nb)
    mass = d.is_mass(d.sigma).expand(batch).reshape(nb)
    chi2, nn = [], []
    if bool(mass.any()):
        pts = grid_points(d.bins, ex.dim, d.dtype, d.device)
        grid_lp = d.log_prob(pts.reshape((pts.shape[0],) + (1,) * len(batch) + d.event_shape))
        grid_lp = grid_lp.reshape(pts.shape[0], nb)
        chi2 += [grid_gof(pts, grid_lp[:, b], flat_x[:, b]) for b in range(nb) if mass[b]]
    if not bool(mass.all()):
        cont = [b for b in range(nb) if not mass[b]]
        nn += [auto_gof(flat_x[:, b], flat_lp[:, b].exp()) for b in cont]
        # (σ = 0 elements of a discretized family are integrated at 0.25 and left unused)
        sigma = _positive(d.sigma) if ex.discrete_at_zero else d.sigma
        binned = binned_gof(_quadrature(d, ex, sigma), x, 10 if ex.dim == 1 else 5)
        chi2 += [binned[b] for b in cont]
    return chi2, nn


@pytest.mark.parametrize("ex", applying("goodness_of_fit"), ids=_ids(applying("goodness_of_fit")))
def test_goodness_of_fit(ex: Example, device) -> None:
    d = ex.make(torch.float64, device)
    # Pyro's vector test needs > 1000 * dim samples; 6000 detects e.g. a 10 % error in the
    # logistic scales of the sampler at p < 1e-9 (a mutation check run by hand)
    n = 4000 if ex.dim == 1 else 6000
    x = d.sample((n,), generator=torch.Generator(device).manual_seed(1))
    chi2, nn = _pvalues(d, ex, x)
    assert min(chi2) > GOF_ALPHA, chi2
    assert min(nn, default=1.0) > NN_ALPHA, nn


@pytest.mark.parametrize("family", ["gaussian", "logistic_mixture"])
def test_goodness_of_fit_detects_a_wrong_sigma(family: str, device) -> None:
    """Negative control: 2-D samples at σ = 0.3 fail against log_prob at σ = 0.6 (a KL of only
    0.24 and 0.025 nats for these random models): the χ² test gives p < 1e-30 for both, Pyro's
    nearest-neighbour test only for the Gaussian one (p ~ 1e-82; 0.05 for the other)."""
    model = made_model(2, family).to(device=device, dtype=torch.float64)
    ex = Example("control", lambda dtype, device: model(0.6), dim=2)
    x = model(0.3).sample((6000,), generator=torch.Generator(device).manual_seed(1))
    chi2, nn = _pvalues(model(0.6), ex, x)
    assert min(chi2) < 1e-9
    if family == "gaussian":
        assert min(nn) < NN_ALPHA


def test_grid_goodness_of_fit_detects_another_model(device) -> None:
    """Negative control at σ = 0 on the grid: another random model's samples fail."""
    family = "discretized_logistic_mixture"
    model = made_model(2, family).to(device=device, dtype=torch.float64)
    other = made_model(2, family, seed=5).to(device=device, dtype=torch.float64)
    x = other(0.0).sample((2500,), generator=torch.Generator(device).manual_seed(1))
    pts = grid_points(5, 2, torch.float64, device)
    assert grid_gof(pts, model(0.0).log_prob(pts), x) < 1e-5
    assert grid_gof(pts, other(0.0).log_prob(pts), x) > GOF_ALPHA


# ---------------------------------------------------------------------------- float64
@pytest.mark.parametrize("ex", applying("float64"), ids=_ids(applying("float64")))
def test_float64_matches_float32(ex: Example, device) -> None:
    d32 = ex.make(torch.float32, device)
    d64 = ex.make(torch.float64, device)
    assert d32.dtype == torch.float32 and d64.dtype == torch.float64
    x = d64.sample((7,))
    assert x.dtype == torch.float64
    sigma = _positive(d64.sigma)
    lp64 = d64.log_prob(x, sigma)
    lp32 = d32.log_prob(x.float(), sigma.float())
    assert lp64.dtype == torch.float64 and lp32.dtype == torch.float32
    # Same weights in both precisions: float32 rounding through a small network and a
    # Cholesky is ~1e-6 relative; 1e-4 leaves margin yet catches a precision-dependent path.
    torch.testing.assert_close(lp32.double(), lp64, rtol=1e-4, atol=1e-4)
    assert d64.score(x, sigma).dtype == torch.float64


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("ex", applying("validation"), ids=_ids(applying("validation")))
def test_validation_errors(ex: Example, device) -> None:
    d = ex.make(torch.float32, device)
    x = d.sample((3,))
    for bad in (-0.1, math.nan, math.inf):
        for call in (lambda s: d.log_prob(x, s), lambda s: d.at(s), lambda s: d.score(x, s)):
            with pytest.raises(ValueError, match="sigma must be"):
                call(bad)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        d.log_prob(x, torch.tensor([0.1, -0.2], device=device))
    with pytest.raises(ValueError, match=r"x has shape .* event_shape"):
        d.log_prob(torch.zeros(3, ex.dim + 1, device=device))
    bad_x = x.clone()
    bad_x.view(-1)[0] = math.nan
    with pytest.raises(ValueError, match="x contains 1 NaN or infinite"):
        d.log_prob(bad_x)
    bad_x.view(-1)[0] = -math.inf
    with pytest.raises(ValueError, match="x contains 1 NaN or infinite"):
        d.score(bad_x, _positive(d.sigma))
    with pytest.raises(TypeError, match=r"x has dtype torch\.float64"):
        d.log_prob(x.double())
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        d.log_prob(x.tolist())
    with pytest.raises(ValueError, match="x is on device meta"):
        d.log_prob(x.to("meta"))
    x_batch = x.shape[: x.dim() - len(d.event_shape)]
    with pytest.raises(ValueError, match="shaped like x"):
        d.log_prob(x, torch.full(x_batch + (1,) * len(d.event_shape), 0.3, device=device))
    if ex.discrete_at_zero:
        with pytest.raises(ValueError, match="score is undefined at sigma = 0"):
            d.score(torch.zeros_like(x), 0.0)  # on the grid, so only the score is wrong
        off = torch.full(x.shape, 0.123, device=device)
        with pytest.raises(ValueError, match="must lie on the grid"):
            d.log_prob(off, 0.0)
