"""Exponential moving average of a model's weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["EMA"]


class EMA:
    """Keeps :math:`\\bar\\theta \\leftarrow d\\,\\bar\\theta + (1-d)\\,\\theta` after each step.

    Floating-point parameters and buffers are averaged; integer buffers (masks, degrees,
    counters) are copied. The average is what you usually evaluate and sample from.

    .. math::

        \\bar\\theta_t = d\\, \\bar\\theta_{t-1} + (1 - d)\\, \\theta_t, \\qquad
        \\bar\\theta_0 = \\theta_0.

    Args:
        model: the module whose weights are averaged.
        decay: :math:`d \\in [0, 1)`.

    Example:
        >>> net = torch.nn.Linear(1, 1, bias=False)
        >>> ema = EMA(net, decay=0.5)
        >>> with torch.no_grad():
        ...     _ = net.weight.fill_(2.0)
        >>> w0 = float(ema.shadow["weight"])
        >>> ema.update(net)
        >>> abs(float(ema.shadow["weight"]) - (0.5 * w0 + 0.5 * 2.0)) < 1e-6
        True
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be a float in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.shadow: dict[str, Tensor] = {
            k: v.detach().clone() for k, v in model.state_dict().items()
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Moves the average one step towards ``model``'s current weights."""
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.is_floating_point():
                s.lerp_(v.detach(), 1.0 - self.decay)
            else:
                s.copy_(v)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Loads the averaged weights into ``model``."""
        model.load_state_dict(self.shadow)

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged weights (a plain state dict)."""
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restores averaged weights saved by :meth:`state_dict`."""
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(
                f"EMA state does not match the model: differing keys {sorted(missing)}"
            )
        for k, v in state.items():
            self.shadow[k].copy_(v)
