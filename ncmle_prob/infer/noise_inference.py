"""Noise-level inference: the model's own :math:`p(y \\mid \\sigma_y)` is an exact marginal
likelihood of the noise level.

For observations :math:`y_n = x_{0,n} + \\sigma_y \\varepsilon_n` with :math:`x_0` from the data
distribution and :math:`\\sigma_y` unknown, a noise-conditional model of the noisy data gives

.. math::

    p(y_{1:N} \\mid \\sigma_y) = \\prod_n p_\\theta(y_n \\mid \\sigma_y)
    = \\prod_n \\int q(x_0)\\, \\mathcal N(y_n; x_0, \\sigma_y^2 I)\\, dx_0,

the clean image integrated out in one network pass (no latent :math:`x_0`), differentiable in
:math:`\\sigma_y` through the noise embedding. NUTS over the single latent :math:`\\sigma_y` (or
SVI) gives its posterior.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.distributions as pdist
import torch
from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from torch import Tensor

from ..distributions.base import NoiseConditionalDistribution
from ..distributions.validation import check_finite, check_tensor

__all__ = ["NoiseLevelPosterior", "infer_noise_level", "noise_level_model"]


def noise_level_model(
    dist: NoiseConditionalDistribution,
    sigma_prior: pdist.Distribution | None = None,
) -> Callable[[Tensor], Tensor]:
    """The Pyro model ``sigma_y ~ sigma_prior``; ``y_n ~ p(· | sigma_y)`` i.i.d. (``obs=y``).

    Args:
        dist: the noise-conditional model of the data (its bound σ is ignored).
        sigma_prior: prior of σ_y (default log-normal with median 0.1 and a factor-of-e
            spread of 1.5 in log space: weak over [0.005, 2]).
    """
    if not isinstance(dist, NoiseConditionalDistribution):
        raise TypeError(f"dist must be a NoiseConditionalDistribution, got {type(dist).__name__}")
    prior = sigma_prior
    if prior is None:
        prior = pdist.LogNormal(
            torch.tensor(math.log(0.1), dtype=dist.dtype, device=dist.device),
            torch.tensor(1.5, dtype=dist.dtype, device=dist.device),
        )

    def model(y: Tensor) -> Tensor:
        s = pyro.sample("sigma_y", prior)
        # HMC's step-size search can overflow exp(log sigma) to inf: score such a point as
        # impossible (potential +inf, rejected) instead of failing inside dist.at
        finite = torch.isfinite(s)
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.at(torch.where(finite, s, torch.ones_like(s))), obs=y)
        if not bool(finite.all()):
            pyro.factor("sigma_y_overflow", torch.full_like(s, -math.inf))
        return s

    return model


@dataclass
class NoiseLevelPosterior:
    """Posterior draws of σ_y with summaries.

    Attributes:
        samples: draws of σ_y, shape ``(num_samples,)``.
        method: ``"nuts"`` or ``"svi"``.
    """

    samples: Tensor
    method: str

    @property
    def mean(self) -> float:
        """Posterior mean of σ_y."""
        return float(self.samples.mean())

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Central posterior interval of probability ``level``."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=self.samples.dtype)
        lo, hi = torch.quantile(self.samples.cpu(), q).tolist()
        return lo, hi


def infer_noise_level(
    dist: NoiseConditionalDistribution,
    y: Tensor,
    *,
    method: str = "nuts",
    sigma_prior: pdist.Distribution | None = None,
    num_samples: int = 300,
    warmup_steps: int = 200,
    svi_steps: int = 500,
    learning_rate: float = 0.05,
    progress: bool = False,
) -> NoiseLevelPosterior:
    """Posterior of the unknown noise level σ_y of i.i.d. noisy observations ``y``.

    Args:
        dist: a noise-conditional model of the (clean) data, trained at σ > 0 too.
        y: observations ``(N, *event_shape)``.
        method: ``"nuts"`` (exact posterior draws) or ``"svi"`` (a log-normal
            approximation by :class:`~pyro.infer.autoguide.AutoNormal`).
        sigma_prior: prior of σ_y (see :func:`noise_level_model`).
        num_samples, warmup_steps: NUTS draws (or posterior draws from the SVI guide).
        svi_steps, learning_rate: SVI optimisation.
        progress: show progress bars.

    Example:
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> d = NoisyGaussian(torch.zeros(2), torch.eye(2))
        >>> y = d.at(0.5).sample((200,), generator=torch.Generator().manual_seed(0))
        >>> pyro.set_rng_seed(0)
        >>> post = infer_noise_level(d, y, method="svi", svi_steps=200)
        >>> lo, hi = post.interval()
        >>> lo < 0.5 < hi
        True
    """
    y = check_tensor("y", y, dtype=dist.dtype, device=dist.device, event_shape=dist.event_shape)
    check_finite("y", y)
    if y.dim() != len(dist.event_shape) + 1:
        raise ValueError(f"y must have shape (N, *event_shape), got {tuple(y.shape)}")
    model = noise_level_model(dist, sigma_prior)
    if method == "nuts":
        mcmc = MCMC(NUTS(model), num_samples=num_samples, warmup_steps=warmup_steps,
                    disable_progbar=not progress)
        mcmc.run(y)
        return NoiseLevelPosterior(mcmc.get_samples()["sigma_y"].detach(), "nuts")
    if method == "svi":
        # a private parameter store: the user's global store is left untouched
        with pyro.get_param_store().scope():
            guide = AutoNormal(model)
            svi = SVI(model, guide, pyro.optim.Adam({"lr": learning_rate}), Trace_ELBO())
            for _ in range(svi_steps):
                loss = svi.step(y)
                if not math.isfinite(loss):
                    raise FloatingPointError("SVI diverged (non-finite ELBO); lower learning_rate")
            with torch.no_grad():
                draws: Any = torch.stack([guide(y)["sigma_y"] for _ in range(num_samples)])
        return NoiseLevelPosterior(draws.detach(), "svi")
    raise ValueError(f"method must be 'nuts' or 'svi', got {method!r}")
