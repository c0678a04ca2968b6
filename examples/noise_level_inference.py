"""Inferring an unknown noise level from the model's exact marginal likelihood p(y | σ_y).

A MADE trained by NCMLE on digits is, at every σ, a model of noisy digits: p(y | σ_y) is the
marginal likelihood of σ_y with the clean image integrated out, in one network pass. NUTS over
the single latent σ_y (and SVI, for comparison) recovers the σ_y used to corrupt test images.

Run: ``python examples/noise_level_inference.py`` (a minute or two on a CPU).
"""

from __future__ import annotations

import pyro
import torch

from ncmle_prob.data.digits import load_digits
from ncmle_prob.infer import infer_noise_level
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior, ncmle_loss


def main() -> None:
    data = load_digits().flatten()
    torch.manual_seed(0)
    model = MADE(64, hidden_features=256, num_blocks=2, family="gaussian")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    prior = NoiseLevelPrior(p_zero=0.0, sigma_min=0.03, sigma_max=1.0)
    for _ in range(1500):
        idx = torch.randint(0, data.train.shape[0], (256,))
        loss = ncmle_loss(model, data.train[idx], prior)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    g = torch.Generator().manual_seed(0)
    print(f"{'true σ_y':>9s} {'method':>6s} {'mean':>7s} {'95% interval':>18s} {'covered':>8s}")
    for true in (0.1, 0.25, 0.5):
        y = data.test[:50] + true * torch.randn(50, 64, generator=g)
        for method in ("nuts", "svi"):
            pyro.set_rng_seed(0)
            post = infer_noise_level(model(), y, method=method, num_samples=200,
                                     warmup_steps=150)
            lo, hi = post.interval(0.95)
            print(f"{true:9.2f} {method:>6s} {post.mean:7.4f} [{lo:7.4f}, {hi:7.4f}] "
                  f"{lo < true < hi!s:>8s}")


if __name__ == "__main__":
    main()
