"""The per-step loss module that :class:`~torch.nn.parallel.DistributedDataParallel` wraps.

DDP synchronises gradients only for computations run through the wrapper's ``forward``, so the
NCMLE loss lives in a small module whose forward calls the model; wrapping *it* (not the model)
makes ``loss.backward()`` all-reduce the gradients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["NoisedNLL"]


class NoisedNLL(nn.Module):
    """:math:`-\\frac1b \\sum_n \\log p_\\theta(x_{0,n} + \\sigma_n\\varepsilon_n \\mid
    \\sigma_n)`, the estimate of :func:`ncmle_prob.objectives.ncmle_loss` for given draws.

    Args:
        model: a module whose call returns a noise-conditional distribution.
        bins: grid levels of the data, for the bits/dim it reports alongside (or ``None``).

    Example:
        >>> from ncmle_prob.models import MADE
        >>> loss_fn = NoisedNLL(MADE(features=2, hidden_features=8))
        >>> loss, bpd = loss_fn(torch.zeros(4, 2), torch.full((4,), 0.5), torch.randn(4, 2))
        >>> loss.requires_grad, bpd.requires_grad
        (True, False)
    """

    def __init__(self, model: nn.Module, bins: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.bins = bins

    def forward(self, x0: Tensor, sigma: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor]:
        """Returns ``(mean NLL in nats per example, mean bits/dim, detached)``."""
        k = x0.dim() - 1
        x = x0 if noise is None else x0 + sigma.reshape(sigma.shape + (1,) * k) * noise
        dist = self.model()
        lp = dist.log_prob(x, sigma)
        with torch.no_grad():
            d = math.prod(x0.shape[1:])
            bins = self.bins if self.bins is not None else dist.bins
            adj = lp.detach().float()
            if bins is not None:
                adj = torch.where(dist.is_mass(sigma), adj, adj + d * math.log(2.0 / (bins - 1)))
            bpd = -adj.mean() / (d * math.log(2.0))
        return -lp.mean(), bpd
