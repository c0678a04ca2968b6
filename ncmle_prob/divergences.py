"""Divergences between noise-conditional distributions, for tests, toys and diagnostics.

Two estimators of the Kullback–Leibler divergence between the noisy laws of two
noise-conditional distributions at the same noise level σ, both using *exact* log densities
(no density estimation), and a sample-based distance:

* :func:`kl_divergence_grid`: numerical integration on a regular grid (1-D or 2-D events); exact
  up to quadrature and truncation error, deterministic, the tool of choice for toys;
* :func:`kl_divergence_mc`: Monte Carlo over draws from the first distribution; any dimension,
  unbiased, with a standard error;
* :func:`energy_distance` and :func:`energy_test`: a two-sample statistic and its permutation
  test, for checking samplers (MCMC, Langevin) against exact draws.
"""

from __future__ import annotations

import math
from typing import Literal, overload

import torch
from torch import Tensor

from .distributions import NoiseConditionalDistribution
from .distributions.validation import check_positive_int, describe_shape

__all__ = ["energy_distance", "energy_test", "kl_divergence_grid", "kl_divergence_mc"]


def _check_pair(p: object, q: object) -> None:
    for name, d in (("p", p), ("q", q)):
        if not isinstance(d, NoiseConditionalDistribution):
            raise TypeError(
                f"{name} must be a NoiseConditionalDistribution, got {type(d).__name__}"
            )
    assert isinstance(p, NoiseConditionalDistribution)
    assert isinstance(q, NoiseConditionalDistribution)
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"p and q must have the same event_shape, got {describe_shape(p.event_shape)} and "
            f"{describe_shape(q.event_shape)}"
        )


def _check_continuous(name: str, d: NoiseConditionalDistribution, sigma: object) -> None:
    if bool(d.is_mass(sigma).any()):  # type: ignore[arg-type]
        raise ValueError(
            f"{name} is a discretized family at sigma = 0, where log_prob is a log mass on a grid, "
            "not a density; a KL between densities needs sigma > 0"
        )


def kl_divergence_grid(
    p: NoiseConditionalDistribution,
    q: NoiseConditionalDistribution,
    sigma: float | Tensor | None = None,
    lo: float = -4.0,
    hi: float = 4.0,
    n: int = 256,
    *,
    chunk_size: int = 65536,
    mass_tolerance: float | None = 1e-2,
) -> Tensor:
    """:math:`\\mathrm{KL}(p_\\sigma \\,\\|\\, q_\\sigma)` by numerical integration on a grid.

    The event (1-D, or 2-D such as ``(2,)``, ``(1, 2)``) is integrated over the cube
    :math:`[lo, hi]^D` with the midpoint rule on ``n`` cells per axis, cell volume
    :math:`h^D`, :math:`h = (hi - lo)/n`:

    .. math::

        \\mathrm{KL}(p_\\sigma \\,\\|\\, q_\\sigma) = \\int p(x\\mid\\sigma)
        \\log\\frac{p(x\\mid\\sigma)}{q(x\\mid\\sigma)}\\,dx \\approx h^D \\sum_j p(x_j\\mid\\sigma)
        \\big[\\log p(x_j\\mid\\sigma) - \\log q(x_j\\mid\\sigma)\\big].

    Both log densities are exact, so the only errors are quadrature (:math:`O(h^2)` for smooth
    densities: choose ``h`` well below the smallest length scale of either density) and the mass
    of ``p`` outside the cube. The latter is checked: the integrated mass
    :math:`h^D\\sum_j p(x_j\\mid\\sigma)` must be within ``mass_tolerance`` of 1, otherwise a
    ``ValueError`` asks for a wider or finer grid.

    Computation runs under ``no_grad`` in chunks of ``chunk_size`` points, in the distributions'
    dtype (float64 distributions give float64 quadrature).

    Args:
        p: the distribution whose law the expectation is taken under (e.g. the oracle
            :math:`q_\\sigma` of the data when measuring a model's fit).
        q: the second distribution, same event shape.
        sigma: noise level(s); ``None`` uses each distribution's bound σ. A tensor broadcasts
            against the batch shapes and gives one KL per batch element.
        lo: lower end of the integration cube (every axis).
        hi: upper end of the integration cube (every axis).
        n: cells per axis.
        chunk_size: points per log-density evaluation.
        mass_tolerance: allowed :math:`|\\int_{cube} p - 1|`; ``None`` skips the check.

    Returns:
        The KL in nats, shape ``broadcast(p.batch_shape, q.batch_shape, sigma.shape)``.

    Raises:
        TypeError: if ``p`` or ``q`` is not a noise-conditional distribution.
        ValueError: for different event shapes, events of more than 2 scalars, bad grid
            arguments, a discretized family at σ = 0 (a mass, not a density), or a grid that
            misses more than ``mass_tolerance`` of ``p``'s mass.

    Example:
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> eye = torch.eye(2, dtype=torch.float64)
        >>> p, q = NoisyGaussian(0 * eye[0], eye), NoisyGaussian(eye[0] + eye[1], eye)
        >>> # closed form at sigma = 1: |mu_p - mu_q|^2 / (2 (1 + sigma^2)) = 2 / 4
        >>> round(float(kl_divergence_grid(p, q, sigma=1.0, lo=-10, hi=10, n=200)), 4)
        0.5
    """
    _check_pair(p, q)
    d = math.prod(p.event_shape)
    if d not in (1, 2):
        raise ValueError(
            f"kl_divergence_grid integrates events of 1 or 2 scalars, got event_shape "
            f"{describe_shape(p.event_shape)} ({d} scalars); use kl_divergence_mc instead"
        )
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"need finite lo < hi, got lo={lo!r}, hi={hi!r}")
    n = check_positive_int("n", n, minimum=2)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    _check_continuous("p", p, sigma)
    _check_continuous("q", q, sigma)
    n = int(n)
    h = (hi - lo) / n
    axis = lo + h * (torch.arange(n, dtype=p.dtype, device=p.device) + 0.5)
    if d == 1:
        points = axis.reshape(n, 1)
    else:
        gx, gy = torch.meshgrid(axis, axis, indexing="ij")
        points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)
    batch = torch.broadcast_shapes(
        p.batch_shape, q.batch_shape, () if not isinstance(sigma, Tensor) else sigma.shape
    )
    lift = (1,) * len(batch)
    kl = torch.zeros(batch, dtype=p.dtype, device=p.device)
    mass = torch.zeros(batch, dtype=p.dtype, device=p.device)
    with torch.no_grad():
        for chunk in points.split(int(chunk_size)):
            x = chunk.reshape((chunk.shape[0], *lift, *p.event_shape))
            lp = p.log_prob(x, sigma)
            lq = q.log_prob(x.to(q.dtype), sigma).to(lp.dtype)
            w = torch.exp(lp)
            # p = 0 contributes nothing (0 log 0 = 0), even where q = 0 too.
            term = torch.where(w > 0, w * (lp - lq), torch.zeros_like(w))
            kl = kl + term.sum(0)
            mass = mass + w.sum(0)
    vol = h**d
    kl, mass = kl * vol, mass * vol
    if mass_tolerance is not None and bool(((mass - 1).abs() > mass_tolerance).any()):
        raise ValueError(
            f"the grid [{lo}, {hi}]^{d} with n={n} cells per axis integrates p to "
            f"{mass.flatten()[:6].tolist()}, more than mass_tolerance={mass_tolerance} from 1: "
            "widen [lo, hi] to cover p's mass or refine n to resolve its peaks"
        )
    return kl


@overload
def kl_divergence_mc(
    p: NoiseConditionalDistribution,
    q: NoiseConditionalDistribution,
    sigma: float | Tensor | None = ...,
    num_samples: int = ...,
    generator: torch.Generator | None = ...,
    *,
    return_stderr: Literal[False] = ...,
) -> Tensor: ...


@overload
def kl_divergence_mc(
    p: NoiseConditionalDistribution,
    q: NoiseConditionalDistribution,
    sigma: float | Tensor | None = ...,
    num_samples: int = ...,
    generator: torch.Generator | None = ...,
    *,
    return_stderr: Literal[True],
) -> tuple[Tensor, Tensor]: ...


def kl_divergence_mc(
    p: NoiseConditionalDistribution,
    q: NoiseConditionalDistribution,
    sigma: float | Tensor | None = None,
    num_samples: int = 10000,
    generator: torch.Generator | None = None,
    *,
    return_stderr: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Monte Carlo :math:`\\mathrm{KL}(p_\\sigma \\,\\|\\, q_\\sigma)` with exact log densities.

    Draws :math:`x_j \\sim p(\\cdot\\mid\\sigma)` (``p.at(sigma).sample``) and averages the
    exact log ratio,

    .. math::

        \\widehat{\\mathrm{KL}} = \\frac1M \\sum_{j=1}^M \\big[\\log p(x_j\\mid\\sigma) -
        \\log q(x_j\\mid\\sigma)\\big], \\qquad
        \\mathrm{se} = \\frac{\\operatorname{std}_j[\\log p - \\log q]}{\\sqrt M}.

    Unbiased in any dimension; the estimate of a single run can be slightly negative when the
    two distributions are close.

    Args:
        p: the distribution sampled from.
        q: the second distribution, same event shape.
        sigma: noise level(s); ``None`` uses each distribution's bound σ.
        num_samples: number M of draws.
        generator: optional generator for reproducible draws.
        return_stderr: also return the Monte Carlo standard error.

    Returns:
        The estimate in nats (shape ``broadcast(p.batch_shape, q.batch_shape, sigma.shape)``),
        and its standard error if ``return_stderr``.

    Example:
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> eye = torch.eye(2, dtype=torch.float64)
        >>> p, q = NoisyGaussian(0 * eye[0], eye), NoisyGaussian(eye[0] + eye[1], eye)
        >>> g = torch.Generator().manual_seed(0)
        >>> kl, se = kl_divergence_mc(p, q, 1.0, 20000, g, return_stderr=True)
        >>> bool(abs(kl - 0.5) < 4 * se)
        True
    """
    _check_pair(p, q)
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    _check_continuous("p", p, sigma)
    _check_continuous("q", q, sigma)
    source = p if sigma is None else p.at(sigma)
    with torch.no_grad():
        x = source.sample((int(num_samples),), generator=generator)
        lp = p.log_prob(x, sigma)
        lq = q.log_prob(x.to(q.dtype), sigma).to(lp.dtype)
        ratio = lp - lq
        kl = ratio.mean(0)
        if not return_stderr:
            return kl
        return kl, ratio.std(0) / math.sqrt(int(num_samples))


def _flatten_samples(name: str, t: object) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() < 1 or t.shape[0] < 2:
        raise ValueError(
            f"{name} must have shape (N, ...) with N >= 2 samples, got {describe_shape(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return t.reshape(t.shape[0], -1)


def _energy_from_distances(dist: Tensor, n: int) -> Tensor:
    """Energy statistic of the first ``n`` vs the remaining rows of a pooled distance matrix."""
    m = dist.shape[0] - n
    xy = dist[:n, n:].mean()
    xx = dist[:n, :n].sum() / (n * (n - 1))
    yy = dist[n:, n:].sum() / (m * (m - 1))
    return 2.0 * xy - xx - yy


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    """The (squared) energy distance between two samples (Székely & Rizzo).

    .. math::

        \\mathcal E(X, Y) = 2\\,\\mathbb E\\|X - Y\\| - \\mathbb E\\|X - X'\\| -
        \\mathbb E\\|Y - Y'\\|,

    estimated with U-statistics for the within-sample terms (so it is unbiased and can be
    slightly negative for equal laws). It is zero if and only if the two laws are equal
    (finite first moments), which makes it a consistent two-sample statistic in any dimension.

    Args:
        x: samples of shape ``(N, ...)``; trailing dims are flattened.
        y: samples of shape ``(M, ...)`` with the same trailing size.

    Returns:
        A scalar tensor.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g)
        >>> bool(energy_distance(x, y).abs() < 0.02), bool(energy_distance(x, y + 1) > 0.5)
        (True, True)
    """
    xf, yf = _flatten_samples("x", x), _flatten_samples("y", y)
    if xf.shape[1] != yf.shape[1]:
        raise ValueError(
            f"x and y must have the same event size, got x {describe_shape(x.shape)} and "
            f"y {describe_shape(y.shape)}"
        )
    pooled = torch.cat([xf, yf.to(xf.dtype)], dim=0)
    return _energy_from_distances(torch.cdist(pooled, pooled), xf.shape[0])


def energy_test(
    x: Tensor,
    y: Tensor,
    num_permutations: int = 500,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, float]:
    """Permutation test of equal laws with the energy distance as statistic.

    The pooled sample is split at random ``num_permutations`` times (all splits evaluated at
    once from the pooled distance matrix, one matrix product); the p-value is
    :math:`(1 + \\#\\{\\mathcal E_\\text{perm} \\ge \\mathcal E_\\text{obs}\\}) /
    (1 + \\text{num\\_permutations})`, valid (exact level) for independent draws. For
    autocorrelated draws (MCMC chains) thin them first or read the p-value as approximate.

    Args:
        x: samples of shape ``(N, ...)``.
        y: samples of shape ``(M, ...)``.
        num_permutations: number of random relabellings.
        generator: optional generator for reproducible permutations.

    Returns:
        ``(statistic, p_value)``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g)
        >>> _, p_same = energy_test(x, y, 200, g)
        >>> _, p_shift = energy_test(x, y + 0.5, 200, g)
        >>> p_same > 0.05, p_shift < 0.01
        (True, True)
    """
    num_permutations = check_positive_int("num_permutations", num_permutations)
    stat = energy_distance(x, y)
    xf, yf = _flatten_samples("x", x), _flatten_samples("y", y)
    pooled = torch.cat([xf, yf.to(xf.dtype)], dim=0)
    dist = torch.cdist(pooled, pooled)
    n, total = xf.shape[0], pooled.shape[0]
    m = total - n
    perm_device = generator.device if generator is not None else dist.device
    # All relabellings at once: with z the 0/1 indicator of the first group, the block sums of
    # the distance matrix are z^T D z, z^T D (1 - z) and (1 - z)^T D (1 - z).
    keys = torch.rand(int(num_permutations), total, generator=generator, device=perm_device)
    ranks = keys.argsort(dim=1).argsort(dim=1).to(dist.device)
    z = (ranks < n).to(dist.dtype)
    dz = z @ dist  # (P, total): row sums of D over the first group, for each relabelling
    row_total = dist.sum(0)
    xx = (dz * z).sum(1)
    xy = (dz * (1 - z)).sum(1)
    yy = ((row_total - dz) * (1 - z)).sum(1)
    perm_stats = 2.0 * xy / (n * m) - xx / (n * (n - 1)) - yy / (m * (m - 1))
    # A relative slack absorbs rounding: the identity relabelling must count as "as extreme".
    tol = 1e-6 * float(dist.max()) if dist.numel() else 0.0
    exceed = int((perm_stats >= stat - tol).sum())
    return stat, (1 + exceed) / (1 + int(num_permutations))
