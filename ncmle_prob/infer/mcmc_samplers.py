r"""The Pyro MCMC kernels under the sampler registry: ``pyro_mala`` and ``pyro_langevin``.

``samplers.sample(dist, n, method="pyro_mala")`` returns **n independent draws**: the final
states of n chains of :class:`pyro.infer.MCMC` with the :class:`~ncmle_prob.infer.MALA`
kernel (``pyro_langevin``: :class:`~ncmle_prob.infer.AnnealedLangevinKernel`), each started
independently, warmed up, and moved ``thin`` more steps. The chains run vectorised,
``chains_per_run`` at a time: one Pyro run targets the product density

.. math::

    \pi(x^{(1)}, \dots, x^{(m)}) = \prod_{j=1}^{m} p(x^{(j)} \mid \sigma),

whose stationary law *is* m independent draws of :math:`p(\cdot\mid\sigma)`, so at
convergence the m final states are independent (they share the step size and one
accept/reject decision per step, which costs a step size smaller by about
:math:`m^{1/3}`). ``chains="single"`` keeps the old behaviour on explicit request: the
consecutive states of one chain, thinned by ``thin``; they are correlated, a
:class:`UserWarning` says so, and :class:`~ncmle_prob.samplers.SampleInfo` reports their
effective sample size (``effective_sample_size``, with ``chains=1``).

Both need a density: at σ = 0 on grid data (a discretized family, whose ``log_prob`` is a
mass) they raise a :class:`ValueError` saying that σ > 0 is needed. One chain cannot hop
between well-separated modes (e.g. a mixture at σ = 0 whose modes are many standard
deviations apart): for those use ``annealed_langevin`` or ``score_corrected_ancestral``.

Both are registered in :mod:`ncmle_prob.samplers` *by name* (``samplers.available()`` lists
them before anything imports this module); ``samplers.get("pyro_mala")`` imports it.

Example:
    >>> import torch
    >>> from ncmle_prob import samplers
    >>> from ncmle_prob.distributions import NoisyGaussian
    >>> d = NoisyGaussian(torch.zeros(2), torch.eye(2), sigma=0.5)
    >>> g = torch.Generator().manual_seed(0)
    >>> x, info = samplers.sample(d, 8, "pyro_mala", warmup_steps=50, chains_per_run=4,
    ...                           generator=g, return_info=True)
    >>> x.shape, info.chains
    (torch.Size([8, 2]), 8)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import pyro
import torch
from pyro.infer import MCMC
from torch import Tensor

from ..distributions.base import NoiseConditionalDistribution
from ..samplers.info import SampleInfo
from ..samplers.option_types import option
from ..samplers.protocol import Sampler
from .kernels import MALA, AnnealedLangevinKernel, LangevinKernel

__all__ = ["PyroLangevin", "PyroMALA", "check_density"]

Chains = Literal["independent", "single"]


def check_density(dist: NoiseConditionalDistribution, method: str) -> None:
    """:class:`ValueError` unless ``dist`` is a density (σ > 0 on grid data)."""
    if bool(dist.is_mass().any()):
        raise ValueError(
            f"sampler {method!r} needs a density with a gradient, but the distribution is a "
            f"discretized family at sigma = 0 (a log mass on a grid): sigma > 0 is needed; "
            f"bind it with dist.at(sigma), e.g. dist.at(0.05) (ncmle sample --sigma 0.05)"
        )


@dataclass
class _PyroSampler(Sampler):
    """Shared run of the Pyro-kernel samplers (subclasses give the kernel)."""

    warmup_steps: int = option(300, "warm-up (adaptation) steps of each run")
    thin: int = option(1, "steps between returned states (after warm-up)")
    chains: Chains = option(  # noqa: RUF009
        "independent", "independent: every draw ends its own chain; single: the consecutive "
        "(correlated) states of one chain, with their effective sample size in the info")
    chains_per_run: int = option(16, "independent chains advanced together in one Pyro run")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("thin", "chains_per_run"):
            if getattr(self, name) < 1:
                raise ValueError(f"option {name!r} must be >= 1, got {getattr(self, name)!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"option 'warmup_steps' must be >= 0, got {self.warmup_steps!r}")

    def kernel(self, model: Any, dist: NoiseConditionalDistribution) -> LangevinKernel:
        raise NotImplementedError

    def _mcmc(self, dist: NoiseConditionalDistribution, num_samples: int, chains: int,
              progress: bool) -> Tensor:
        batch = dist.batch_shape
        target = dist if chains == 1 else dist.expand(torch.Size((chains, *batch))).to_event(
            1 + len(batch))

        def model() -> Tensor:
            return pyro.sample("x", target)

        mcmc = MCMC(self.kernel(model, dist), num_samples=num_samples,
                    warmup_steps=self.warmup_steps, disable_progbar=not progress)
        mcmc.run()
        return mcmc.get_samples()["x"].detach().to(dtype=dist.dtype)

    def run(
        self,
        dist: NoiseConditionalDistribution,
        num_samples: int,
        *,
        generator: torch.Generator | None,
        progress: bool,
    ) -> tuple[Tensor, SampleInfo]:
        check_density(dist, self.name)
        info = SampleInfo(self.name)
        devices = [dist.device] if dist.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if generator is not None:
                seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                                         device=generator.device))
                torch.manual_seed(seed)
            if self.chains == "single":
                x = self._mcmc(dist, num_samples * self.thin, 1, progress)[:: self.thin]
                info.chains = 1
                info.effective_sample_size = _ess(x)
                warnings.warn(
                    f"{self.name} with chains='single': the {num_samples} draws are consecutive "
                    f"states of one chain (effective sample size "
                    f"{info.effective_sample_size:.1f}), not independent draws",
                    UserWarning, stacklevel=2)
                return x, info
            parts = []
            for start in range(0, num_samples, self.chains_per_run):
                m = min(self.chains_per_run, num_samples - start)
                parts.append(self._mcmc(dist, self.thin, m, progress)[-1].reshape(
                    (m, *dist.batch_shape, *dist.event_shape)))
        info.chains = num_samples
        return torch.cat(parts), info


def _ess(x: Tensor) -> float:
    """Effective sample size of one chain's draws ``x (n, ...)`` (minimum over coordinates)."""
    from pyro.ops.stats import effective_sample_size

    flat = x.reshape(1, x.shape[0], -1).double()
    if x.shape[0] < 4:
        return float(x.shape[0])
    ess = effective_sample_size(flat, chain_dim=0, sample_dim=1)
    ess = torch.nan_to_num(ess, nan=float(x.shape[0]))
    return float(ess.min())


@dataclass
class PyroMALA(_PyroSampler):
    """Independent MALA chains of ``pyro.infer.MCMC`` (exact for the log density).

    **Default budget**: per run of ``chains_per_run`` = 16 chains, 300 warm-up steps plus
    ``thin`` = 1: one batched log-prob-and-score pass per step, about
    :math:`301/16 \\approx 19` network evaluations per draw (batched by 16).

    Args:
        step_size: initial step size.
        target_accept: acceptance probability targeted by warm-up.

    The run options (``warmup_steps``, ``thin``, ``chains``, ``chains_per_run``) are those
    of the module docstring.
    """

    step_size: float = option(0.1, "initial step size")
    target_accept: float = option(0.574, "acceptance probability targeted by warm-up")

    def kernel(self, model: Any, dist: NoiseConditionalDistribution) -> LangevinKernel:
        return MALA(model, step_size=self.step_size, target_accept=self.target_accept)


@dataclass
class PyroLangevin(_PyroSampler):
    """Independent annealed-Langevin chains of ``pyro.infer.MCMC`` (annealed warm-up from
    ``sigma_max`` down to the bound σ, then Langevin steps at the bound σ).

    **Default budget**: 400 warm-up steps (half of them annealing) per run of 16 chains.
    The steps are Metropolis-adjusted by default (exact); ``metropolis=False`` gives
    unadjusted steps, biased by the step size.

    Args:
        sigma_max: first annealing level.
        num_levels: annealing levels.
        metropolis: Metropolis-adjust the draws (exact) instead of unadjusted Langevin.
    """

    warmup_steps: int = option(400, "annealing plus adaptation steps of each run")
    sigma_max: float = option(1.0, "first annealing level")
    num_levels: int = option(10, "annealing levels")
    metropolis: bool = option(True, "Metropolis-adjust the steps (exact)")

    def kernel(self, model: Any, dist: NoiseConditionalDistribution) -> LangevinKernel:
        sigma_min = max(float(dist.sigma.max()), 1e-3)
        if not math.isfinite(self.sigma_max):
            raise ValueError(f"option 'sigma_max' must be finite, got {self.sigma_max!r}")
        return AnnealedLangevinKernel(
            model, sigma_max=max(self.sigma_max, sigma_min), sigma_min=sigma_min,
            num_levels=self.num_levels, metropolis=self.metropolis,
            # MALA's optimal rate when exact; a high rate bounds ULA's bias otherwise
            target_accept=0.574 if self.metropolis else 0.8)


pyro_mala = PyroMALA
pyro_langevin = PyroLangevin
