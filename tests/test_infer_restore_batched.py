"""Batched restoration: one chain per image in one tensor, against closed forms and against
the same chains run one image at a time; PixelCNN++ priors for denoise, inpaint and deblur."""

from __future__ import annotations

import math

import pytest
import torch
from pyro.ops.stats import effective_sample_size

from ncmle_prob.distributions import NoisyGaussian
from ncmle_prob.infer.batched_mala import batched_mala
from ncmle_prob.infer.inverse import blur_operator, deblur, inpaint, psnr, restore
from ncmle_prob.infer.inverse import remove_noise as denoise
from ncmle_prob.models import PixelCNNPP

DT = torch.float64
SP = 0.1


def _prior(device: torch.device) -> NoisyGaussian:
    g = torch.Generator().manual_seed(0)
    B = torch.randn(16, 16, generator=g, dtype=DT) / 4
    cov = (0.1 * B @ B.T + 0.2 * torch.eye(16, dtype=DT)).to(device)
    mu = torch.linspace(-0.5, 0.5, 16, dtype=DT, device=device)
    return NoisyGaussian(mu, cov, sigma=SP)


def _images(prior: NoisyGaussian, n: int, sigma_y: float, device: torch.device):
    g = torch.Generator(device=device).manual_seed(5)
    clean = prior.at(0.0).sample((n,), generator=g)
    return clean, clean + sigma_y * torch.randn(clean.shape, generator=g, dtype=DT,
                                                device=device)


@pytest.mark.slow  # ~20 s: 2000 MALA steps of 8 (4) chains
def test_batched_denoising_matches_closed_form_posterior_mean(device: torch.device) -> None:
    # x0 ~ N(mu, C), y = x0 + sigma_y eps: E[x0 | y] = mu + C (C + sigma_y^2 I)^-1 (y - mu).
    # 8 images in one batch; each image's clean posterior mean (the Tweedie map averaged over
    # its chain) is within 4.5 Monte-Carlo standard errors (ESS-based, per pixel) of it. At
    # 8 x 16 pixels, a 4.5-sigma bound fails by chance with probability < 1e-3.
    prior, sigma_y = _prior(device), 0.4
    clean, y = _images(prior, 8, sigma_y, device)
    out = denoise(prior, y, sigma_y, num_samples=1500, warmup_steps=400, seed=0, clean=clean)
    C = prior.at(0.0).covariance_matrix
    exact = prior.mean + (y - prior.mean) @ torch.linalg.solve(
        C + sigma_y**2 * torch.eye(16, dtype=DT, device=device), C)
    assert out.mean.shape == (8, 16) and out.samples.shape == (8, 1500, 16)
    for b in range(8):
        tw = prior.denoise(out.samples[b])  # the per-draw clean estimates of image b
        ess = effective_sample_size(tw[None], chain_dim=0, sample_dim=1)
        assert float(ess.min()) > 100, float(ess.min())
        err = (out.mean[b] - exact[b]).abs()
        assert torch.all(err <= 4.5 * tw.std(0) / ess.sqrt()), (b, err.max())
        assert out.diagnostics[b]["divergences"] == 0
        assert 0.4 < out.diagnostics[b]["acceptance rate"] < 0.8  # target 0.574
    # PSNR is reported against the clean images; the posterior mean beats the noisy input
    assert out.psnr is not None and out.psnr.shape == (8,)
    assert torch.allclose(out.psnr, psnr(clean, out.mean))
    assert float(out.psnr.mean()) > float(psnr(clean, y).mean()) + 1.0


def test_batched_chains_equal_chains_run_alone(device: torch.device) -> None:
    # Chain b is seeded with seed + b and only sees row b of the batched target, so running
    # 8 images in one batch gives each image's draws exactly as running it alone with seed
    # seed + b (float64 oracle: the batched matmul differs from the single one by ~1e-16, and
    # no accept decision sits that close to its threshold).
    prior, sigma_y = _prior(device), 0.4
    _, y = _images(prior, 8, sigma_y, device)
    kw = {"num_samples": 60, "warmup_steps": 60}
    batched = denoise(prior, y, sigma_y, seed=123, **kw)
    for b in range(8):
        alone = denoise(prior, y[b : b + 1], sigma_y, seed=123 + b, **kw)
        assert torch.allclose(alone.samples[0], batched.samples[b], atol=1e-10, rtol=0)
        assert alone.diagnostics[0]["step size"] == pytest.approx(
            batched.diagnostics[b]["step size"], rel=1e-9)


@pytest.mark.slow  # ~20 s: 2000 MALA steps of 8 (4) chains
def test_batched_inpaint_and_deblur_match_closed_form_means(device: torch.device) -> None:
    # Linear-Gaussian posteriors of x_sp for 4 images at once (inpaint: every third pixel
    # observed; deblur: 3x3 box blur), each within 4.5 ESS-based standard errors.
    prior = _prior(device)
    C = prior.covariance_matrix  # of x_sp
    P = torch.linalg.inv(C)
    clean, _ = _images(prior, 4, 0.0, device)
    g = torch.Generator(device=device).manual_seed(9)
    mask = torch.zeros(16, dtype=torch.bool, device=device)
    mask[::3] = True
    A_blur = blur_operator((4, 4), torch.full((3, 3), 1 / 9, dtype=DT, device=device))
    y_blur = clean @ A_blur.T + 0.2 * torch.randn(4, 16, generator=g, dtype=DT, device=device)
    cases = [
        (inpaint(prior, clean, mask, 0.3, num_samples=1000, warmup_steps=400, seed=1),
         torch.eye(16, dtype=DT, device=device)[mask], math.hypot(0.3, SP), clean[:, mask]),
        (deblur(prior, y_blur, A_blur, 0.2, num_samples=1000, warmup_steps=400, seed=2),
         A_blur, math.hypot(0.2, SP), y_blur),
    ]
    for out, A, tau, y in cases:
        cov = torch.linalg.inv(P + A.T @ A / tau**2)
        for b in range(4):
            mean = cov @ (P @ prior.mean + A.T @ y[b] / tau**2)
            x = out.samples[b]
            ess = effective_sample_size(x[None], chain_dim=0, sample_dim=1)
            # the bound below is ESS-based, so this only guards against a stuck chain
            # (a diagonal preconditioner on the correlated deblur posterior: ESS ~ 35-130)
            assert float(ess.min()) > 20
            assert torch.all((x.mean(0) - mean).abs() <= 4.5 * cov.diagonal().sqrt() / ess.sqrt())


def test_batched_mala_targets_differ_per_chain_and_bad_input() -> None:
    # chain b targets N(b, s_b^2) with s_b = 0.5 (b + 1): per-chain steps adapt to its scale,
    # means and variances within 4.5 standard errors (a shared step would mix the wide chains
    # far too slowly at 1500 draws to pass the variance check).
    scale = 0.5 * torch.arange(1, 5, dtype=DT)

    def log_density(x):
        mu = torch.arange(4, dtype=DT)[:, None]
        return -0.5 * (((x - mu) / scale[:, None]) ** 2).sum(-1), -(x - mu) / scale[:, None] ** 2

    out = batched_mala(log_density, torch.zeros(4, 3, dtype=DT), num_samples=1500,
                       warmup_steps=400, seeds=[0, 1, 2, 3])
    x = out.samples
    for b in range(4):
        e = effective_sample_size(x[b][None], chain_dim=0, sample_dim=1)
        assert torch.all((x[b].mean(0) - b).abs() <= 4.5 * scale[b] / e.sqrt())
        var = x[b].var(0) / scale[b] ** 2  # ~ 1 with relative error ~ sqrt(2 / ess)
        assert torch.all((var - 1).abs() <= 4.5 * (2 / e).sqrt()), var
    # preconditioned steps are in units of each chain's variance (about equal); without the
    # preconditioner each chain's own step grows with its scale (h ~ s^2)
    plain = batched_mala(log_density, torch.zeros(4, 3, dtype=DT), num_samples=1,
                         warmup_steps=300, seeds=[0, 1, 2, 3], precondition=False)
    # successive s^2 ratios are >= 1.78
    assert bool((plain.step_size[1:] > 1.3 * plain.step_size[:-1]).all()), plain.step_size
    with pytest.raises(ValueError, match="seeds"):
        batched_mala(log_density, torch.zeros(4, 3, dtype=DT), num_samples=5, warmup_steps=5,
                     seeds=[0])
    prior = _prior(torch.device("cpu"))
    with pytest.raises(ValueError, match="kernel"):
        restore(prior, torch.zeros(2, 16, dtype=DT), None, 0.3, kernel="hmc")
    with pytest.raises(ValueError, match="init"):
        restore(prior, torch.zeros(2, 16, dtype=DT), None, 0.3, init=torch.zeros(3, 16))
    with pytest.raises(ValueError, match="batch_shape"):
        restore(prior.at(torch.tensor([0.1, 0.2], dtype=DT)), torch.zeros(2, 16, dtype=DT),
                None, 0.3)
    with pytest.raises(ValueError, match="data_range"):
        psnr(torch.zeros(2, 3), torch.ones(2, 3), data_range=0.0)


@pytest.mark.parametrize("task", ["denoise", "inpaint", "deblur"])
def test_pixelcnnpp_prior_restores_batched(task: str) -> None:
    # An (untrained) PixelCNN++ at sigma_p = 0.05 as the prior of 3 images of 1x6x6: chains
    # run batched, every output is finite with the right shapes, PSNR is reported, and the
    # batch of 3 reproduces image 1 run alone with seed + 1 within float32 round-off of the
    # batched convolutions (1e-4 after 25 steps).
    torch.manual_seed(0)
    model = PixelCNNPP((1, 6, 6), filters=8, resnets=1, components=2, bins=256,
                       max_downsample=1).eval()
    prior = model(0.05)
    g = torch.Generator().manual_seed(0)
    clean = (torch.rand(3, 1, 6, 6, generator=g) * 2 - 1)
    kw = {"num_samples": 10, "warmup_steps": 15}
    if task == "denoise":
        y = clean + 0.3 * torch.randn(clean.shape, generator=g)
        run = lambda y, s: denoise(prior, y, 0.3, seed=s, **kw)  # noqa: E731
    elif task == "inpaint":
        mask = torch.ones(1, 6, 6, dtype=torch.bool)
        mask[:, 2:4, 2:4] = False
        y = clean
        run = lambda y, s: inpaint(prior, y, mask, 0.05, seed=s, **kw)  # noqa: E731
    else:
        A = blur_operator((6, 6), torch.full((3, 3), 1 / 9))
        y = (clean.reshape(3, 36) @ A.T).reshape(3, 1, 6, 6)
        run = lambda y, s: deblur(prior, y.reshape(-1, 36), A, 0.1, seed=s, **kw)  # noqa: E731
    out = run(y, 7)
    assert out.samples.shape == (3, 10, 1, 6, 6)
    assert out.mean.shape == (y.shape[0], *((1, 6, 6) if task != "deblur" else (36,)))
    assert torch.isfinite(out.mean).all() and torch.isfinite(out.samples).all()
    alone = run(y[1:2], 8)
    assert torch.allclose(alone.samples[0], out.samples[1], atol=1e-4, rtol=0)
    p = psnr(clean.reshape(3, -1), out.mean.reshape(3, -1))
    assert torch.isfinite(p).all()
