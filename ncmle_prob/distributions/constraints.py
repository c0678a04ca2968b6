"""Constraints specific to noise-conditional models."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import constraints

__all__ = ["Grid", "grid"]


class Grid(constraints.Constraint):
    """The grid of ``bins`` equally spaced levels on [-1, 1] (bin width ``2 / (bins - 1)``).

    This is the support of a discretized family at σ = 0. It is discrete, so samplers and
    inference algorithms that need a continuous space (HMC/NUTS) refuse it with a clear error.

    Example:
        >>> c = Grid(3)
        >>> c.check(torch.tensor([-1.0, 0.0, 0.5, 1.0])).tolist()
        [True, True, False, True]
    """

    is_discrete = True
    event_dim = 0

    def __init__(self, bins: int) -> None:
        if int(bins) != bins or bins < 2:
            raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
        self.bins = int(bins)
        super().__init__()

    @property
    def bin_width(self) -> float:
        """Distance between neighbouring levels."""
        return 2.0 / (self.bins - 1)

    def check(self, value: Tensor) -> Tensor:
        k = (value + 1.0) / self.bin_width
        # Tolerance: grid values come from (k * width - 1) in float32, whose rounding error is
        # ~1e-7 relative; 1e-3 of a bin is far above it and far below half a bin.
        on_grid = (k - torch.round(k)).abs() < 1e-3
        return on_grid & (value >= -1.0 - 1e-6) & (value <= 1.0 + 1e-6)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bins={self.bins})"


grid = Grid
