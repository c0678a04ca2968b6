"""The chains behind :func:`~ncmle_prob.infer.restore`: the Pyro model of a linear-Gaussian
observation, the batched MALA chains and the Pyro chains, and the Tweedie average.

Split from :mod:`ncmle_prob.infer.inverse` (which documents the math); the names are re-exported
there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyro
import pyro.distributions as pdist
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_value
from torch import Tensor

from .._registry import NamedRegistry
from ..distributions.base import NoiseConditionalDistribution
from ..distributions.validation import describe_shape
from .batched_mala import batched_mala
from .kernels import MALA, AnnealedLangevinKernel

__all__ = ["RESTORE_KERNELS", "Operator", "RestoreKernel", "RestoreResult",
           "linear_gaussian_model", "register_restore_kernel"]

Operator = Tensor | Callable[[Tensor], Tensor]


def linear_gaussian_model(
    prior: NoiseConditionalDistribution, operator: Operator | None, noise_std: float
) -> Callable[[Tensor], Tensor]:
    """The Pyro model ``x ~ prior``, ``y ~ N(A x, noise_std² I)`` (``obs=y``), one image.

    Args:
        prior: the prior, bound to its σ (event shape ``(D,)`` or an image shape).
        operator: ``A`` as a ``(M, D)`` matrix, a callable on flat ``x (..., D)``, or
            ``None`` for the identity.
        noise_std: :math:`\\tau > 0`.
    """
    if not isinstance(prior, NoiseConditionalDistribution):
        raise TypeError(f"prior must be a NoiseConditionalDistribution, got {type(prior).__name__}")
    if not (math.isfinite(noise_std) and noise_std > 0):
        raise ValueError(f"noise_std must be a positive finite float, got {noise_std!r}")
    apply = _as_callable(operator, math.prod(prior.event_shape))

    def model(y: Tensor) -> Tensor:
        x = pyro.sample("x", prior)
        pyro.sample("y", pdist.Normal(apply(x.reshape(-1)), noise_std).to_event(1), obs=y)
        return x

    return model


@dataclass
class RestoreResult:
    """Output of :func:`restore`.

    Attributes:
        mean: posterior mean of the clean image :math:`E[x_0 \\mid y]`, shape of ``y``'s batch
            plus the prior's event shape.
        samples: posterior draws of :math:`x_{\\sigma_p}`, ``(B, num_samples, *event)``.
        diagnostics: one dict per image from the kernel.
        psnr: PSNR of ``mean`` against the clean images (dB, ``(B,)``), when they were given.
    """

    mean: Tensor
    samples: Tensor
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    psnr: Tensor | None = None


@dataclass(frozen=True)
class RestoreKernel:
    """A posterior sampler of :func:`~ncmle_prob.infer.restore`, registered by name.

    Attributes:
        run: ``run(prior, ys, operator, noise_std, x_init, num_samples, warmup_steps, seed,
            progress, options) -> RestoreResult`` for a batch of images ``ys (B, M)``.
        batched: whether one call runs the chains of a whole batch of images (else
            ``restore`` calls it one image at a time); a batched kernel gets a seed.
    """

    run: Callable[..., RestoreResult]
    batched: bool


#: The restore kernels, by name (kind ``"restore kernel"`` of :mod:`ncmle_prob._registry`).
#: Their names never collide with sampler or corrector names: ``batched_mala`` and the
#: ``mcmc_*`` kernels (one :class:`pyro.infer.MCMC` per image).
RESTORE_KERNELS = NamedRegistry("restore kernel")


def register_restore_kernel(name: str, *, batched: bool = False) -> Callable[[Any], Any]:
    """Decorator registering a restore kernel's ``run`` function (see :class:`RestoreKernel`).

    Raises:
        ValueError: the name is taken or not an identifier.
    """
    add = RESTORE_KERNELS.register(name)

    def decorate(run: Callable[..., RestoreResult]) -> Callable[..., RestoreResult]:
        add(RestoreKernel(run, batched))
        return run

    return decorate


def _clean_mean(prior: NoiseConditionalDistribution, x: Tensor) -> Tensor:
    """Average over draws ``x (B, S, *event)`` of the prior's Tweedie map, batched over B."""
    s_p = float(prior.sigma.max())
    if s_p == 0:
        return x.mean(1)
    total = torch.zeros_like(x[:, 0])
    for s in range(x.shape[1]):
        _, score = prior.log_prob_and_score(x[:, s], validate=False)
        total += x[:, s] + s_p**2 * score
    return total / x.shape[1]


@register_restore_kernel("batched_mala", batched=True)
def _restore_batched(
    prior: NoiseConditionalDistribution, ys: Tensor, operator: Operator | None,
    noise_std: float, x_init: Tensor, num_samples: int, warmup_steps: int, seed: int,
    progress: bool, options: dict[str, Any],
) -> RestoreResult:
    if not (math.isfinite(noise_std) and noise_std > 0):
        raise ValueError(f"noise_std must be a positive finite float, got {noise_std!r}")
    event, b = prior.event_shape, ys.shape[0]
    d = math.prod(event)
    apply = _as_callable(operator, d)
    inv_var = 1.0 / noise_std**2

    def log_density(x: Tensor) -> tuple[Tensor, Tensor]:
        lp, score = prior.log_prob_and_score(x.reshape((b, *event)), validate=False)
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            r = ys - apply(xr)
            ll = -0.5 * inv_var * (r * r).sum(-1)
            (g,) = torch.autograd.grad(ll.sum(), xr)
        return lp.detach() + ll.detach(), score.reshape(b, d) + g

    res = batched_mala(log_density, x_init, num_samples=num_samples,
                       warmup_steps=warmup_steps, seeds=[seed + i for i in range(b)],
                       progress=progress, **options)
    x = res.samples.reshape((b, num_samples, *event))
    diags = [{"acceptance rate": float(res.acceptance_rate[i]),
              "mean accept prob": float(res.mean_accept_prob[i]),
              "step size": float(res.step_size[i]),
              "divergences": int(res.divergences[i]), "seed": seed + i} for i in range(b)]
    return RestoreResult(mean=_clean_mean(prior, x), samples=x, diagnostics=diags)


def _restore_pyro(
    prior: NoiseConditionalDistribution, ys: Tensor, operator: Operator | None,
    noise_std: float, x_init: Tensor, num_samples: int, warmup_steps: int,
    progress: bool, options: dict[str, Any], make_kernel: Callable[..., Any],
) -> RestoreResult:
    event = prior.event_shape
    model = linear_gaussian_model(prior, operator, noise_std)
    draws, diags = [], []
    for b in range(ys.shape[0]):
        strategy = init_to_value(values={"x": x_init[b].reshape(event)})
        k = make_kernel(model, init_strategy=strategy, **options)
        mcmc = MCMC(k, num_samples=num_samples, warmup_steps=warmup_steps,
                    disable_progbar=not progress)
        mcmc.run(ys[b])
        draws.append(mcmc.get_samples()["x"].reshape((num_samples, *event)))
        diags.append(k.diagnostics() if hasattr(k, "diagnostics") else {})
    x = torch.stack(draws)
    return RestoreResult(mean=_clean_mean(prior, x), samples=x, diagnostics=diags)


def _pyro_kernel(make_kernel: Callable[..., Any]) -> Callable[..., RestoreResult]:
    def run(prior: NoiseConditionalDistribution, ys: Tensor, operator: Operator | None,
            noise_std: float, x_init: Tensor, num_samples: int, warmup_steps: int,
            seed: int | None, progress: bool, options: dict[str, Any]) -> RestoreResult:
        return _restore_pyro(prior, ys, operator, noise_std, x_init, num_samples, warmup_steps,
                             progress, options, make_kernel)

    return run


register_restore_kernel("mcmc_mala")(_pyro_kernel(MALA))
register_restore_kernel("mcmc_annealed_langevin")(_pyro_kernel(AnnealedLangevinKernel))
register_restore_kernel("mcmc_nuts")(_pyro_kernel(NUTS))


def _as_callable(operator: Operator | None, d: int) -> Callable[[Tensor], Tensor]:
    if operator is None:
        return lambda x: x
    if isinstance(operator, Tensor):
        if operator.dim() != 2 or operator.shape[1] != d:
            raise ValueError(
                f"operator must be a (M, {d}) matrix, got {describe_shape(operator.shape)}"
            )
        return lambda x: x @ operator.T
    if callable(operator):
        return operator
    raise TypeError(f"operator must be a tensor, a callable or None, got {type(operator).__name__}")
