"""Fréchet classifier distance, kernel inception-style distance, and their real-vs-real floor."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["fcd", "kid", "real_vs_real"]


def _check_features(name: str, f: Tensor) -> Tensor:
    if not isinstance(f, Tensor) or f.dim() != 2 or f.shape[0] < 2:
        shape = tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__
        raise ValueError(f"{name} must be a (N >= 2, D) tensor of features, got {shape}")
    if not torch.isfinite(f).all():
        raise ValueError(f"{name} contains NaN or inf")
    return f.to(torch.float64)


def fcd(real: Tensor, fake: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    .. math::

        d^2 = \\lVert\\mu_r - \\mu_f\\rVert^2 + \\operatorname{tr}\\big(\\Sigma_r + \\Sigma_f
        - 2 (\\Sigma_r^{1/2} \\Sigma_f \\Sigma_r^{1/2})^{1/2}\\big)

    (the symmetric form of :math:`\\operatorname{tr}(\\Sigma_r\\Sigma_f)^{1/2}`, computed with
    two symmetric eigendecompositions in float64).

    Args:
        real: ``(N, D)`` features of real images.
        fake: ``(M, D)`` features of generated images.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a = torch.randn(4000, 3, generator=g)
        >>> round(fcd(a, a + 1.0), 2)  # a shift by 1 in 3 dims
        3.0
    """
    real, fake = _check_features("real", real), _check_features("fake", fake)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = torch.cov(real.T).reshape(real.shape[1], -1), torch.cov(fake.T).reshape(
        fake.shape[1], -1
    )
    w, v = torch.linalg.eigh(cov_r)
    root_r = (v * w.clamp_min(0).sqrt()) @ v.T
    middle = root_r @ cov_f @ root_r
    tr_sqrt = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp_min(0).sqrt().sum()
    d2 = (mu_r - mu_f).square().sum() + cov_r.trace() + cov_f.trace() - 2 * tr_sqrt
    return float(d2.clamp_min(0))


def kid(
    real: Tensor,
    fake: Tensor,
    *,
    subsets: int = 50,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Kernel distance: unbiased MMD² with the cubic kernel :math:`k(a, b) = (a^\\top b/D + 1)^3`.

    Averaged over ``subsets`` random subsets of ``min(subset_size, N, M)`` points of each set
    (Bińkowski et al., 2018). Returns ``(mean, standard error)``; unbiased, so it may be
    slightly negative when the sets are alike. The standard error is over subsets, which
    overlap, so it understates the sampling error when ``subset_size`` is close to N or M.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(500, 4, generator=g), torch.randn(500, 4, generator=g)
        >>> same, _ = kid(a, b, subset_size=200, generator=g)
        >>> shifted, _ = kid(a, b + 1.0, subset_size=200, generator=g)
        >>> abs(same) < 0.05 < shifted
        True
    """
    real, fake = _check_features("real", real), _check_features("fake", fake)
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    m = min(subset_size, real.shape[0], fake.shape[0])
    d = real.shape[1]
    values = []
    for _ in range(subsets):
        a = real[torch.randperm(real.shape[0], generator=generator)[:m]]
        b = fake[torch.randperm(fake.shape[0], generator=generator)[:m]]
        kaa = (a @ a.T / d + 1) ** 3
        kbb = (b @ b.T / d + 1) ** 3
        kab = (a @ b.T / d + 1) ** 3
        off = m * (m - 1)
        mmd = (
            (kaa.sum() - kaa.diagonal().sum()) / off
            + (kbb.sum() - kbb.diagonal().sum()) / off
            - 2 * kab.mean()
        )
        values.append(float(mmd))
    t = torch.tensor(values, dtype=torch.float64)
    se = float(t.std() / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return float(t.mean()), se


def real_vs_real(
    metric: Callable[[Tensor, Tensor], float],
    features: Tensor,
    *,
    size: int | None = None,
    repeats: int = 3,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """The floor of a metric: its value between random disjoint halves of real features.

    Args:
        metric: e.g. :func:`fcd`, called on two halves.
        features: ``(N, D)`` real features.
        size: points per half (default ``N // 2``); use the number of samples being scored
            so the floor has the same small-sample bias.
        repeats: random splits averaged.
        generator: random generator.

    Returns:
        ``(mean, standard error)`` over the splits.
    """
    features = _check_features("features", features)
    size = features.shape[0] // 2 if size is None else int(size)
    if not 2 <= size <= features.shape[0] // 2:
        raise ValueError(f"size must be in [2, {features.shape[0] // 2}], got {size}")
    vals = []
    for _ in range(repeats):
        perm = torch.randperm(features.shape[0], generator=generator)
        vals.append(float(metric(features[perm[:size]], features[perm[size : 2 * size]])))
    t = torch.tensor(vals, dtype=torch.float64)
    se = float(t.std() / math.sqrt(repeats)) if repeats > 1 else float("nan")
    return float(t.mean()), se
