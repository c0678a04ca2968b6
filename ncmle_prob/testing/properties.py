"""The generic property checks: shapes, ``expand``, ``at``, scores, Tweedie, normalisation,
goodness of fit, float64 and validation.

Each check is a function ``check(example, device)`` that returns ``None`` or raises
:class:`AssertionError` (or the error of :func:`torch.testing.assert_close`) naming what broke.
Tolerances are stated next to each comparison with the reason they are enough.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from .numerics import Quadrature, auto_gof, binned_gof, grid_gof, grid_points, quadrature
from .spec import Example, raises

__all__ = [
    "GOF_ALPHA",
    "NN_ALPHA",
    "check_at",
    "check_denoise",
    "check_expand",
    "check_float64",
    "check_goodness_of_fit",
    "check_normalisation",
    "check_per_example_sigma",
    "check_score",
    "check_score_finite_differences",
    "check_shapes",
    "check_validation",
    "gof_pvalues",
]

#: Goodness-of-fit threshold. Seeds are fixed, so on one device each p-value is a fixed number;
#: with ~50 checks, 1e-4 keeps the chance that a new RNG stream (another device) fails a correct
#: sampler below 1 %, while a wrong sampler gives p < 1e-10 (see the negative controls of the
#: test suite).
GOF_ALPHA = 1e-4
#: Threshold of Pyro's nearest-neighbour test, which is anti-conservative: in 2-D about 60 % of
#: the points are mutual nearest neighbours and share their distance, so its binned values are
#: not independent and its χ² is inflated (an exact oracle reaches p ~ 1e-5 at n = 6000). It
#: still rejects gross errors at p < 1e-15 (a sampler that ignores σ).
NN_ALPHA = 1e-7


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def positive(sigma: Tensor, fill: float = 0.25) -> Tensor:
    """σ with its zeros replaced by ``fill`` (where a score or a density exists)."""
    return torch.where(sigma == 0, torch.full_like(sigma, fill), sigma)


def _lift(d: NoiseConditionalDistribution, t: Tensor) -> Tensor:
    return t.reshape(t.shape + (1,) * len(d.event_shape))


def continuous_points(d: NoiseConditionalDistribution, n: int) -> tuple[Tensor, Tensor]:
    """Points ``x`` of shape ``(n, *batch, *event)`` and a positive σ of the batch shape."""
    sigma = positive(d.sigma)
    return d.at(sigma).sample((n,)), sigma


# ---------------------------------------------------------------------------- shapes
SAMPLE_SHAPES = [(), (5,), (2, 3)]
SIGMA_CASES = ["bound", "scalar", "per_example", "new_leading_dim"]


def check_shapes(ex: Example, device: torch.device) -> None:
    """torch's shape law for ``sample``, ``log_prob``, ``score`` and ``denoise``, with the
    bound σ and with an explicit σ of four kinds (scalar, per example, an extra leading dim)."""
    for sample_shape in SAMPLE_SHAPES:
        for sigma_case in SIGMA_CASES:
            _check_shapes_case(ex, device, sample_shape, sigma_case)


def _check_shapes_case(ex: Example, device: torch.device, sample_shape: tuple[int, ...],
                       sigma_case: str) -> None:
    where = f"{ex.id}, sample_shape={sample_shape}, sigma={sigma_case}"
    d = ex.make(torch.float32, device)
    batch, event = d.batch_shape, d.event_shape
    param_batch = d.at(0.0).batch_shape  # the batch shape of the parameters other than σ
    _check(event.numel() == ex.dim, f"{where}: event_shape {tuple(event)} has not dim={ex.dim}")
    _check(d.discrete_at_zero == ex.discrete_at_zero,
           f"{where}: discrete_at_zero is {d.discrete_at_zero}, the example says "
           f"{ex.discrete_at_zero}")
    x = d.sample(sample_shape)
    _check(x.shape == torch.Size(sample_shape) + batch + event,
           f"{where}: sample shape {tuple(x.shape)}")
    _check(x.dtype == torch.float32 and x.device == device,
           f"{where}: sample dtype/device {x.dtype}/{x.device}")
    x_batch = x.shape[: x.dim() - len(event)]
    sigma: float | Tensor | None
    if sigma_case == "bound":
        sigma, expected = None, x_batch
    elif sigma_case == "scalar":
        sigma, expected = 0.35, torch.broadcast_shapes(x_batch, param_batch)
    elif sigma_case == "per_example":
        sigma, expected = 0.1 + torch.rand(x_batch, device=device), x_batch
    else:  # an extra leading dim broadcasts like any batch parameter (4 levels: a shape
        # (4, 1) never equals x_batch + (1,), which the contract rejects as ambiguous)
        sigma = torch.tensor([0.2, 0.5, 0.9, 1.3], device=device).reshape(
            (4,) + (1,) * len(x_batch))
        expected = torch.Size((4,)) + x_batch
    lp = d.log_prob(x, sigma)
    _check(lp.shape == expected, f"{where}: log_prob shape {tuple(lp.shape)}, expected "
           f"{tuple(expected)}")
    _check(bool(torch.isfinite(lp).all()), f"{where}: log_prob is not finite")
    s = d.sigma if sigma is None else torch.as_tensor(sigma, device=device)
    if ex.discrete_at_zero and bool((s == 0).any()):
        with raises(ValueError, "score is undefined at sigma = 0"):
            d.score(x, sigma)
        sigma = positive(s.expand(expected) if s.dim() else s)
    g = d.score(x, sigma)
    _check(g.shape == expected + event and bool(torch.isfinite(g).all()),
           f"{where}: score shape {tuple(g.shape)} or not finite")
    _check(d.denoise(x, sigma).shape == expected + event, f"{where}: denoise shape")


def check_per_example_sigma(ex: Example, device: torch.device) -> None:
    """A batch of per-example σ gives, row by row, what each σ gives alone (no mixing)."""
    d = ex.make(torch.float64, device)
    x, _ = continuous_points(d, 4)
    x_batch = x.shape[: x.dim() - len(d.event_shape)]
    sigma = torch.linspace(0.05, 1.2, math.prod(x_batch), device=device,
                           dtype=torch.float64).reshape(x_batch)
    lp = d.log_prob(x, sigma)
    for i in range(x.shape[0]):
        # float64: batched and single evaluations round differently only at ~1e-15.
        torch.testing.assert_close(lp[i], d.log_prob(x[i], sigma[i]), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------- expand / at
def check_expand(ex: Example, device: torch.device) -> None:
    """``expand`` adds batch dims without copying numbers, and refuses a non-broadcast."""
    d = ex.make(torch.float32, device)
    new_batch = torch.Size((4,)) + d.batch_shape
    e = d.expand(new_batch)
    _check(e.batch_shape == new_batch and e.event_shape == d.event_shape,
           f"{ex.id}: expand gave batch {tuple(e.batch_shape)}, event {tuple(e.event_shape)}")
    _check(e.sigma.shape == new_batch, f"{ex.id}: expanded sigma has shape {e.sigma.shape}")
    x = e.sample((3,))
    _check(x.shape == (3,) + new_batch + d.event_shape, f"{ex.id}: expanded sample shape")
    # Expanding copies nothing: the same numbers in every new row (exact equality).
    torch.testing.assert_close(e.log_prob(x), d.log_prob(x), rtol=0, atol=0)
    _check(d.batch_shape == new_batch[1:], f"{ex.id}: expand changed the original")
    if d.batch_shape:  # anything is a broadcast of an empty batch_shape
        with raises(ValueError, "expand: batch_shape"):
            d.expand((7,) + d.batch_shape[:-1] + (d.batch_shape[-1] + 1,))


def check_at(ex: Example, device: torch.device) -> None:
    """``at(σ)`` binds σ without touching the original; binding σ and passing it per call are
    the same computation."""
    d = ex.make(torch.float32, device)
    original_sigma = d.sigma.clone()
    param_batch = d.at(0.0).batch_shape
    s2 = torch.tensor([0.2, 0.7], device=device).reshape((2,) + (1,) * len(param_batch))
    d2 = d.at(s2)
    _check(d2.batch_shape == (2,) + param_batch, f"{ex.id}: at batch {tuple(d2.batch_shape)}")
    torch.testing.assert_close(d2.sigma, s2.expand(d2.batch_shape), rtol=0, atol=0)
    torch.testing.assert_close(d.sigma, original_sigma, rtol=0, atol=0)  # d unchanged
    x = d2.sample((5,))
    _check(x.shape == (5,) + d2.batch_shape + d.event_shape, f"{ex.id}: sample shape after at")
    # Binding σ and passing it explicitly are the same computation (exact equality).
    torch.testing.assert_close(d2.log_prob(x), d.log_prob(x, s2), rtol=0, atol=0)
    torch.testing.assert_close(d2.score(x), d.score(x, s2), rtol=0, atol=0)
    # The bound σ really is used: another σ gives another density.
    _check(not torch.allclose(d2.log_prob(x), d.log_prob(x, s2 + 0.5)),
           f"{ex.id}: log_prob does not depend on sigma")


# ---------------------------------------------------------------------------- score
def check_score(ex: Example, device: torch.device) -> None:
    """``score`` equals autograd of ``log_prob``, and ``create_graph=True`` differentiates."""
    d = ex.make(torch.float64, device)
    x, sigma = continuous_points(d, 6)
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
    fd = d.score(x + step, sigma).sum(event_sum) - d.score(x - step, sigma).sum(event_sum)
    torch.testing.assert_close(hess_sum.flatten(batch_dims)[..., 0], fd / (2 * h), rtol=1e-4,
                               atol=1e-5)
    # log_prob_and_score is the same pair from one pass.
    lp2, g3 = d.log_prob_and_score(x, sigma)
    torch.testing.assert_close(lp2, d.log_prob(x, sigma), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g3, g, rtol=1e-12, atol=1e-12)


def check_score_finite_differences(ex: Example, device: torch.device) -> None:
    """``score`` equals central finite differences of ``log_prob`` (float64)."""
    d = ex.make(torch.float64, device)
    x, sigma = continuous_points(d, 5)
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


def check_denoise(ex: Example, device: torch.device) -> None:
    """``denoise`` is Tweedie's formula ``x + σ² score`` (and ``x`` where σ = 0)."""
    d = ex.make(torch.float64, device)
    x = d.sample((6,))  # at the bound σ: grid points where a discretized family has σ = 0
    sigma = d.sigma
    den = d.denoise(x)
    pos = _lift(d, sigma > 0).expand_as(x)
    g = d.score(x, positive(sigma))
    expected = torch.where(pos, x + _lift(d, sigma**2) * g, x)
    # float64: the same score and one multiply-add, equal to rounding.
    torch.testing.assert_close(den, expected, rtol=1e-12, atol=1e-12)
    _check(bool(torch.isfinite(den).all()), f"{ex.id}: denoise is not finite")


# ---------------------------------------------------------------------------- normalisation
def _quadrature(d: NoiseConditionalDistribution, ex: Example, sigma: Tensor) -> Quadrature:
    """exp(log_prob) at ``sigma`` on a sinh grid fitted to samples at that σ (or ``span``)."""
    if ex.span is not None:
        samples = torch.linspace(*ex.span, 9, dtype=d.dtype, device=d.device)[:, None]
        samples = samples.expand(9, ex.dim)
    else:
        gen = torch.Generator(d.device).manual_seed(2)
        samples = d.at(sigma).sample((2000,), generator=gen).reshape(-1, ex.dim)
    return quadrature(d, sigma, samples, 2001 if ex.dim == 1 else 161)


def check_normalisation(ex: Example, device: torch.device) -> None:
    """Densities integrate to one (1-D and 2-D); grid masses sum to one at σ = 0."""
    d = ex.make(torch.float64, device)
    sigma = d.sigma
    mass = d.is_mass(sigma)
    # Densities: integrate where σ > 0 or the family is continuous (σ = 0 elements of a
    # discretized family are integrated at σ = 0.25 instead, also a density there).
    total = _quadrature(d, ex, positive(sigma) if ex.discrete_at_zero else sigma).integral()
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
def gof_pvalues(d: NoiseConditionalDistribution, ex: Example,
                x: Tensor) -> tuple[list[float], list[float]]:
    """p-values of samples ``x`` (shape ``(n, *batch, *event)``) against ``d``'s log_prob, per
    batch element: ``(chi2, nn)``. ``chi2``: the χ² test of cell masses integrated from log_prob
    where the law is continuous, over the grid where it is a discretized family at σ = 0.
    ``nn``: Pyro's nearest-neighbour density test where the law is continuous."""
    batch = d.batch_shape
    nb = max(1, batch.numel())
    flat_x = x.reshape(x.shape[0], nb, ex.dim)
    flat_lp = d.log_prob(x).reshape(x.shape[0], nb)
    mass = d.is_mass(d.sigma).expand(batch).reshape(nb)
    chi2: list[float] = []
    nn: list[float] = []
    if bool(mass.any()):
        pts = grid_points(d.bins, ex.dim, d.dtype, d.device)
        grid_lp = d.log_prob(pts.reshape((pts.shape[0],) + (1,) * len(batch) + d.event_shape))
        grid_lp = grid_lp.reshape(pts.shape[0], nb)
        chi2 += [grid_gof(pts, grid_lp[:, b], flat_x[:, b]) for b in range(nb) if mass[b]]
    if not bool(mass.all()):
        cont = [b for b in range(nb) if not mass[b]]
        nn += [auto_gof(flat_x[:, b], flat_lp[:, b].exp()) for b in cont]
        # (σ = 0 elements of a discretized family are integrated at 0.25 and left unused)
        sigma = positive(d.sigma) if ex.discrete_at_zero else d.sigma
        binned = binned_gof(_quadrature(d, ex, sigma), x, 10 if ex.dim == 1 else 5)
        chi2 += [binned[b] for b in cont]
    return chi2, nn


def check_goodness_of_fit(ex: Example, device: torch.device) -> None:
    """Samples fit ``exp(log_prob)`` (χ² of integrated cell masses, Pyro's nearest-neighbour
    test, the grid χ² at σ = 0). Needs SciPy."""
    d = ex.make(torch.float64, device)
    # Pyro's vector test needs > 1000 * dim samples; 6000 detects e.g. a 10 % error in the
    # logistic scales of the sampler at p < 1e-9 (a mutation check run by hand)
    n = 4000 if ex.dim == 1 else 6000
    x = d.sample((n,), generator=torch.Generator(device).manual_seed(1))
    chi2, nn = gof_pvalues(d, ex, x)
    _check(min(chi2) > GOF_ALPHA, f"{ex.id}: chi2 p-values {chi2} (threshold {GOF_ALPHA})")
    _check(min(nn, default=1.0) > NN_ALPHA,
           f"{ex.id}: nearest-neighbour p-values {nn} (threshold {NN_ALPHA})")


# ---------------------------------------------------------------------------- float64
def check_float64(ex: Example, device: torch.device) -> None:
    """The float64 distribution computes in float64 and agrees with the float32 one."""
    d32 = ex.make(torch.float32, device)
    d64 = ex.make(torch.float64, device)
    _check(d32.dtype == torch.float32 and d64.dtype == torch.float64,
           f"{ex.id}: dtypes {d32.dtype}, {d64.dtype}")
    x = d64.sample((7,))
    _check(x.dtype == torch.float64, f"{ex.id}: float64 sample has dtype {x.dtype}")
    sigma = positive(d64.sigma)
    lp64 = d64.log_prob(x, sigma)
    lp32 = d32.log_prob(x.float(), sigma.float())
    _check(lp64.dtype == torch.float64 and lp32.dtype == torch.float32,
           f"{ex.id}: log_prob dtypes {lp64.dtype}, {lp32.dtype}")
    # Same weights in both precisions: float32 rounding through a small network and a
    # factorisation is ~1e-6 relative; 1e-4 leaves margin yet catches a precision-dependent
    # path.
    torch.testing.assert_close(lp32.double(), lp64, rtol=1e-4, atol=1e-4)
    _check(d64.score(x, sigma).dtype == torch.float64, f"{ex.id}: float64 score dtype")


# ---------------------------------------------------------------------------- validation
def check_validation(ex: Example, device: torch.device) -> None:
    """Bad σ, shapes, NaN/inf, dtypes, devices and (discretized) grids are clear errors."""
    d = ex.make(torch.float32, device)
    x = d.sample((3,))
    for bad in (-0.1, math.nan, math.inf):
        for call in (lambda s: d.log_prob(x, s), lambda s: d.at(s), lambda s: d.score(x, s)):
            with raises(ValueError, "sigma must be"):
                call(bad)
    with raises(ValueError, "sigma must be >= 0"):
        d.log_prob(x, torch.tensor([0.1, -0.2], device=device))
    with raises(ValueError, r"x has shape .* event_shape"):
        d.log_prob(torch.zeros(3, ex.dim + 1, device=device))
    bad_x = x.clone()
    bad_x.view(-1)[0] = math.nan
    with raises(ValueError, "x contains 1 NaN or infinite"):
        d.log_prob(bad_x)
    bad_x.view(-1)[0] = -math.inf
    with raises(ValueError, "x contains 1 NaN or infinite"):
        d.score(bad_x, positive(d.sigma))
    with raises(TypeError, r"x has dtype torch\.float64"):
        d.log_prob(x.double())
    with raises(TypeError, r"x must be a torch\.Tensor"):
        d.log_prob(x.tolist())
    with raises(ValueError, "x is on device meta"):
        d.log_prob(x.to("meta"))
    x_batch = x.shape[: x.dim() - len(d.event_shape)]
    with raises(ValueError, "shaped like x"):
        d.log_prob(x, torch.full(x_batch + (1,) * len(d.event_shape), 0.3, device=device))
    with raises(ValueError, "validate=False"):
        d.log_prob_and_score(x, 0.3, validate=False)
    if ex.discrete_at_zero:
        with raises(ValueError, "score is undefined at sigma = 0"):
            d.score(torch.zeros_like(x), 0.0)  # on the grid, so only the score is wrong
        off = torch.full(x.shape, 0.123, device=device)
        with raises(ValueError, "must lie on the grid"):
            d.log_prob(off, 0.0)
