"""The per-step loss module that :class:`~torch.nn.parallel.DistributedDataParallel` wraps.

DDP synchronises gradients only for computations run through the wrapper's ``forward``, so the
step's loss is computed by a small module whose forward calls the model; wrapping *it* (not the
model) makes ``loss.backward()`` all-reduce the gradients. The math is
:func:`ncmle_prob.objectives.noised_nll`, the one place the loss and bits/dim are computed.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..objectives import noised_nll

__all__ = ["NoisedNLL"]


class NoisedNLL(nn.Module):
    """:math:`-\\frac1b \\sum_n \\log p_\\theta(x_{0,n} + \\sigma_n\\varepsilon_n \\mid
    \\sigma_n)` for given draws, as a module (see :func:`ncmle_prob.objectives.noised_nll`).

    Args:
        model: a module whose call returns a noise-conditional distribution.
        bins: grid levels of the data, for the bits/dim it reports alongside (or ``None``).

    Example:
        >>> import torch
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
        return noised_nll(self.model, x0, sigma, noise, bins=self.bins)
