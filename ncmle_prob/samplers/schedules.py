"""Noise-level schedules: geometric ladders and the rules of Song & Ermon (2020) that pick
them, and the Langevin step size, from the data.

"Improved techniques for training score-based generative models" (Song & Ermon, 2020) gives
closed-form rules for annealed Langevin dynamics:

* **Technique 1** (largest level): :math:`\\sigma_1 \\approx \\max_{i \\ne j} \\|x_i - x_j\\|_2`
  over the training data, so that the first level can move a sample between any two modes;
* **Technique 2** (ratio): a geometric ladder :math:`\\sigma_{i+1} = \\sigma_i / \\gamma` with
  :math:`\\gamma` chosen so that consecutive noise shells overlap,
  :math:`\\Phi(\\sqrt{2D}(\\gamma-1) + 3\\gamma) - \\Phi(\\sqrt{2D}(\\gamma-1) - 3\\gamma)
  \\approx 0.5`;
* **Technique 4** (step size): with :math:`T` steps per level and
  :math:`\\alpha_i = \\varepsilon\\sigma_i^2/\\sigma_L^2`, choose :math:`\\varepsilon` so that

  .. math::

      \\Big(1 - \\frac{\\varepsilon}{\\sigma_L^2}\\Big)^{2T}
      \\Big(\\gamma^2 - \\frac{2\\varepsilon}{\\sigma_L^2 - \\sigma_L^2(1 - \\varepsilon/
      \\sigma_L^2)^2}\\Big) + \\frac{2\\varepsilon}{\\sigma_L^2 - \\sigma_L^2(1 - \\varepsilon/
      \\sigma_L^2)^2} \\approx 1,

  the variance ratio (end of a level over target) of Langevin dynamics started from the
  previous level, in the analysis where the data are one point.

Example:
    >>> geometric_ladder(1.0, 0.01, 3)
    tensor([1.0000, 0.1000, 0.0100], dtype=torch.float64)
    >>> round(ladder_ratio(3072), 3)  # CIFAR-10's dimension: 232 levels from 50 to 0.01
    1.04
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "geometric_ladder",
    "ladder_from_data",
    "ladder_ratio",
    "langevin_step_size",
    "num_levels_for",
    "sigma_max_from_data",
]


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def _count(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def geometric_ladder(
    sigma_max: float,
    sigma_min: float,
    num_levels: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """A decreasing geometric ladder :math:`\\sigma_i = \\sigma_\\max\\,
    (\\sigma_\\min/\\sigma_\\max)^{(i-1)/(L-1)}`, :math:`i = 1..L`.

    With ``num_levels == 1`` the ladder is ``[sigma_min]`` (the target level alone).

    Raises:
        ValueError: non-positive levels, ``sigma_max < sigma_min``, or ``num_levels < 1``.
    """
    hi, lo = _positive("sigma_max", sigma_max), _positive("sigma_min", sigma_min)
    n = _count("num_levels", num_levels)
    if n == 1:
        return torch.tensor([lo], dtype=dtype, device=device)
    if hi < lo:
        raise ValueError(f"need sigma_max >= sigma_min, got sigma_max={hi}, sigma_min={lo}")
    t = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    ladder = torch.exp(math.log(hi) + t * (math.log(lo) - math.log(hi)))
    return ladder.to(dtype=dtype, device=device)


def sigma_max_from_data(
    x: Tensor, *, max_points: int = 2048, generator: torch.Generator | None = None
) -> float:
    """Technique 1: the largest pairwise distance :math:`\\max_{i\\ne j}\\|x_i - x_j\\|_2`.

    Above ``max_points`` examples, a random subset of that size is used (the maximum over a
    subset is a lower bound that is close for any reasonably sized subset).

    Args:
        x: data of shape ``(N, ...)``, flattened per example.
        max_points: subset size bounding the :math:`O(N^2)` cost.
        generator: optional generator for the subset.

    Example:
        >>> sigma_max_from_data(torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]]))
        5.0
    """
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] < 2:
        raise ValueError("x must be a tensor of shape (N, ...) with N >= 2 examples")
    flat = x.detach().reshape(x.shape[0], -1).to(torch.float64)
    if not bool(torch.isfinite(flat).all()):
        raise ValueError("x contains NaN or infinite entries")
    _count("max_points", max_points, 2)
    if flat.shape[0] > max_points:
        idx = torch.randperm(flat.shape[0], generator=generator)[:max_points]
        flat = flat[idx.to(flat.device)]
    best = 0.0
    for chunk in flat.split(512):
        best = max(best, float(torch.cdist(chunk, flat).max()))
    return best


def _overlap(gamma: float, dim: int) -> float:
    a = math.sqrt(2.0 * dim) * (gamma - 1.0)
    phi = lambda z: 0.5 * math.erfc(-z / math.sqrt(2.0))  # noqa: E731
    return phi(a + 3.0 * gamma) - phi(a - 3.0 * gamma)


def ladder_ratio(dim: int, overlap: float = 0.5) -> float:
    """Technique 2: the ratio :math:`\\gamma = \\sigma_i/\\sigma_{i+1}` of a geometric ladder.

    Solves :math:`\\Phi(\\sqrt{2D}(\\gamma-1) + 3\\gamma) - \\Phi(\\sqrt{2D}(\\gamma-1) -
    3\\gamma) = \\text{overlap}` for :math:`\\gamma > 1` by bisection. The left side is the
    probability mass shared by the shells of radius :math:`\\approx\\sigma_i\\sqrt D` and
    :math:`\\sigma_{i+1}\\sqrt D` of consecutive levels. In :math:`D \\le 4` dimensions the
    shells always overlap this much and any ratio satisfies the rule: ``math.inf`` is
    returned (then the number of levels is a matter of compute, see :func:`num_levels_for`).

    Args:
        dim: data dimension D.
        overlap: target overlap in (0, 1); Song & Ermon use 0.5.
    """
    d = _count("dim", dim)
    if not 0.0 < overlap < 1.0:
        raise ValueError(f"overlap must be in (0, 1), got {overlap!r}")
    lo, hi = 1.0, 2.0
    while _overlap(hi, d) > overlap:
        hi *= 2.0
        if hi > 1e6:
            return math.inf
    if _overlap(lo, d) <= overlap:
        return 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _overlap(mid, d) > overlap:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def num_levels_for(
    sigma_max: float, sigma_min: float, ratio: float, *, min_levels: int = 2,
    max_levels: int = 2000,
) -> int:
    """Levels of a geometric ladder from ``sigma_max`` to ``sigma_min`` with ratio at most
    ``ratio``: :math:`L = \\lceil \\log(\\sigma_\\max/\\sigma_\\min) / \\log\\gamma\\rceil + 1`,
    clipped to ``[min_levels, max_levels]``.

    Example:
        >>> num_levels_for(1.0, 0.01, 10.0)
        3
    """
    hi, lo = _positive("sigma_max", sigma_max), _positive("sigma_min", sigma_min)
    if hi < lo:
        raise ValueError(f"need sigma_max >= sigma_min, got {hi} and {lo}")
    if not ratio > 1.0:
        raise ValueError(f"ratio must be > 1, got {ratio!r}")
    n = 1 if math.isinf(ratio) else math.ceil(math.log(hi / lo) / math.log(ratio) - 1e-9) + 1
    return max(min_levels, min(max_levels, n))


def ladder_from_data(
    x: Tensor,
    sigma_min: float = 0.01,
    *,
    overlap: float = 0.5,
    min_levels: int = 10,
    max_levels: int = 2000,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A geometric ladder chosen from data by techniques 1 and 2.

    :math:`\\sigma_1` = :func:`sigma_max_from_data`, the ratio from :func:`ladder_ratio` with
    :math:`D` = the size of one example, and at least ``min_levels`` levels (the rule allows
    very few levels in low dimension, but more levels make annealing smoother).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> ladder = ladder_from_data(torch.randn(500, 2, generator=g), 0.01)
        >>> len(ladder), round(float(ladder[-1]), 3)
        (10, 0.01)
    """
    hi = sigma_max_from_data(x, generator=generator)
    dim = math.prod(x.shape[1:])
    gamma = ladder_ratio(dim, overlap)
    n = num_levels_for(max(hi, sigma_min), sigma_min, gamma, min_levels=min_levels,
                       max_levels=max_levels)
    return geometric_ladder(max(hi, sigma_min), sigma_min, n)


def _variance_ratio(r: float, gamma: float, steps: int) -> float:
    """Technique 4's left side with :math:`r = \\varepsilon/\\sigma_L^2`."""
    stationary = 2.0 / (2.0 - r)  # = 2 eps / (s^2 - s^2 (1 - eps/s^2)^2)
    return (1.0 - r) ** (2 * steps) * (gamma**2 - stationary) + stationary


def langevin_step_size(sigma_min: float, ratio: float, steps_per_level: int) -> float:
    """Technique 4: the :math:`\\varepsilon` of :math:`\\alpha_i = \\varepsilon\\sigma_i^2/
    \\sigma_L^2` that makes the variance ratio of the module docstring closest to 1.

    Scanned over :math:`r = \\varepsilon/\\sigma_L^2 \\in [10^{-6}, 1)` on a fine logarithmic
    grid; the answer is :math:`r\\,\\sigma_L^2`. ``ratio`` is :math:`\\gamma =
    \\sigma_{i}/\\sigma_{i+1}` (use 2 for a single level started from twice the target's scale).

    Example:
        >>> eps = langevin_step_size(0.01, ratio=1.67, steps_per_level=100)
        >>> 0.02 < eps / 0.01**2 < 0.05
        True
    """
    lo = _positive("sigma_min", sigma_min)
    if not ratio >= 1.0 or math.isinf(ratio):
        raise ValueError(f"ratio must be finite and >= 1, got {ratio!r}")
    t = _count("steps_per_level", steps_per_level)
    grid = torch.logspace(-6, math.log10(0.999), 4000, dtype=torch.float64).tolist()
    best = min(grid, key=lambda r: abs(_variance_ratio(r, ratio, t) - 1.0))
    return best * lo * lo
