"""``pyro_mala`` / ``pyro_langevin`` return n independent draws, not one chain's states.

On an oracle the lag-1 autocorrelation of the returned sequence, per coordinate,
:math:`r_1 = \\sum_t c_t c_{t+1} / \\sum_t c_t^2` (``c`` centred), is about
:math:`\\mathcal N(0, 1/n)` for independent draws: the tolerance is 4 standard errors,
:math:`4/\\sqrt n` (0.32 at n = 160; a false alarm about once in 16000 per coordinate).
Consecutive MALA states on this target have :math:`r_1` of 0.5 or more, so the test fails
on the old one-chain behaviour (checked below with ``chains="single"``, which must also warn
and report an effective sample size below n).
"""

from __future__ import annotations

import math

import pytest
import torch

from ncmle_prob import samplers
from ncmle_prob.distributions import NoisyGaussian
from ncmle_prob.models import MADE

N = 160
TOL = 4 / math.sqrt(N)


def lag1(x: torch.Tensor) -> torch.Tensor:
    c = x.double() - x.double().mean(0)
    return (c[1:] * c[:-1]).sum(0) / (c * c).sum(0)


def oracle() -> NoisyGaussian:
    return NoisyGaussian(torch.tensor([1.0, -1.0]), torch.diag(torch.tensor([1.0, 0.09])),
                         sigma=0.2)


@pytest.mark.parametrize("method", ["pyro_mala", "pyro_langevin"])
def test_draws_are_independent(method: str) -> None:
    d = oracle()
    g = torch.Generator().manual_seed(1)
    x, info = samplers.sample(d, N, method, warmup_steps=150, generator=g, return_info=True)
    assert x.shape == (N, 2) and info.chains == N
    assert bool((lag1(x).abs() < TOL).all()), lag1(x)
    # and they are draws of the target (not stuck at their uniform(-2, 2) starts): variance
    # within 50% of the exact one (about 4.5 standard errors of a variance at n = 160)
    var = x.double().var(0)
    exact = torch.tensor([1.04, 0.13], dtype=torch.float64)
    assert bool(((var / exact - 1).abs() < 0.5).all()), var


def test_single_chain_is_explicit_and_reports_its_ess() -> None:
    d = oracle()
    g = torch.Generator().manual_seed(1)
    with pytest.warns(UserWarning, match="consecutive states of one chain"):
        x, info = samplers.sample(d, N, "pyro_mala", warmup_steps=150, chains="single",
                                  generator=g, return_info=True)
    assert info.chains == 1 and info.effective_sample_size is not None
    assert info.effective_sample_size < N
    assert float(lag1(x).abs().max()) > TOL  # what the independence test detects


@pytest.mark.parametrize("method", ["pyro_mala", "pyro_langevin"])
def test_grid_data_at_sigma_zero_needs_sigma_positive(method: str) -> None:
    torch.manual_seed(0)
    d = MADE(2, hidden_features=8, family="discretized_logistic_mixture", bins=5)(0.0)
    with pytest.raises(ValueError, match=r"sigma > 0 is needed"):
        samplers.sample(d, 4, method)
