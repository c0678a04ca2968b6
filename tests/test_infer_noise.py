"""Noise-level inference: the model's exact p(y | sigma_y) recovers a known sigma_y."""

from __future__ import annotations

import pyro
import pytest
import torch

from ncmle_prob.distributions import NoisyGaussianMixture
from ncmle_prob.infer.noise_inference import infer_noise_level, noise_level_model


def _mixture(device: torch.device) -> NoisyGaussianMixture:
    w = torch.tensor([0.4, 0.6], device=device)
    locs = torch.tensor([[-1.0, 0.0, 0.5], [1.0, 0.5, -0.5]], device=device)
    covs = torch.stack([0.05 * torch.eye(3, device=device)] * 2)
    return NoisyGaussianMixture(w, locs, covs)


@pytest.mark.parametrize("method", ["nuts", "svi"])
def test_recovers_known_noise_level(method: str, device: torch.device) -> None:
    d = _mixture(device)
    true = 0.3
    y = d.at(true).sample((300,), generator=torch.Generator(device=device).manual_seed(0))
    pyro.set_rng_seed(0)
    post = infer_noise_level(d, y, method=method, num_samples=200, warmup_steps=150,
                             svi_steps=400)
    lo, hi = post.interval(0.95)
    # 300 points of a 3-D density: the posterior sd of sigma_y is ~0.01, so the 95 % interval
    # is ~[0.28, 0.32]; a wrong likelihood (e.g. ignoring sigma) would put it far away
    assert lo < true < hi, (lo, hi)
    assert hi - lo < 0.1
    assert abs(post.mean - true) < 0.03


def test_noise_model_bad_input(device: torch.device) -> None:
    with pytest.raises(TypeError, match="dist"):
        noise_level_model(torch.distributions.Normal(0.0, 1.0))  # type: ignore[arg-type]
    d = _mixture(device)
    with pytest.raises(ValueError, match="method"):
        infer_noise_level(d, torch.zeros(5, 3, device=device), method="hmc")
    with pytest.raises(ValueError, match="event_shape"):
        infer_noise_level(d, torch.zeros(5, 2, device=device))
