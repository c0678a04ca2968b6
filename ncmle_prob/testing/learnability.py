r"""Can a model *learn* the noisy family? Train by NCMLE on an oracle and measure the fit.

Exactness checks (:mod:`ncmle_prob.testing.properties`) ask whether a model computes *its own*
law correctly. A model can pass all of them and still be unable to represent
:math:`q_\sigma = q * \mathcal N(0, \sigma^2 I)` at some σ in some dimension (a first
conditional that ignores σ is the classic case, see :mod:`ncmle_prob.testing.reach`). This
module trains a model on draws of a closed-form oracle and reports, at each σ,

* the exact :math:`\mathrm{KL}(q_\sigma \,\|\, p_\theta(\cdot \mid \sigma))` by Monte Carlo with
  exact log densities on both sides (``kl_divergence_mc``, with its standard error), and
* every dimension's marginal mean and variance from ancestral draws of the model, beside the
  oracle's.

Training is a plain Adam loop on :func:`~ncmle_prob.objectives.ncmle_loss` with a fresh batch
of oracle draws per step (an infinite data stream: no overfitting to separate from the fit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from ..divergences import kl_divergence_mc
from ..models.base import NoiseConditionalModel
from ..objectives import NoiseLevelPrior, ncmle_loss

__all__ = ["SIGMAS", "FitReport", "fit_report", "train_on_oracle"]

#: The noise levels every learnability report covers.
SIGMAS = (0.0, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class FitReport:
    """The fit of a model to an oracle at one noise level.

    Attributes:
        sigma: the noise level.
        kl: Monte Carlo :math:`\\mathrm{KL}(q_\\sigma \\| p_\\theta)` in nats.
        kl_stderr: its standard error.
        mean, var: every dimension's marginal mean and variance from the model's draws.
        true_mean, true_var: the oracle's.
    """

    sigma: float
    kl: float
    kl_stderr: float
    mean: Tensor
    var: Tensor
    true_mean: Tensor
    true_var: Tensor


def train_on_oracle(
    model: NoiseConditionalModel,
    oracle: NoiseConditionalDistribution,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 3e-3,
    prior: NoiseLevelPrior | None = None,
    seed: int = 0,
) -> NoiseConditionalModel:
    """Trains ``model`` by NCMLE on fresh clean draws of ``oracle`` (at σ = 0) each step.

    Adam with a cosine decay of the learning rate to zero. Returns the model in eval mode.
    """
    gen = torch.Generator(oracle.device).manual_seed(seed)
    clean = oracle.at(0.0)
    prior = prior if prior is not None else NoiseLevelPrior()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for _ in range(steps):
        x0 = clean.sample((batch_size,), generator=gen)
        loss = ncmle_loss(model, x0, prior, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def _moments(
    q: NoiseConditionalDistribution, n: int, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The oracle's exact mean and variance, or Monte Carlo ones where it has no closed form."""
    try:
        return q.mean, q.variance
    except NotImplementedError:
        truth = q.sample((n,), generator=gen)
        return truth.mean(0), truth.var(0)


def fit_report(
    model: NoiseConditionalModel,
    oracle: NoiseConditionalDistribution,
    sigmas: tuple[float, ...] = SIGMAS,
    num_samples: int = 20000,
    seed: int = 1,
) -> list[FitReport]:
    """KL and per-dimension moments of ``model`` against ``oracle`` at each σ.

    Example:
        >>> import torch
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> from ncmle_prob.models import MADE
        >>> _ = torch.manual_seed(0)
        >>> oracle = NoisyGaussian(torch.zeros(2), torch.diag(torch.tensor([0.3, 0.2])))
        >>> model = train_on_oracle(MADE(2, 16), oracle, steps=50)
        >>> [round(r.sigma, 1) for r in fit_report(model, oracle, num_samples=500)]
        [0.0, 0.1, 0.3, 1.0]
    """
    gen = torch.Generator(oracle.device).manual_seed(seed)
    out = []
    with torch.no_grad():
        for s in sigmas:
            q, p = oracle.at(s), model(s)
            kl, se = kl_divergence_mc(q, p, num_samples=num_samples, generator=gen,
                                      return_stderr=True)
            draws = p.sample((num_samples,), generator=gen)
            true_mean, true_var = _moments(q, num_samples, gen)
            out.append(FitReport(
                sigma=float(s), kl=float(kl), kl_stderr=float(se),
                mean=draws.mean(0), var=draws.var(0), true_mean=true_mean, true_var=true_var,
            ))
    return out
