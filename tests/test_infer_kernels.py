"""Posterior correctness of the Langevin kernels on a closed-form Gaussian posterior."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as pdist
import pytest
import torch
from pyro.infer import MCMC, NUTS
from pyro.ops.stats import effective_sample_size

from ncmle_prob.distributions import NoisyGaussian
from ncmle_prob.infer import MALA, AnnealedLangevinKernel, noise_level

PRIOR_SIGMA = 0.5


def _problem(device: torch.device):
    dt = torch.float64
    mu = torch.tensor([0.5, -1.0, 0.0], dtype=dt, device=device)
    L = torch.tensor([[1.0, 0, 0], [0.6, 0.8, 0], [-0.3, 0.2, 0.7]], dtype=dt, device=device)
    cov = L @ L.T
    A = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, -1.0]], dtype=dt, device=device)
    noise = 0.7
    y = torch.tensor([1.2, -0.4], dtype=dt, device=device)
    prior = NoisyGaussian(mu, cov, sigma=PRIOR_SIGMA)

    def model(y):
        x = pyro.sample("x", prior)
        pyro.sample("y", pdist.Normal(A @ x, noise).to_event(1), obs=y)

    # closed form: prior N(mu, cov + s^2 I), likelihood N(y; A x, noise^2 I)
    prior_prec = torch.linalg.inv(cov + PRIOR_SIGMA**2 * torch.eye(3, dtype=dt, device=device))
    post_cov = torch.linalg.inv(prior_prec + A.T @ A / noise**2)
    post_mean = post_cov @ (prior_prec @ mu + A.T @ y / noise**2)
    return model, y, post_mean, post_cov


def _ula_covariance(cov: torch.Tensor, step: float, inv_mass: list[float]) -> torch.Tensor:
    """Exact stationary covariance of preconditioned unadjusted Langevin on N(m, cov):
    x' = x - h M P (x - m) + sqrt(2h) M^1/2 xi  =>  C = A C A^T + 2 h M, A = I - h M P."""
    from scipy.linalg import solve_discrete_lyapunov

    M = torch.diag(torch.tensor(inv_mass, dtype=cov.dtype))
    A = torch.eye(cov.shape[0], dtype=cov.dtype) - step * M @ torch.linalg.inv(cov.cpu())
    return torch.as_tensor(solve_discrete_lyapunov(A.numpy(), 2 * step * M.numpy())).to(cov)


def _check(draws: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor):
    ess = effective_sample_size(draws[None], chain_dim=0, sample_dim=1).min().item()
    assert ess > 100, f"too few effective samples: {ess}"
    sd = cov.diagonal().sqrt()
    # 4.5 Monte-Carlo standard errors (ESS-based): a wrong posterior mean (e.g. the prior
    # mean, off by > 0.3 here) fails; a correct one passes with prob > 0.9999 per entry.
    assert torch.all((draws.mean(0) - mean).abs() <= 4.5 * sd / math.sqrt(ess)), (
        draws.mean(0), mean)
    # covariance entries: sd of an empirical covariance ~ sqrt((S_ii S_jj + S_ij^2) / ESS)
    emp = torch.cov(draws.T)
    se = torch.sqrt((sd[:, None] ** 2 * sd[None, :] ** 2 + cov**2) / ess)
    assert torch.all((emp - cov).abs() <= 4.5 * se), (emp, cov)


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["mala", "annealed", "nuts"])
def test_gaussian_posterior(kernel: str, device: torch.device) -> None:
    model, y, mean, cov = _problem(device)
    pyro.set_rng_seed(0)
    if kernel == "mala":
        k = MALA(model)
    elif kernel == "annealed":
        k = AnnealedLangevinKernel(model, sigma_max=5.0, sigma_min=PRIOR_SIGMA, num_levels=4)
    else:
        k = NUTS(model)
    n = {"mala": 1500, "annealed": 2500, "nuts": 300}[kernel]
    mcmc = MCMC(k, num_samples=n, warmup_steps=300, disable_progbar=True)
    mcmc.run(y)
    draws = mcmc.get_samples()["x"]
    if kernel == "annealed":
        # Unadjusted Langevin is biased by O(h): its draws must match the exact stationary
        # law of the discretised dynamics (same mean, Lyapunov covariance) within MC error,
        # and adapting towards acceptance 0.8 must keep that law within 15 % of the posterior.
        diag = k.diagnostics()
        ula = _ula_covariance(cov, diag["step size"], diag["inverse mass diag"])
        assert torch.all((ula - cov).abs() <= 0.15 * cov.diagonal().max()), (ula, cov)
        cov = ula
    _check(draws, mean, cov)
    if kernel != "nuts":
        diag = k.diagnostics()
        assert not diag["divergences"]
        if kernel == "mala":  # dual averaging targets 0.574
            assert 0.4 < diag["acceptance rate"] < 0.8, diag
        assert 0 < diag["step size"] < 10


def test_noise_level_handler_rebinds(device: torch.device) -> None:
    prior = NoisyGaussian(torch.zeros(2, device=device), torch.eye(2, device=device), sigma=0.1)

    def model():
        with pyro.plate("n", 3):
            a = pyro.sample("a", prior)
        b = pyro.sample("b", prior.expand((4,)).to_event(1))
        c = pyro.sample("c", prior.mask(False))
        d = pyro.sample("d", pdist.Normal(torch.zeros((), device=device), 1.0))
        return a, b, c, d

    with pyro.poutine.trace() as tr, noise_level(2.0, sites=["a", "b", "c"]):
        model()
    nodes = tr.trace.nodes
    for name in "abc":
        fn = nodes[name]["fn"]
        while not isinstance(fn, NoisyGaussian):
            fn = fn.base_dist
        assert torch.all(fn.sigma == 2.0), name
    assert nodes["a"]["value"].shape == (3, 2) and nodes["b"]["value"].shape == (4, 2)
    # log-density follows the rebound sigma: N(0, (1 + 4) I) for "b"
    lp = nodes["b"]["fn"].log_prob(nodes["b"]["value"])
    ref = pdist.Normal(0.0, math.sqrt(5.0)).log_prob(nodes["b"]["value"]).sum()
    assert torch.allclose(lp, ref.to(lp), atol=1e-5)
    with pytest.raises(ValueError, match="sigma"):
        noise_level(-1.0)
    with pytest.raises(TypeError, match="sites"):
        noise_level(1.0, sites="a")


def test_kernel_bad_arguments() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MALA()
    with pytest.raises(ValueError, match="step_size"):
        MALA(lambda: None, step_size=-1.0)
    with pytest.raises(ValueError, match="sigma_min"):
        AnnealedLangevinKernel(lambda: None, sigma_max=0.1, sigma_min=1.0)


def test_old_kernel_name_is_a_deprecated_alias() -> None:
    from ncmle_prob import infer
    from ncmle_prob.samplers import engine

    with pytest.warns(DeprecationWarning, match="AnnealedLangevinKernel"):
        k = infer.AnnealedLangevin(lambda: None, sigma_max=1.0, sigma_min=0.01, num_levels=3)
    assert isinstance(k, AnnealedLangevinKernel)
    # the kernel's ladder is the samplers' one ladder builder
    assert k.sigmas == engine.ladder(1.0, 0.01, 3)


def test_registry_samplers(device: torch.device) -> None:
    from ncmle_prob import samplers

    assert {"pyro_mala", "pyro_langevin"} <= set(samplers.available())  # listed by name
    d = NoisyGaussian(torch.tensor([1.0, -1.0], device=device),
                      torch.tensor([[1.0, 0.5], [0.5, 1.0]], device=device), sigma=0.5)
    g = torch.Generator(device=device).manual_seed(0)
    x = samplers.sample(d, 800, method="pyro_mala", generator=g, warmup_steps=200)
    assert x.shape == (800, 2) and x.dtype == d.dtype
    ess = effective_sample_size(x[None].double(), chain_dim=0, sample_dim=1).min().item()
    sd = math.sqrt(1.25)
    # mean within 4.5 ESS-based standard errors of the exact mean
    assert torch.all((x.mean(0) - d.mean).abs() <= 4.5 * sd / math.sqrt(ess)), (x.mean(0), ess)
    y = samplers.sample(d, 300, method="pyro_langevin", generator=g, warmup_steps=200,
                        sigma_max=3.0, num_levels=4)
    assert samplers.options("pyro_langevin")["metropolis"][1] is True  # exact by default
    assert y.shape == (300, 2) and bool(torch.isfinite(y).all())
    assert samplers.options("pyro_mala")["thin"][1] == 1
