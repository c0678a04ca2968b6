"""2-D toy data sets whose noisy densities :math:`q_\\sigma = q * \\mathcal N(0, \\sigma^2 I)`
are known exactly.

* ``"gaussian_mixture"``: 8 Gaussians on a circle — a :class:`NoisyGaussianMixture`, exact at
  every σ.
* ``"rings"``: two concentric rings *defined* as mixtures of Gaussians spaced evenly along the
  circles (24 and 48 components). Because the ring is this mixture (not a smooth annulus), its
  noisy density is again exact at every σ: a :class:`NoisyGaussianMixture`.
* ``"checkerboard"``: uniform on 8 alternating squares of a 4×4 board on [-1, 1]²
  (:class:`Checkerboard`). Its noisy density is a closed form in the normal CDF Φ, exact at
  every σ ≥ 0 (the clean density is discontinuous and vanishes on the white squares).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution, NoisyGaussianMixture
from ..distributions.validation import check_positive_int

__all__ = ["TOYS", "Checkerboard", "ToyData", "checkerboard", "gaussian_mixture", "load_toy",
           "rings"]


def _ring_mixture(radii: list[float], counts: list[int], std: float) -> NoisyGaussianMixture:
    locs = []
    for r, k in zip(radii, counts):
        angle = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
        locs.append(torch.stack([r * torch.cos(angle), r * torch.sin(angle)], -1))
    loc = torch.cat(locs).float()
    k = loc.shape[0]
    cov = (std**2) * torch.eye(2).expand(k, 2, 2).clone()
    return NoisyGaussianMixture(torch.full((k,), 1.0 / k), loc, cov)


def gaussian_mixture(modes: int = 8, radius: float = 0.7, std: float = 0.07) -> (
    NoisyGaussianMixture
):
    """``modes`` equal Gaussians of standard deviation ``std`` on a circle of ``radius``.

    Example:
        >>> d = gaussian_mixture()
        >>> d.sample((3,)).shape
        torch.Size([3, 2])
    """
    return _ring_mixture([radius], [modes], std)


def rings(radii: tuple[float, ...] = (0.4, 0.8), std: float = 0.04) -> NoisyGaussianMixture:
    """Concentric rings, each a mixture of Gaussians spaced ~``2.6 std`` apart along it.

    The number of components per ring is proportional to its radius (60 per unit of radius),
    so the ring is visually smooth; the density is exactly this mixture.
    """
    counts = [max(8, round(60 * r)) for r in radii]
    return _ring_mixture(list(radii), counts, std)


class Checkerboard(NoiseConditionalDistribution):
    """Uniform on the black squares of an ``n × n`` board on [-1, 1]², observed through noise.

    With black squares :math:`[a_c, b_c]` (products of intervals) of total area :math:`A`,

    .. math::

        q_\\sigma(x) = \\frac1A \\sum_{c} \\prod_{d=1}^{2}
        \\Big[\\Phi\\Big(\\frac{x_d - a_{c,d}}{\\sigma}\\Big) -
        \\Phi\\Big(\\frac{x_d - b_{c,d}}{\\sigma}\\Big)\\Big],

    computed in log space with :func:`torch.special.log_ndtr`; at σ = 0 it is
    :math:`1/A` on black squares and 0 (log −∞) elsewhere. The score is by autograd.

    Args:
        n: squares per side (even).
        sigma: bound noise level(s).

    Example:
        >>> d = Checkerboard(sigma=0.0)
        >>> d.log_prob(torch.tensor([[-0.9, -0.9], [-0.4, -0.9]])).exp()  # black, white
        tensor([0.5000, 0.0000])
    """

    def __init__(self, n: int = 4, sigma: float | Tensor = 0.0,
                 validate_args: bool | None = None) -> None:
        if int(n) != n or n < 2 or n % 2:
            raise ValueError(f"n must be an even integer >= 2, got {n!r}")
        width = 2.0 / n
        cells = [(i, j) for i in range(n) for j in range(n) if (i + j) % 2 == 0]
        lo = torch.tensor([[-1 + i * width, -1 + j * width] for i, j in cells])
        self.lo, self.hi = lo, lo + width
        self.area = len(cells) * width * width
        self.n = int(n)
        super().__init__(sigma, event_shape=(2,), validate_args=validate_args)

    def _log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        lo, hi = self.lo.to(x), self.hi.to(x)
        xe = x.unsqueeze(-2)  # (..., 1, 2) against cells (C, 2)
        s = sigma[..., None, None]
        safe = torch.where(s > 0, s, torch.ones_like(s))
        u, low = (xe - lo) / safe, (xe - hi) / safe  # Φ(u) - Φ(low), u > low
        flip = low > 0  # both in the upper tail: use Φ(-low) - Φ(-u) for accuracy
        a = torch.where(flip, -low, u)
        c = torch.where(flip, -u, low)
        la, lc = torch.special.log_ndtr(a), torch.special.log_ndtr(c)
        log_diff = la + torch.log1p(-torch.exp(lc - la).clamp(max=1 - 1e-12))
        inside = ((xe >= lo) & (xe < hi)).all(-1)
        clean = torch.where(inside, 0.0, -math.inf).to(x)
        noisy = log_diff.sum(-1)
        per_cell = torch.where(sigma[..., None] > 0, noisy, clean)
        return torch.logsumexp(per_cell, -1) - math.log(self.area)

    def _sample(self, sample_shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        shape = sample_shape + self.batch_shape
        m = math.prod(shape)
        cell = torch.randint(self.lo.shape[0], (m,), generator=generator)
        u = torch.rand(m, 2, generator=generator)
        x0 = (self.lo[cell] + u * (self.hi - self.lo)[cell]).reshape(*shape, 2)
        eps = torch.randn(*shape, 2, generator=generator)
        return (x0 + self.sigma.cpu()[..., None] * eps).to(self.device)


def checkerboard(n: int = 4) -> Checkerboard:
    """The 4×4 (or ``n × n``) checkerboard at σ = 0."""
    return Checkerboard(n)


TOYS = {"gaussian_mixture": gaussian_mixture, "rings": rings, "checkerboard": checkerboard}


@dataclass(frozen=True)
class ToyData:
    """Samples of a 2-D toy with its exact density.

    Attributes:
        name: toy name.
        train: training samples ``(n_train, 2)``.
        test: test samples ``(n_test, 2)``.
        density: the exact clean density (a :class:`NoiseConditionalDistribution` at σ = 0;
            ``density.at(s)`` is the exact noisy density).
        bins: ``None`` (continuous data).
    """

    name: str
    train: Tensor
    test: Tensor
    density: NoiseConditionalDistribution
    bins: int | None = None


def load_toy(name: str, n_train: int = 10000, n_test: int = 2000, seed: int = 0) -> ToyData:
    """Draws train and test samples of a toy density with a fixed seed.

    Example:
        >>> toy = load_toy("checkerboard", n_train=100, n_test=10)
        >>> toy.train.shape, bool(toy.density.log_prob(toy.test).isfinite().all())
        (torch.Size([100, 2]), True)
    """
    if name not in TOYS:
        raise ValueError(f"unknown toy {name!r}; choose from {sorted(TOYS)}")
    n_train, n_test = check_positive_int("n_train", n_train), check_positive_int("n_test", n_test)
    density = TOYS[name]()
    g = torch.Generator().manual_seed(seed)
    x = density.sample((n_train + n_test,), generator=g)
    return ToyData(name=name, train=x[:n_train], test=x[n_train:], density=density)
