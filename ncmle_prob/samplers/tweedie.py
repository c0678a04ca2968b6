"""Tweedie denoising and grid snapping: the final step every sampler can take.

For :math:`x = x_0 + \\sigma\\varepsilon`, Tweedie's formula gives the posterior mean of the
clean data from the score of the noisy density,

.. math::

    E[x_0 \\mid x] = x + \\sigma^2\\, \\nabla_x \\log p(x \\mid \\sigma),

exact when :math:`p(\\cdot\\mid\\sigma)` is the noisy law :math:`q_\\sigma` (a model trained
by NCMLE aims at exactly that). It removes the last level's noise without another Langevin
step: Song & Ermon (2020) and Jolicoeur-Martineau et al. (2021) show that this "denoising
jump" matters for sample quality.

On a discretized family at σ = 0 (grid data) samples must lie on the grid of ``bins``
levels in [-1, 1]; :func:`snap_to_grid` rounds to the nearest level.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from ..distributions.validation import bin_width

__all__ = ["snap_to_grid", "tweedie_denoise"]


def tweedie_denoise(dist: NoiseConditionalDistribution, x: Tensor, sigma: float) -> Tensor:
    """:math:`x + \\sigma^2 \\nabla_x \\log p(x\\mid\\sigma)` (``dist.denoise``), under no_grad.

    Example:
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> d = NoisyGaussian(torch.zeros(1), torch.eye(1))
        >>> tweedie_denoise(d, torch.tensor([[2.0]]), 1.0)  # E[x0 | x] = x / 2
        tensor([[1.]])
    """
    s = torch.tensor(float(sigma), dtype=dist.dtype, device=dist.device)
    with torch.no_grad():
        return dist.denoise(x, s).detach()


def snap_to_grid(x: Tensor, bins: int) -> Tensor:
    """Rounds ``x`` to the nearest of ``bins`` equally spaced levels on [-1, 1].

    .. math::

        k = \\operatorname{clip}\\big(\\operatorname{round}((x + 1)/\\Delta), 0, \\text{bins}-1
        \\big), \\qquad x \\mapsto k\\Delta - 1, \\qquad \\Delta = \\frac{2}{\\text{bins} - 1}.

    Example:
        >>> snap_to_grid(torch.tensor([-1.3, -0.2, 0.26, 0.9]), bins=5)
        tensor([-1.0000,  0.0000,  0.5000,  1.0000])
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    width = bin_width(bins)
    k = torch.round((x + 1.0) / width).clamp(0, bins - 1)
    return k * width - 1.0
