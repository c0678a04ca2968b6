"""Generic properties of every distribution in ``tests/registry.py``.

The checks themselves ship in the package (:mod:`ncmle_prob.testing`, so that users run them on
their own models); here each one runs over the registry (oracles and randomly initialised MADE
models of every family, bound to scalar and tensor σ, and flow compositions), so a new entry
gets every check for free. Tolerances are stated in the checks, next to each comparison. The
negative controls below show that the goodness-of-fit checks reject wrong samplers.
"""

from __future__ import annotations

import pytest
import torch
from conftest import test_device
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from registry import EXAMPLES, Example, made_model

from ncmle_prob.distributions import NoisyGaussian
from ncmle_prob.testing import CHECKS, GOF_ALPHA, checks_for, checks_of_kind, gof_pvalues
from ncmle_prob.testing.numerics import grid_gof, grid_points

#: The property checks, read from the suite's registry (the contract checks run in
#: tests/test_contracts.py).
PROPERTIES = checks_of_kind("property")
CASES = [(ex, name) for ex in EXAMPLES for name in checks_for(ex, PROPERTIES)]


@pytest.mark.parametrize("ex,name", CASES, ids=[f"{name}-{ex.id}" for ex, name in CASES])
def test_property(ex: Example, name: str, device) -> None:
    CHECKS[name](ex, device)


def test_every_property_runs_somewhere() -> None:
    """No property check is silently skipped by every registry entry."""
    assert {name for _, name in CASES} == set(PROPERTIES)


def test_properties_and_contracts_are_every_check() -> None:
    """Every check of the suite's registry is run by this file or tests/test_contracts.py: a
    new check cannot silently run on nothing."""
    contracts = checks_of_kind("contract")
    assert set(PROPERTIES).isdisjoint(contracts)
    assert [*PROPERTIES, *contracts] == list(CHECKS)


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



# ---------------------------------------------------------------------------- negative controls
@pytest.mark.parametrize("family", ["gaussian", "logistic_mixture"])
def test_goodness_of_fit_detects_a_wrong_sigma(family: str, device) -> None:
    """Negative control: 2-D samples at σ = 0.3 fail against log_prob at σ = 0.6.

    A freshly initialised MADE (σ enters once, after the first layer) depends only weakly on
    σ, so the control triples its σ weights: the χ² test then gives p ~ 1e-50 for both
    families (p ~ 1e-3 without the scaling: too close to the bar to be a control), while the
    same draws against the right σ give p = 0.3 / 0.01. Pyro's nearest-neighbour test has
    little power here (p ~ 0.03 / 4e-4), so only the χ² test is asserted.
    """
    model = made_model(2, family).to(device=device, dtype=torch.float64)
    with torch.no_grad():
        model.net.context_layer.weight.mul_(3.0)
    ex = Example("control", lambda dtype, device: model(0.6), dim=2)
    x = model(0.3).sample((6000,), generator=torch.Generator(device).manual_seed(1))
    chi2, _ = gof_pvalues(model(0.6), ex, x)
    assert min(chi2) < 1e-9


def test_grid_goodness_of_fit_detects_another_model(device) -> None:
    """Negative control at σ = 0 on the grid: another random model's samples fail.

    The two random models differ by a TV distance of only 0.05 on the 5 × 5 grid, so 10 000
    draws are needed: the χ² test then gives p ~ 1e-31 (1e-4 with 2500), and p ~ 0.45 against
    the right model."""
    family = "discretized_logistic_mixture"
    model = made_model(2, family).to(device=device, dtype=torch.float64)
    other = made_model(2, family, seed=5).to(device=device, dtype=torch.float64)
    x = other(0.0).sample((10000,), generator=torch.Generator(device).manual_seed(1))
    pts = grid_points(5, 2, torch.float64, device)
    assert grid_gof(pts, model(0.0).log_prob(pts), x) < 1e-5
    assert grid_gof(pts, other(0.0).log_prob(pts), x) > GOF_ALPHA


