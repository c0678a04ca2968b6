"""Numerical integration and goodness-of-fit helpers of the generic checks.

* :func:`quadrature`: ``exp(log_prob)`` on a tensor-product grid ``x = c + L sinh(u)`` (uniform in
  ``u``), which puts nodes densely in the bulk and exponentially sparse in the tails, so a few
  hundred nodes per dimension both resolve O(0.1)-wide modes and reach far past the largest
  sample. The trapezoid rule in ``u`` then integrates to ~1e-6 in float64 for the registry.
* :func:`binned_gof`: Pearson's χ² of samples against cell masses *integrated from log_prob*
  (Pyro's :func:`multinomial_goodness_of_fit`), a far more powerful check than the
  nearest-neighbour test in 2-D.
* :func:`grid_gof`: the χ² test of σ = 0 samples of a discretized family over its grid.

Pyro 1.9's ``chi2sf`` (used by every helper of ``pyro.distributions.testing.gof``) truncates its
series at 100 terms, so for χ²/2 between ~100 and ~1000 it returns p ≈ 1 (``chi2sf(300, 24)``
is 0.9995, ``chi2sf(1000, 24)`` is 1.0): a grossly wrong sampler can *pass*. Every call here
runs under :func:`reliable_chi2sf`, which swaps in SciPy's survival function for its duration
(SciPy is imported there, lazily: it is needed only by the goodness-of-fit checks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

import pyro.distributions.testing.gof as pyro_gof
import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution

__all__ = [
    "Quadrature",
    "auto_gof",
    "binned_gof",
    "grid_gof",
    "grid_points",
    "quadrature",
    "reliable_chi2sf",
]

#: Cells whose expected count is below this are pooled (Pearson's χ² needs expected counts of
#: a few units or more to follow its asymptotic law).
MIN_EXPECTED = 10.0


@contextlib.contextmanager
def reliable_chi2sf() -> Iterator[None]:
    """Temporarily replaces Pyro's truncated-series ``chi2sf`` by SciPy's (see module doc).

    Raises:
        ImportError: SciPy is not installed (``pip install scipy``).
    """
    try:
        from scipy.stats import chi2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the goodness-of-fit checks of ncmle_prob.testing need SciPy: pip install scipy"
        ) from err
    with mock.patch.object(pyro_gof, "chi2sf", lambda x, dof: float(chi2.sf(x, dof))):
        yield


def auto_gof(samples: Tensor, probs: Tensor) -> float:
    """Pyro's :func:`auto_goodness_of_fit` (nearest-neighbour density test) with a correct
    χ² tail."""
    with reliable_chi2sf():
        return float(pyro_gof.auto_goodness_of_fit(samples, probs))


@dataclass
class Quadrature:
    """``exp(log_prob) * dx/du`` on a grid; ``values`` has shape ``(n,) * dim + batch_shape``."""

    nodes: list[Tensor]
    du: list[float]
    values: Tensor

    @property
    def dim(self) -> int:
        return len(self.nodes)

    def integral(self, values: Tensor | None = None, du: list[float] | None = None) -> Tensor:
        """Trapezoid rule over every grid dimension: one number per batch element."""
        f = self.values if values is None else values
        for step in self.du if du is None else du:
            f = torch.trapezoid(f, dx=step, dim=0)
        return f

    def cell_masses(self, cuts: list[list[int]]) -> Tensor:
        """Masses of the cells between node indices ``cuts[i]`` (per dimension, first 0, last
        n - 1); shape ``(cells_1 * ... * cells_dim,) + batch_shape``. The trapezoid rule is
        additive over segments, so the masses sum to :meth:`integral` exactly."""
        out = []
        if self.dim == 1:
            for a, b in zip(cuts[0][:-1], cuts[0][1:]):
                out.append(self.integral(self.values[a : b + 1]))
        else:
            for a, b in zip(cuts[0][:-1], cuts[0][1:]):
                for c, e in zip(cuts[1][:-1], cuts[1][1:]):
                    out.append(self.integral(self.values[a : b + 1, c : e + 1]))
        return torch.stack(out)


def quadrature(
    d: NoiseConditionalDistribution, sigma: Tensor, samples: Tensor, n: int
) -> Quadrature:
    """Evaluates ``exp(log_prob(x, sigma))`` on a sinh grid fitted to ``samples`` (shape
    ``(N, dim)``, dim 1 or 2). The box reaches 1.5 units of ``u`` (a factor e^1.5 ≈ 4.5 in
    distance) past the farthest sample from the median."""
    dim = samples.shape[1]
    c = samples.median(0).values
    probs = torch.tensor([0.25, 0.75], dtype=samples.dtype, device=samples.device)
    q = torch.quantile(samples, probs, dim=0)
    scale = ((q[1] - q[0]) / 2).clamp_min(0.05)
    reach = torch.maximum(samples.max(0).values - c, c - samples.min(0).values)
    umax = torch.asinh(reach / scale) + 1.5
    nodes, jac, du = [], [], []
    for i in range(dim):
        u = torch.linspace(-float(umax[i]), float(umax[i]), n, dtype=d.dtype, device=d.device)
        nodes.append(c[i] + scale[i] * torch.sinh(u))
        jac.append(scale[i] * torch.cosh(u))
        du.append(2 * float(umax[i]) / (n - 1))
    pts = torch.cartesian_prod(*nodes).reshape(-1, dim)
    weight = torch.cartesian_prod(*jac).reshape(-1, dim).prod(-1)
    batch = d.batch_shape
    x = pts.reshape((pts.shape[0],) + (1,) * len(batch) + d.event_shape)
    with torch.no_grad():
        f = d.log_prob(x, sigma).exp() * weight.reshape((-1,) + (1,) * len(batch))
    return Quadrature(nodes, du, f.reshape((n,) * dim + f.shape[1:]))


def _pearson(probs: Tensor, counts: Tensor) -> float:
    """Pyro's χ² test after pooling the cells with expected count below :data:`MIN_EXPECTED`."""
    probs = probs.double() / probs.sum()
    counts = counts.double()
    small = probs * counts.sum() < MIN_EXPECTED
    if bool(small.any()):
        probs = torch.cat([probs[~small], probs[small].sum().reshape(1)])
        counts = torch.cat([counts[~small], counts[small].sum().reshape(1)])
    with reliable_chi2sf():
        return float(pyro_gof.multinomial_goodness_of_fit(probs.cpu(), counts.cpu()))


def binned_gof(quad: Quadrature, samples: Tensor, cells_per_dim: int) -> list[float]:
    """χ² p-values, one per batch element, of ``samples`` (shape ``(N, batch..., dim)``) in
    cells cut at the pooled sample quantiles, against masses integrated from ``log_prob``."""
    n_samples, dim = samples.shape[0], samples.shape[-1]
    flat = samples.reshape(n_samples, -1, dim)
    levels = torch.linspace(0, 1, cells_per_dim + 1, dtype=samples.dtype,
                            device=samples.device)[1:-1]
    cuts, edges = [], []
    for i in range(dim):
        qs = torch.quantile(flat[..., i].reshape(-1), levels)
        idx = torch.searchsorted(quad.nodes[i], qs).clamp(1, len(quad.nodes[i]) - 2)
        inner = sorted(set(idx.tolist()))
        cuts.append([0, *inner, len(quad.nodes[i]) - 1])
        edges.append(quad.nodes[i][inner])
    masses = quad.cell_masses(cuts).reshape(-1, flat.shape[1])
    pvalues = []
    for b in range(flat.shape[1]):
        cell = torch.zeros(n_samples, dtype=torch.long, device=samples.device)
        for i in range(dim):
            # bucketize: index j with edges[j-1] < x <= edges[j]; outer cells reach ±inf,
            # whose mass beyond the box is ~1e-6, far below what n samples can resolve.
            cell = cell * (len(edges[i]) + 1) + torch.bucketize(flat[:, b, i].contiguous(),
                                                                edges[i])
        counts = torch.bincount(cell, minlength=masses.shape[0])
        pvalues.append(_pearson(masses[:, b], counts))
    return pvalues


def grid_points(bins: int, dim: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """All ``bins ** dim`` points of the grid of ``bins`` levels on [-1, 1]^dim."""
    levels = torch.linspace(-1.0, 1.0, bins, dtype=dtype, device=device)
    return torch.cartesian_prod(*([levels] * dim)).reshape(-1, dim)


def grid_gof(points: Tensor, log_mass: Tensor, samples: Tensor) -> float:
    """χ² p-value of grid samples (shape ``(N, dim)``) against the grid's log masses."""
    # Samples are snapped to k * width - 1 and linspace may differ by an ulp: match to 1e-6.
    match = ((samples[:, None, :] - points[None, :, :]).abs() < 1e-6).all(-1)
    if not bool((match.sum(1) == 1).all()):
        raise AssertionError("a σ = 0 sample of a discretized family is off-grid")
    return _pearson(log_mass.exp(), match.sum(0))
