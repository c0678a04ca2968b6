r"""The exact oracle of the compounding benchmark: K smooth templates plus a shared texture.

:math:`q = \sum_k w_k\, \mathcal N(\mu_k, \Sigma)` with

- templates :math:`\mu_k`: smooth random fields (a squared-exponential Gaussian process over
  the whole signal: a line of ``D`` points, or a ``side x side`` image in raster order),
  scaled to unit root-mean-square;
- a shared stationary texture :math:`\Sigma = a^2 R`, where :math:`R_{ij} = \rho^{|i-j|}`
  (AR(1), D = 64) or :math:`\rho^{|r_i - r_j|}\rho^{|c_i - c_j|}` (separable AR(1) on the
  image grid, D = 256);
- mildly unequal weights :math:`w_k \propto 1 + k/(K-1)`.

Everything about :math:`q` and :math:`q_\sigma = q * \mathcal N(0, \sigma^2 I)` is closed
form (``NoisyGaussianMixture``): log-density, score, sampling, component posteriors and the
marginal of any prefix :math:`x_{\le i}` (the mixture of the prefix blocks).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ncmle_prob.distributions import NoisyGaussianMixture


@dataclass(frozen=True)
class OracleSpec:
    """Parameters of the benchmark's data law (all documented in the docs page)."""

    features: int
    components: int = 10
    texture_std: float = 0.25
    rho: float = 0.9
    lengthscale: float = 6.0  # in samples (line) or pixels (image)
    seed: int = 0

    @property
    def image_side(self) -> int | None:
        """``side`` when ``features`` is a square of at least 256 (treated as an image)."""
        side = math.isqrt(self.features)
        return side if side * side == self.features and self.features >= 256 else None

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "image_side": self.image_side}


def _coords(spec: OracleSpec) -> Tensor:
    side = spec.image_side
    if side is None:
        return torch.arange(spec.features, dtype=torch.float64)[:, None]
    idx = torch.arange(spec.features)
    return torch.stack([idx // side, idx % side], dim=1).to(torch.float64)  # raster order


def _texture(spec: OracleSpec, coords: Tensor) -> Tensor:
    lag = (coords[:, None, :] - coords[None, :, :]).abs()  # per-axis |Δ|
    corr = (spec.rho ** lag).prod(-1)
    return spec.texture_std**2 * corr


def _templates(spec: OracleSpec, coords: Tensor) -> Tensor:
    g = torch.Generator().manual_seed(spec.seed)
    d2 = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    kernel = torch.exp(-0.5 * d2 / spec.lengthscale**2)
    chol = torch.linalg.cholesky(kernel + 1e-6 * torch.eye(spec.features, dtype=torch.float64))
    z = torch.randn(spec.components, spec.features, generator=g, dtype=torch.float64)
    mu = z @ chol.T
    return mu / mu.pow(2).mean(-1, keepdim=True).sqrt()


def make_oracle(spec: OracleSpec) -> NoisyGaussianMixture:
    """The exact data law :math:`q` (float64) of ``spec``."""
    coords = _coords(spec)
    cov = _texture(spec, coords)
    mu = _templates(spec, coords)
    k = spec.components
    w = 1.0 + torch.arange(k, dtype=torch.float64) / max(k - 1, 1)
    covs = cov.expand(k, spec.features, spec.features).contiguous()
    return NoisyGaussianMixture(w, mu, covs)


def prefix_oracle(q: NoisyGaussianMixture, i: int) -> NoisyGaussianMixture:
    r"""The exact marginal :math:`q(x_{\le i})`: the mixture of the leading ``i x i`` blocks."""
    return NoisyGaussianMixture(
        q.weights, q.locs[..., :i], q.clean_covariances[..., :i, :i].contiguous(), q.sigma
    )


def _shared_covariance(q: NoisyGaussianMixture) -> Tensor:
    cov = q.clean_covariances
    if cov.dim() != 3 or not bool((cov == cov[:1]).all()):
        raise ValueError("the fast oracle path needs one covariance shared by all components")
    return cov[0]


def component_log_probs(
    q: NoisyGaussianMixture, x: Tensor, sigma: float = 0.0, prefix: int | None = None
) -> Tensor:
    r""":math:`\log \mathcal N(x_{\le i}; \mu_{k,\le i}, (\Sigma + \sigma^2 I)_{\le i})`
    for every k, shape ``(N, K)``; ``prefix=None`` uses all D coordinates.

    The components share :math:`\Sigma`, so one Cholesky factor :math:`L` serves all:
    :math:`\|L^{-1}(x - \mu_k)\|^2` from :math:`L^{-1}x` and :math:`L^{-1}\mu_k` (memory
    O(N D) instead of the generic mixture's broadcast O(N K D^2)); equal to
    ``q.at(sigma).component(k).log_prob`` up to rounding (tested).
    """
    i = x.shape[-1] if prefix is None else prefix
    cov = _shared_covariance(q)[:i, :i]
    chol = torch.linalg.cholesky(cov + sigma**2 * torch.eye(i, dtype=cov.dtype))
    z = torch.linalg.solve_triangular(chol, x[:, :i].T.to(cov.dtype), upper=False)  # (i, N)
    m = torch.linalg.solve_triangular(chol, q.locs[:, :i].T, upper=False)  # (i, K)
    quad = (z * z).sum(0)[:, None] - 2.0 * z.T @ m + (m * m).sum(0)[None, :]
    half_logdet = torch.log(torch.diagonal(chol)).sum()
    return -0.5 * quad - half_logdet - 0.5 * i * math.log(2 * math.pi)


def mixture_log_prob(
    q: NoisyGaussianMixture, x: Tensor, sigma: float = 0.0, prefix: int | None = None
) -> Tensor:
    r""":math:`\log q_\sigma(x_{\le i})`, shape ``(N,)`` (see :func:`component_log_probs`)."""
    comp = component_log_probs(q, x, sigma, prefix)
    return torch.logsumexp(torch.log(q.weights) + comp, dim=-1)


def posterior(q: NoisyGaussianMixture, x: Tensor, sigma: float = 0.0) -> Tensor:
    r"""Exact component posteriors :math:`r_k(x)` under :math:`q_\sigma`, shape ``(N, K)``."""
    return torch.softmax(torch.log(q.weights) + component_log_probs(q, x, sigma), dim=-1)
