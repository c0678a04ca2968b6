"""The Pyro MCMC kernels under the sampler registry: ``pyro_mala`` and ``pyro_langevin``.

``samplers.sample(dist, n, method="pyro_mala")`` runs one :class:`~ncmle_prob.infer.MALA` chain
of :class:`pyro.infer.MCMC` on the one-site model ``x ~ dist`` and returns its ``n`` draws after
warm-up (thinned by ``thin``); ``pyro_langevin`` does the same with
:class:`~ncmle_prob.infer.AnnealedLangevinKernel`. Draws of one chain are correlated: use them
for expectations, not as independent samples, and judge them by their effective sample size.
One chain cannot hop between well-separated modes (e.g. a mixture at σ = 0 whose modes are many
standard deviations apart): for those use the population samplers ``annealed_langevin`` or
``score_corrected_ancestral``.

Both are registered in :mod:`ncmle_prob.samplers` *by name* (``samplers.available()`` lists
them before anything imports this module); ``samplers.get("pyro_mala")`` imports it.
"""

from __future__ import annotations

from typing import Any

import pyro
import torch
from pyro.infer import MCMC
from torch import Tensor

from ..distributions.base import NoiseConditionalDistribution
from .kernels import MALA, AnnealedLangevinKernel, LangevinKernel

__all__ = ["pyro_langevin", "pyro_mala"]


def _run(
    dist: NoiseConditionalDistribution,
    kernel_cls: type[LangevinKernel],
    num_samples: int,
    generator: torch.Generator | None,
    progress: bool,
    warmup_steps: int,
    thin: int,
    **kernel_options: Any,
) -> Tensor:
    if thin < 1:
        raise ValueError(f"thin must be >= 1, got {thin}")
    if bool(dist.is_mass().any()):
        raise ValueError(
            "MCMC needs a density: the distribution is a discretized family at sigma = 0; "
            "bind it to sigma > 0"
        )

    def model() -> Tensor:
        return pyro.sample("x", dist)

    devices = [dist.device] if dist.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if generator is not None:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                                     device=generator.device))
            torch.manual_seed(seed)
        kernel = kernel_cls(model, **kernel_options)
        mcmc = MCMC(kernel, num_samples=num_samples * thin, warmup_steps=warmup_steps,
                    disable_progbar=not progress)
        mcmc.run()
    x = mcmc.get_samples()["x"][::thin]
    return x.detach().to(dtype=dist.dtype)


def pyro_mala(
    dist: NoiseConditionalDistribution,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
    warmup_steps: int = 300,
    thin: int = 1,
    step_size: float = 0.1,
    target_accept: float = 0.574,
) -> Tensor:
    """One MALA chain of ``pyro.infer.MCMC`` (exact for the distribution's log density).

    **Default budget**: 300 warm-up steps, then one step per returned draw; one
    log-prob-and-score pass per step: ``300 / n + 1`` network calls per sample (draws are
    correlated: about 3 steps per effective sample on an isotropic Gaussian).

    Args:
        dist: the target, at its bound σ.
        num_samples: draws returned.
        generator: seeds the chain (Pyro's global RNG, in a forked state).
        progress: Pyro's progress bar.
        warmup_steps: adaptation steps (step size and diagonal preconditioner).
        thin: keep every ``thin``-th draw.
        step_size: initial step size.
        target_accept: acceptance probability targeted by warm-up.
    """
    return _run(dist, MALA, num_samples, generator, progress, warmup_steps, thin,
                step_size=step_size, target_accept=target_accept)


def pyro_langevin(
    dist: NoiseConditionalDistribution,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
    warmup_steps: int = 400,
    thin: int = 1,
    sigma_max: float = 1.0,
    num_levels: int = 10,
    metropolis: bool = True,
) -> Tensor:
    """One annealed-Langevin chain of ``pyro.infer.MCMC`` (annealed warm-up from ``sigma_max``
    down to the bound σ, then Langevin steps at the bound σ).

    **Default budget**: 400 warm-up steps (half of them annealing), then one step per draw:
    ``400 / n + 1`` network calls per sample. The draws are Metropolis-adjusted by default
    (exact); ``metropolis=False`` gives unadjusted steps, biased by the step size.

    Args:
        dist: the target, at its bound σ.
        num_samples: draws returned.
        generator: seeds the chain (Pyro's global RNG, in a forked state).
        progress: Pyro's progress bar.
        warmup_steps: annealing plus adaptation steps.
        thin: keep every ``thin``-th draw.
        sigma_max: first annealing level.
        num_levels: annealing levels.
        metropolis: Metropolis-adjust the draws (exact) instead of unadjusted Langevin.
    """
    target = float(dist.sigma.max())
    sigma_min = max(target, 1e-3)
    return _run(dist, AnnealedLangevinKernel, num_samples, generator, progress, warmup_steps, thin,
                sigma_max=max(sigma_max, sigma_min), sigma_min=sigma_min,
                num_levels=num_levels, metropolis=metropolis,
                # MALA's optimal rate when exact; a high rate bounds ULA's bias otherwise
                target_accept=0.574 if metropolis else 0.8)
