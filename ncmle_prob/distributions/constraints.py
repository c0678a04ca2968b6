"""Constraints specific to noise-conditional models."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import constraints, transforms
from torch.distributions.constraint_registry import biject_to, transform_to

from .validation import bin_width, check_positive_int

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
        self.bins = check_positive_int("bins", bins, minimum=2)
        super().__init__()

    @property
    def bin_width(self) -> float:
        """Distance between neighbouring levels."""
        return bin_width(self.bins)

    def check(self, value: Tensor) -> Tensor:
        k = (value + 1.0) / self.bin_width
        # Tolerance: grid values come from (k * width - 1) in float32, whose rounding error is
        # ~1e-7 relative; 1e-3 of a bin is far above it and far below half a bin.
        on_grid = (k - torch.round(k)).abs() < 1e-3
        return on_grid & (value >= -1.0 - 1e-6) & (value <= 1.0 + 1e-6)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bins={self.bins})"


grid = Grid


def _no_transform_to_grid(constraint: Grid) -> transforms.Transform:
    """``biject_to``/``transform_to`` of a :class:`Grid`: a clear error instead of torch's
    generic "Cannot transform Grid constraints".

    HMC/NUTS and Pyro's autoguides map each latent site to the reals through ``biject_to`` of
    its support; a grid has no such map. Registering this factory (for our own constraint
    class only) makes them fail with a message that says why and what to do.
    """
    raise ValueError(
        f"the support of this sample site is the discrete {constraint!r} (a discretized family "
        "at sigma = 0, where log_prob is a log mass on the grid of bins levels in [-1, 1]); "
        "continuous inference (HMC/NUTS, autoguides) needs a continuous support: bind "
        "sigma > 0, e.g. dist.at(0.01) or model(sigma=0.01), to use the noisy density"
    )


biject_to.register(Grid, _no_transform_to_grid)
transform_to.register(Grid, _no_transform_to_grid)
