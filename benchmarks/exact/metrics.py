r"""Exact metrics of the benchmark (the oracle :math:`q` is closed form).

* :func:`sample_metrics`: the energy distance to fresh oracle draws (the library's
  :func:`~ncmle_prob.divergences.energy_distance`); class TV between the MAP-class histograms
  of the samples and of oracle draws (:func:`ncmle_prob.metrics.class_tv`, with the exact class
  posterior as the classifier); the **two-sided plausibility**: the fraction of samples whose
  Mahalanobis :math:`\chi^2` under their MAP template lies between the 0.5th and 99.5th
  percentiles of :math:`\chi^2_D` (exact draws of a component: 0.99; over-smoothed samples,
  too close to a template, fail it as surely as outliers); :math:`\mathbb E\log q_\sigma(x)`
  beside :math:`-H(q_\sigma)`.
* :func:`class_switch_rate`: the fraction of draws whose MAP class under :math:`q_{\sigma_s}`
  at the start differs from their MAP class under :math:`q` at the end (remixing, directly).
* :func:`conditional_kl_profile`: the per-dimension conditional KL
  :math:`\mathbb E_{x_{<i}}\,\mathrm{KL}(p_\theta(\cdot\mid x_{<i})\,\|\,q(\cdot\mid x_{<i}))`
  under **oracle prefixes** (teacher-forced) or under the **model's own prefixes**: every
  :math:`x_i` is drawn from the model's conditional given the prefix in one parallel pass
  (:meth:`~ncmle_prob.distributions.NoiseConditionalAutoregressive.ancestral_map`), and
  :math:`\log q(x_i\mid x_{<i}) = \log q(x_{\le i}) - \log q(x_{<i})` is exact. The gap
  between the two profiles is the compounding.
* :func:`forward_kl`: :math:`\mathrm{KL}(q_\sigma\|p_\theta(\cdot\mid\sigma))`, the test NLL
  minus the oracle's entropy.
"""

from __future__ import annotations

import math

import torch
from scipy.stats import chi2
from torch import Tensor

from ncmle_prob.distributions import NoisyGaussianMixture
from ncmle_prob.divergences import energy_distance
from ncmle_prob.metrics import class_tv
from ncmle_prob.models import MADE

from .oracle import mixture_log_prob, posterior

__all__ = [
    "class_switch_rate", "conditional_kl_profile", "forward_kl", "mean_se", "neg_entropy",
    "sample_metrics",
]


def mean_se(values: Tensor) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n)).

    Example:
        >>> mean_se(torch.tensor([1.0, 3.0]))
        (2.0, 1.0)
    """
    v = values.double().flatten()
    se = float(v.std(unbiased=True) / math.sqrt(v.numel())) if v.numel() > 1 else 0.0
    return float(v.mean()), se


def _mahalanobis2(q: NoisyGaussianMixture, x: Tensor, sigma: float, k: Tensor) -> Tensor:
    cov = q.clean_covariances[0]
    chol = torch.linalg.cholesky(cov + sigma**2 * torch.eye(cov.shape[0], dtype=cov.dtype))
    z = torch.linalg.solve_triangular(chol, (x - q.locs[k]).T, upper=False)
    return (z * z).sum(0)


@torch.no_grad()
def sample_metrics(
    x: Tensor, q: NoisyGaussianMixture, sigma: float, reference: Tensor
) -> dict[str, float]:
    """Coverage and precision of samples ``x`` (N, D) against :math:`q_\\sigma`;
    ``reference`` are fresh oracle draws of :math:`q_\\sigma`."""
    xd = x.double()
    if not bool(torch.isfinite(xd).all()):
        raise ValueError(f"{int((~torch.isfinite(xd).all(-1)).sum())} samples are not finite")
    post = posterior(q, xd, sigma)
    k = post.argmax(-1)
    m2 = _mahalanobis2(q, xd, sigma, k)
    d = xd.shape[-1]
    lo, hi = float(chi2.ppf(0.005, d)), float(chi2.ppf(0.995, d))
    plausible = ((m2 > lo) & (m2 < hi)).double()
    log_q = mixture_log_prob(q, xd, sigma)
    pl, pl_se = mean_se(plausible)
    lq, lq_se = mean_se(log_q)
    return {
        "energy": float(energy_distance(xd, reference.double())),
        "class_tv": class_tv(posterior(q, reference.double(), sigma), post),
        "plausible": pl, "plausible_se": pl_se,
        "too_close": float((m2 <= lo).double().mean()),
        "too_far": float((m2 >= hi).double().mean()),
        "log_q": lq, "log_q_se": lq_se,
    }


@torch.no_grad()
def class_switch_rate(
    q: NoisyGaussianMixture, start: Tensor, sigma_start: float, end: Tensor
) -> float:
    """Fraction of draws whose MAP class changed between the start (under
    :math:`q_{\\sigma_s}`) and the end (under :math:`q`)."""
    a = posterior(q, start.double(), sigma_start).argmax(-1)
    b = posterior(q, end.double(), 0.0).argmax(-1)
    return float((a != b).double().mean())


@torch.no_grad()
def forward_kl(
    model: MADE, q: NoisyGaussianMixture, sigma: float, num: int, generator: torch.Generator
) -> tuple[float, float]:
    r""":math:`\mathrm{KL}(q_\sigma\|p_\theta(\cdot\mid\sigma))` (nats) and its SE."""
    x = q.at(sigma).sample((num,), generator=generator)
    lp = model(sigma).log_prob(x.float()).double()
    return mean_se(mixture_log_prob(q, x, sigma) - lp)


def neg_entropy(
    q: NoisyGaussianMixture, sigma: float, num: int, generator: torch.Generator
) -> tuple[float, float]:
    r""":math:`-H(q_\sigma) = \mathbb E_{q_\sigma}\log q_\sigma` by Monte Carlo, with its SE."""
    return mean_se(mixture_log_prob(q, q.at(sigma).sample((num,), generator=generator), sigma))


@torch.no_grad()
def conditional_kl_profile(
    model: MADE, q: NoisyGaussianMixture, prefixes: Tensor, generator: torch.Generator
) -> tuple[list[float], list[float]]:
    r"""Per-dimension conditional KL (nats) of the model against the oracle at σ = 0, under
    the given prefixes (rows of ``prefixes``: oracle draws for the teacher-forced profile,
    the model's own ancestral draws for the free-running one); returns means and SEs."""
    dist = model(0.0)
    x = prefixes.float()
    n, d = x.shape
    u = dist.ancestral_noise((n,), generator)
    draw = dist.ancestral_map(x, u)  # x_i ~ p(. | x_<i) for every i at once
    params = model.conditional_params(x, torch.zeros(n))
    log_p = model.family.log_prob(params, draw, torch.zeros(n, 1)).double()  # (N, D)
    xd, yd = x.double(), draw.double()
    means, ses = [], []
    prev = torch.zeros(n, dtype=torch.float64)  # log q(x_<1) = 0
    for i in range(1, d + 1):
        mixed = torch.cat([xd[:, : i - 1], yd[:, i - 1 : i]], dim=1)
        log_q_i = mixture_log_prob(q, mixed, 0.0, prefix=i) - prev
        m, s = mean_se(log_p[:, i - 1] - log_q_i)
        means.append(m)
        ses.append(s)
        prev = mixture_log_prob(q, xd, 0.0, prefix=i)
    return means, ses

