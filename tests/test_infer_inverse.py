"""Inverse problems: closed-form posteriors with a Gaussian prior, and digits denoising with a
learned MADE prior (PSNR vs the noisy input and a single Tweedie step)."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.ops.stats import effective_sample_size

from ncmle_prob.distributions import NoisyGaussian
from ncmle_prob.infer.inverse import blur_operator, deblur, inpaint, psnr
from ncmle_prob.infer.inverse import remove_noise as denoise
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior, ncmle_loss

DT = torch.float64
SP = 0.1  # prior noise level sigma_p


def _gaussian_prior(device: torch.device) -> NoisyGaussian:
    g = torch.Generator().manual_seed(0)
    B = torch.randn(16, 16, generator=g, dtype=DT) / 4
    cov = (0.1 * B @ B.T + 0.2 * torch.eye(16, dtype=DT)).to(device)  # correlated, eig 0.2-0.6
    mu = torch.linspace(-0.5, 0.5, 16, dtype=DT, device=device)
    return NoisyGaussian(mu, cov, sigma=SP)


def _closed_form(prior: NoisyGaussian, A: torch.Tensor, tau: float, y: torch.Tensor):
    """Posterior of x_sp ~ N(mu, cov + sp^2 I) given y = A x_sp + N(0, tau^2)."""
    C = prior.covariance_matrix
    P = torch.linalg.inv(C)
    cov = torch.linalg.inv(P + A.T @ A / tau**2)
    mean = cov @ (P @ prior.mean + A.T @ y / tau**2)
    return mean, cov


def _check_restore(out, prior, A, tau, y) -> None:
    mean, cov = _closed_form(prior, A, tau, y)
    x = out.samples.reshape(-1, 16)  # one image: (num_samples, 16)
    ess = effective_sample_size(x[None], chain_dim=0, sample_dim=1).min().item()
    assert ess > 50, ess
    # posterior mean of x_sp within 4.5 ESS-based Monte-Carlo standard errors per pixel
    assert torch.all((x.mean(0) - mean).abs() <= 4.5 * cov.diagonal().sqrt() / math.sqrt(ess))
    # the reported clean mean is the prior's (linear) Tweedie map averaged over the draws
    assert torch.allclose(out.mean.reshape(16), prior.denoise(x).mean(0), atol=1e-10)


def test_inpaint_matches_closed_form(device: torch.device) -> None:
    prior = _gaussian_prior(device)
    mask = torch.zeros(16, dtype=torch.bool, device=device)
    mask[::3] = True
    x0 = prior.sample(generator=torch.Generator(device=device).manual_seed(1))
    pyro.set_rng_seed(0)
    out = inpaint(prior, x0[None], mask, noise_std=0.3, num_samples=1000, warmup_steps=400)
    A = torch.eye(16, dtype=DT, device=device)[mask]
    _check_restore(out, prior, A, math.sqrt(0.3**2 + SP**2), x0[mask])
    assert out.mean.shape == (1, 16)


def test_deblur_matches_closed_form(device: torch.device) -> None:
    prior = _gaussian_prior(device)
    A = blur_operator((4, 4), torch.full((3, 3), 1 / 9, dtype=DT, device=device))
    x0 = prior.sample(generator=torch.Generator(device=device).manual_seed(2))
    y = A @ x0 + 0.2 * torch.randn(16, dtype=DT, device=device)
    pyro.set_rng_seed(0)
    out = deblur(prior, y, A, noise_std=0.2, num_samples=1000, warmup_steps=400)
    _check_restore(out, prior, A, math.sqrt(0.2**2 + SP**2), y)


def test_inverse_bad_input(device: torch.device) -> None:
    prior = _gaussian_prior(device)
    with pytest.raises(ValueError, match="mask"):
        inpaint(prior, torch.zeros(1, 16, dtype=DT, device=device), torch.ones(16))
    with pytest.raises(ValueError, match="noise_std"):
        denoise(prior, torch.zeros(1, 16, dtype=DT, device=device), 0.05)
    with pytest.raises(ValueError, match="kernel"):
        blur_operator((4, 4), torch.ones(2, 2))
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.zeros(2, 3), torch.zeros(3, 2))


@pytest.mark.slow
def test_digits_denoising_beats_noisy_and_tweedie(device: torch.device) -> None:
    from ncmle_prob.data.digits import load_digits

    data = load_digits().flatten()
    x = data.train.to(device)
    torch.manual_seed(0)
    model = MADE(64, hidden_features=128, num_blocks=1, family="gaussian").to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator(device=device).manual_seed(0)
    prior = NoiseLevelPrior(p_zero=0.0, sigma_min=0.05, sigma_max=1.0)
    for _ in range(800):
        idx = torch.randint(0, x.shape[0], (256,), device=device, generator=g)
        loss = ncmle_loss(model, x[idx], prior, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    clean = data.test[:6].to(device)
    sigma_y = 0.4
    y = clean + sigma_y * torch.randn(clean.shape, device=device, generator=g)
    pyro.set_rng_seed(0)
    out = denoise(model(SP), y, sigma_y, num_samples=150, warmup_steps=200)
    p_noisy = float(psnr(y, clean).mean())
    p_tweedie = float(psnr(model(sigma_y).denoise(y).detach(), clean).mean())
    p_mcmc = float(psnr(out.mean.detach(), clean).mean())
    print(f"PSNR noisy {p_noisy:.2f} dB, Tweedie {p_tweedie:.2f} dB, MALA posterior {p_mcmc:.2f}")
    # measured (CPU, MADE with σ reaching every dimension): noisy 14.07, Tweedie 17.69,
    # posterior mean 18.05 dB (old layout: 14.1, 17.5, 18.1). The posterior mean
    # under the sigma_p = 0.1 prior must beat the noisy input by > 2 dB and a single Tweedie
    # step of the same model at sigma_y by > 0.2 dB (a prior that ignored the data, or a wrong
    # likelihood, would do worse than Tweedie)
    assert p_mcmc > p_noisy + 2.0
    assert p_mcmc > p_tweedie + 0.2
