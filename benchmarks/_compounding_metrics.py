r"""Exact metrics of the compounding benchmark (the oracle :math:`q` is known in closed form).

- :func:`forward_kl`: :math:`\mathrm{KL}(q_\sigma \| p_\theta(\cdot\mid\sigma))` by Monte Carlo
  over fresh oracle draws (exact log-densities on both sides), with its standard error.
- :func:`prefix_reverse_kl`: for exact draws of :math:`p_\theta(\cdot\mid\sigma)` (ancestral),
  :math:`\mathrm{KL}(p_\theta(x_{\le i}) \| q(x_{\le i}))` for every prefix length ``i``. The
  model's prefix marginal is the product of its first ``i`` conditionals (raster order), the
  oracle's is the Gaussian mixture of the leading blocks; ``i = D`` is the full reverse KL.
- :func:`sample_metrics`: coverage (energy distance to fresh oracle draws, TV distance of the
  class proportions under the exact component posterior) and precision (fraction of samples
  plausible under their MAP template: Mahalanobis :math:`\chi^2` below the 99th percentile of
  :math:`\chi^2_D`, i.e. the component log-density above the 1st percentile of that
  component's own draws, exactly; and :math:`\mathbb E[\log q_\sigma(x)]`).
"""

from __future__ import annotations

import math

import torch
from _compounding_data import component_log_probs, mixture_log_prob, posterior
from scipy.stats import chi2
from torch import Tensor

from ncmle_prob.distributions import NoisyGaussianMixture
from ncmle_prob.divergences import energy_distance
from ncmle_prob.models import MADE


def mean_se(values: Tensor) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n)); SE is 0 for a single value."""
    v = values.double().flatten()
    n = v.numel()
    se = float(v.std(unbiased=True) / math.sqrt(n)) if n > 1 else 0.0
    return float(v.mean()), se


@torch.no_grad()
def per_dim_log_probs(model: MADE, x: Tensor, sigma: float) -> Tensor:
    r""":math:`\log p_\theta(x_i \mid x_{<i}, \sigma)`, shape ``(N, D)`` (model's own order)."""
    n = x.shape[0]
    s = torch.full((n,), float(sigma), dtype=x.dtype)
    params = model.conditional_params(x, s)
    return model.family.log_prob(params, x, s.reshape(n, 1))


def prefix_lengths(features: int, parts: int = 8) -> list[int]:
    return [features * j // parts for j in range(1, parts + 1)]


@torch.no_grad()
def prefix_reverse_kl(
    model: MADE, q: NoisyGaussianMixture, x: Tensor, sigma: float = 0.0, parts: int = 8
) -> dict[int, tuple[float, float]]:
    """``{i: (KL, SE)}`` for exact draws ``x`` of the model at σ (nats)."""
    cum = per_dim_log_probs(model, x.float(), sigma).double().cumsum(-1)
    out = {}
    for i in prefix_lengths(x.shape[-1], parts):
        log_q = mixture_log_prob(q, x.double(), sigma, prefix=i)
        out[i] = mean_se(cum[:, i - 1] - log_q)
    return out


@torch.no_grad()
def forward_kl(
    model: MADE, q: NoisyGaussianMixture, sigma: float, num: int, generator: torch.Generator
) -> tuple[float, float]:
    r""":math:`\mathrm{KL}(q_\sigma\|p_\theta(\cdot\mid\sigma))` (nats) and its SE."""
    qs = q.at(sigma)
    x = qs.sample((num,), generator=generator)
    lp = model(sigma).log_prob(x.float()).double()
    return mean_se(mixture_log_prob(q, x, sigma) - lp)


def neg_entropy(
    q: NoisyGaussianMixture, sigma: float, num: int, generator: torch.Generator
) -> tuple[float, float]:
    r""":math:`-H(q_\sigma) = \mathbb E_{q_\sigma}[\log q_\sigma]` by MC, with its SE."""
    x = q.at(sigma).sample((num,), generator=generator)
    return mean_se(mixture_log_prob(q, x, sigma))


def _plausible_threshold(q: NoisyGaussianMixture, sigma: float, features: int) -> Tensor:
    """Per component: the 1st percentile of its own log-density (exact: a χ² quantile)."""
    cov = q.clean_covariances + sigma**2 * torch.eye(features, dtype=q.locs.dtype)
    logdet = torch.linalg.slogdet(cov).logabsdet
    q99 = float(chi2.ppf(0.99, features))
    return -0.5 * (q99 + logdet + features * math.log(2 * math.pi))


@torch.no_grad()
def sample_metrics(
    x: Tensor, q: NoisyGaussianMixture, sigma: float, reference: Tensor
) -> dict[str, float]:
    r"""Coverage and precision of samples ``x`` (N, D) against :math:`q_\sigma`.

    ``reference`` are fresh draws of :math:`q_\sigma` (the energy-distance partner; the floor
    is the same statistic for oracle draws against the same reference).
    """
    xd = x.double()
    if not bool(torch.isfinite(xd).all()):
        bad = int((~torch.isfinite(xd).all(-1)).sum())
        raise ValueError(f"{bad} of {xd.shape[0]} samples are not finite")
    comp = component_log_probs(q, xd, sigma)
    log_w = torch.log(q.weights)
    post = torch.softmax(log_w + comp, dim=-1)
    props = post.mean(0)
    tv = 0.5 * float((props - q.weights).abs().sum())
    k_map = post.argmax(-1)
    thr = _plausible_threshold(q, sigma, xd.shape[-1])
    plausible = (comp.gather(-1, k_map[:, None]).squeeze(-1) > thr[k_map]).double()
    log_q = torch.logsumexp(log_w + comp, dim=-1)
    lq_mean, lq_se = mean_se(log_q)
    pl_mean, pl_se = mean_se(plausible)
    return {
        "energy": float(energy_distance(xd, reference.double())),
        "class_tv": tv,
        "plausible": pl_mean,
        "plausible_se": pl_se,
        "log_q": lq_mean,
        "log_q_se": lq_se,
    }


def oracle_floor(
    q: NoisyGaussianMixture, sigma: float, num: int, reference: Tensor,
    generator: torch.Generator,
) -> dict[str, float]:
    """:func:`sample_metrics` of exact oracle draws: the floor at the same set sizes."""
    return sample_metrics(q.at(sigma).sample((num,), generator=generator), q, sigma, reference)


__all__ = [
    "forward_kl", "mean_se", "neg_entropy", "oracle_floor", "per_dim_log_probs",
    "posterior", "prefix_lengths", "prefix_reverse_kl", "sample_metrics",
]
