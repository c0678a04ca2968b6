r"""The oracles: K smooth templates on a shared texture, scaled to a graded overlap.

:math:`q = \sum_k w_k\,\mathcal N(\mu_k, \Sigma)`, :math:`w_k \propto 1 + k/(K-1)`, with
templates :math:`\mu_k` smooth random fields (squared-exponential process, length scale 6
samples, on a line of D points) and a shared AR(1) texture :math:`\Sigma_{ij} = 0.25^2
\rho^{|i-j|}`, ρ = 0.9. The templates are then scaled by one factor so that the **nearest
pair is** :math:`\Delta` **Mahalanobis units apart at** :math:`\sigma_\text{ref}`:

.. math::

    \min_{k \ne l} \sqrt{(\mu_k - \mu_l)^\top (\Sigma + \sigma_\text{ref}^2 I)^{-1}
    (\mu_k - \mu_l)} = \Delta .

With Δ = 2 the classes overlap at σ_start (the oracle's class posterior is far from 0/1 for
many draws), with Δ = 8 they do not. Everything about :math:`q_\sigma` is closed form; the
functions below use that the components share :math:`\Sigma`, so one Cholesky factor serves
every component (memory O(N D) instead of the generic mixture's O(N K D²)).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ncmle_prob.distributions import NoisyGaussianMixture

__all__ = [
    "component_log_probs",
    "make_oracle",
    "mixture_log_prob",
    "nearest_distance",
    "posterior",
]


def _texture(features: int, std: float = 0.25, rho: float = 0.9) -> Tensor:
    i = torch.arange(features, dtype=torch.float64)
    return std**2 * rho ** (i[:, None] - i[None, :]).abs()


def _templates(features: int, components: int, lengthscale: float, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    i = torch.arange(features, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (i[:, None] - i[None, :]) ** 2 / lengthscale**2)
    chol = torch.linalg.cholesky(kernel + 1e-6 * torch.eye(features, dtype=torch.float64))
    mu = torch.randn(components, features, generator=g, dtype=torch.float64) @ chol.T
    return mu / mu.pow(2).mean(-1, keepdim=True).sqrt()


def nearest_distance(locs: Tensor, cov: Tensor, sigma: float) -> float:
    r""":math:`\min_{k\ne l}` Mahalanobis distance of the templates under
    :math:`\Sigma + \sigma^2 I`.

    Example:
        >>> nearest_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.eye(2), 0.0)
        5.0
    """
    chol = torch.linalg.cholesky(cov + sigma**2 * torch.eye(cov.shape[-1], dtype=cov.dtype))
    z = torch.linalg.solve_triangular(chol, locs.T, upper=False).T
    d = torch.cdist(z, z)
    d = d + torch.diag(torch.full((d.shape[0],), math.inf, dtype=d.dtype))
    return float(d.min())


def make_oracle(
    features: int, components: int, overlap: float, sigma_ref: float, *,
    lengthscale: float = 6.0, seed: int = 0,
) -> NoisyGaussianMixture:
    """The oracle whose nearest templates are ``overlap`` Mahalanobis units apart at
    ``sigma_ref`` (float64).

    Example:
        >>> q = make_oracle(16, 3, 2.0, 0.3)
        >>> round(nearest_distance(q.locs, q.clean_covariances[0], 0.3), 6)
        2.0
    """
    if not (overlap > 0 and math.isfinite(overlap)):
        raise ValueError(f"overlap must be a positive distance, got {overlap!r}")
    cov = _texture(features)
    mu = _templates(features, components, lengthscale, seed)
    mu = mu * (overlap / nearest_distance(mu, cov, sigma_ref))
    w = 1.0 + torch.arange(components, dtype=torch.float64) / max(components - 1, 1)
    covs = cov.expand(components, features, features).contiguous()
    return NoisyGaussianMixture(w, mu, covs)


def component_log_probs(
    q: NoisyGaussianMixture, x: Tensor, sigma: float = 0.0, prefix: int | None = None
) -> Tensor:
    r""":math:`\log \mathcal N(x_{\le i}; \mu_{k,\le i}, (\Sigma + \sigma^2 I)_{\le i})` for
    every k, shape ``(N, K)`` (``prefix=None``: all D coordinates).

    Example:
        >>> q = make_oracle(6, 2, 3.0, 0.3)
        >>> x = q.sample((4,), generator=torch.Generator().manual_seed(0))
        >>> ref = torch.stack([q.at(0.2).component(k).log_prob(x) for k in range(2)], -1)
        >>> bool(torch.allclose(component_log_probs(q, x, 0.2), ref))
        True
    """
    i = x.shape[-1] if prefix is None else prefix
    cov = q.clean_covariances[0][:i, :i]
    chol = torch.linalg.cholesky(cov + sigma**2 * torch.eye(i, dtype=cov.dtype))
    z = torch.linalg.solve_triangular(chol, x[:, :i].T.to(cov.dtype), upper=False)
    m = torch.linalg.solve_triangular(chol, q.locs[:, :i].T, upper=False)
    quad = (z * z).sum(0)[:, None] - 2.0 * z.T @ m + (m * m).sum(0)[None, :]
    half_logdet = torch.log(torch.diagonal(chol)).sum()
    return -0.5 * quad - half_logdet - 0.5 * i * math.log(2 * math.pi)


def mixture_log_prob(
    q: NoisyGaussianMixture, x: Tensor, sigma: float = 0.0, prefix: int | None = None
) -> Tensor:
    r""":math:`\log q_\sigma(x_{\le i})`, shape ``(N,)``."""
    return torch.logsumexp(torch.log(q.weights) + component_log_probs(q, x, sigma, prefix), -1)


def posterior(q: NoisyGaussianMixture, x: Tensor, sigma: float = 0.0) -> Tensor:
    r"""The exact class posteriors :math:`r_k(x)` under :math:`q_\sigma`, shape ``(N, K)``."""
    return torch.softmax(torch.log(q.weights) + component_log_probs(q, x, sigma), dim=-1)
