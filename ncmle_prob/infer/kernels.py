"""Langevin MCMC kernels for ``pyro.infer.MCMC``: MALA and annealed Langevin.

The annealing ladder of :class:`AnnealedLangevinKernel` comes from the samplers' engine
(:func:`ncmle_prob.samplers.engine.ladder`, the one ladder builder of the library).

Both move every latent site of a Pyro model jointly along the gradient of the model's log
joint density in Pyro's unconstrained space (the *posterior score*, by autograd of the
potential that :func:`pyro.infer.mcmc.util.initialize_model` builds): for a model with a
learned noise-conditional prior and a likelihood this is the exact prior score at the current
σ plus the likelihood score. With a diagonal preconditioner :math:`M` and step :math:`h`,

.. math::

    x' = x + h\\, M \\nabla \\log \\pi(x) + \\sqrt{2h}\\, M^{1/2} \\xi,
    \\qquad \\xi \\sim \\mathcal N(0, I),

accepted with the Metropolis–Hastings probability (MALA) or always (unadjusted Langevin).
Because the prior's ``log_prob`` is exact, the acceptance probability is always computed, and
warm-up adapts the step by dual averaging towards a target acceptance probability — also for
the unadjusted kernel, where a high target keeps its discretisation bias small.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from pyro.infer.mcmc.util import initialize_model
from pyro.ops.integrator import potential_grad
from torch import Tensor

from ..samplers.engine import ladder
from ..samplers.mala import DualAveraging, WarmupWindow, mala_step
from .handlers import noise_level

__all__ = ["MALA", "AnnealedLangevin", "AnnealedLangevinKernel", "LangevinKernel"]


class LangevinKernel(MCMCKernel):
    """Preconditioned (Metropolis-adjusted) Langevin kernel over a Pyro model's potential.

    Warm-up (the ``warmup_steps`` of :class:`pyro.infer.MCMC`) is always Metropolis-adjusted
    and, after an optional annealing phase (see :class:`AnnealedLangevinKernel`), runs
    dual-averaging adaptation of the step towards ``target_accept``; from 15 % to 75 % of it
    the diagonal of the posterior covariance is estimated (Welford) and becomes the
    preconditioner :math:`M`; the step is then re-adapted and frozen at the end of warm-up.

    Args:
        model: a Pyro model (or ``None`` with ``potential_fn``).
        potential_fn: alternatively, a function of a dict of unconstrained tensors returning
            the potential :math:`-\\log \\pi` (then set :attr:`initial_params` before running).
        step_size: initial step :math:`h` (in units of :math:`M`).
        metropolis: apply the Metropolis–Hastings correction (MALA) or not (unadjusted).
        target_accept: target mean acceptance probability during warm-up.
        adapt_step_size: adapt the step during warm-up.
        precondition: learn a diagonal preconditioner during warm-up.
        transforms, max_plate_nesting, init_strategy: as for :class:`pyro.infer.NUTS`.
    """

    def __init__(
        self,
        model: Callable[..., Any] | None = None,
        potential_fn: Callable[[dict[str, Tensor]], Tensor] | None = None,
        *,
        step_size: float = 0.1,
        metropolis: bool = True,
        target_accept: float = 0.574,
        adapt_step_size: bool = True,
        precondition: bool = True,
        transforms: dict[str, Any] | None = None,
        max_plate_nesting: int | None = None,
        init_strategy: Callable[..., Any] = init_to_uniform,
    ) -> None:
        if (model is None) == (potential_fn is None):
            raise ValueError("give exactly one of model and potential_fn")
        if not (isinstance(step_size, (int, float)) and math.isfinite(step_size)
                and step_size > 0):
            raise ValueError(f"step_size must be a positive finite float, got {step_size!r}")
        if not 0.0 < target_accept < 1.0:
            raise ValueError(f"target_accept must be in (0, 1), got {target_accept!r}")
        self.model = model
        self.potential_fn = potential_fn
        self.transforms = transforms
        self.step_size = float(step_size)
        self.metropolis = bool(metropolis)
        self.target_accept = float(target_accept)
        self.adapt_step_size = bool(adapt_step_size)
        self.precondition = bool(precondition)
        self._max_plate_nesting = max_plate_nesting
        self._init_strategy = init_strategy
        self._initial_params: dict[str, Tensor] | None = None
        self._anneal_sigma: float | None = None
        self._user_potential = potential_fn is not None
        self._reset()

    # ------------------------------------------------------------------ MCMCKernel API
    @property
    def initial_params(self) -> dict[str, Tensor]:
        if self._initial_params is None:
            raise ValueError("initial_params are unknown: call setup() or set them first")
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params: dict[str, Tensor]) -> None:
        self._initial_params = params

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        if int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps}")
        self._reset()
        self._warmup_steps = int(warmup_steps)
        self._schedule()
        if self.model is not None:
            init, potential_fn, transforms, _ = initialize_model(
                self._annealed_model,
                args,
                kwargs,
                transforms=self.transforms,
                max_plate_nesting=self._max_plate_nesting,
                init_strategy=self._init_strategy,
                initial_params=self._initial_params,
            )
            self.potential_fn = potential_fn
            self.transforms = transforms
            self._initial_params = init
        elif self.transforms is None:
            self.transforms = {}
        self._set_anneal_level(0)

    def sample(self, params: dict[str, Tensor]) -> dict[str, Tensor]:
        self._set_anneal_level(self._t)
        x = self._flatten(params)
        if self._cache is None or not torch.equal(self._cache[0], x):
            self._cache = (x, *self._logp_grad(x))
        _, logp, grad = self._cache
        out = mala_step(x, logp, grad, self._logp_grad, self.step_size, z=torch.randn_like(x),
                        u=None, event_dims=(-1,), inv_mass=self._inv_mass)
        prop, logp_new, grad_new = out.x, out.log_prob, out.score
        accept_prob = float(out.accept_prob)  # 0 for a divergent proposal
        if not bool(out.finite):
            self._divergences.append(self._t)
        warm = self._t < self._warmup_steps
        # warm-up is always Metropolis-adjusted: too-large trial steps of the step-size search
        # must not throw the chain (and the preconditioner estimate) off
        moved = accept_prob > 0 and (
            not (self.metropolis or warm) or float(torch.rand(())) < accept_prob
        )
        if warm:
            self._adapt(x, accept_prob)
        else:
            self._accept_cnt += int(moved)
            self._accept_prob_sum += accept_prob
        self._t += 1
        self._mean_accept_prob += (accept_prob - self._mean_accept_prob) / self._t
        if moved:
            self._cache = (prop, logp_new.detach(), grad_new)
            return self._unflatten(prop)
        return params

    def end_warmup(self) -> None:
        self._set_anneal_level(self._warmup_steps)

    def logging(self) -> OrderedDict[str, str]:
        return OrderedDict(
            [("step size", f"{self.step_size:.2e}"), ("acc. prob", f"{self._mean_accept_prob:.3f}")]
        )

    def diagnostics(self) -> dict[str, Any]:
        """Acceptance rate (draws that moved), mean acceptance probability, step size,
        divergent (non-finite) proposals and the preconditioner, after warm-up."""
        n = max(self._t - self._warmup_steps, 1)
        return {
            "divergences": list(self._divergences),
            "acceptance rate": self._accept_cnt / n,
            "mean accept prob": self._accept_prob_sum / n,
            "step size": self.step_size,
            "inverse mass diag": self._inv_mass.tolist() if self._inv_mass.numel() else [],
        }

    def posterior_score(self, params: dict[str, Tensor]) -> dict[str, Tensor]:
        """:math:`\\nabla \\log \\pi` at unconstrained ``params`` (autograd of the potential)."""
        grads, _ = potential_grad(self._potential, {k: v.detach() for k, v in params.items()})
        return {k: -g for k, g in grads.items()}

    # ------------------------------------------------------------------ internals
    def _reset(self) -> None:
        self._t = 0
        self._warmup_steps = 0
        self._accept_cnt = 0
        self._accept_prob_sum = 0.0
        self._mean_accept_prob = 0.0
        self._divergences: list[int] = []
        self._cache: tuple[Tensor, Tensor, Tensor] | None = None
        self._inv_mass = torch.empty(0)
        self._keys: list[str] = []
        self._shapes: list[torch.Size] = []
        self._window = WarmupWindow(0)
        self._da = DualAveraging(math.log(self.step_size))
        self._anneal_steps = 0

    def _schedule(self) -> None:
        adapt = self._warmup_steps - self._anneal_steps
        self._adapt_start = self._anneal_steps
        self._window = WarmupWindow(adapt, start=self._adapt_start)

    def _annealed_model(self, *args: Any, **kwargs: Any) -> Any:
        assert self.model is not None
        if self._anneal_sigma is None:
            return self.model(*args, **kwargs)
        with noise_level(self._anneal_sigma):
            return self.model(*args, **kwargs)

    def _set_anneal_level(self, t: int) -> None:  # overridden by AnnealedLangevinKernel
        pass

    def _potential(self, z: dict[str, Tensor]) -> Tensor:
        assert self.potential_fn is not None
        return self.potential_fn(z)

    def _flatten(self, params: dict[str, Tensor]) -> Tensor:
        if not self._keys:
            self._keys = sorted(params)
            self._shapes = [params[k].shape for k in self._keys]
            ref = params[self._keys[0]]
            size = sum(params[k].numel() for k in self._keys)
            self._inv_mass = torch.ones(size, dtype=ref.dtype, device=ref.device)
        return torch.cat([params[k].detach().reshape(-1) for k in self._keys])

    def _unflatten(self, x: Tensor) -> dict[str, Tensor]:
        out, i = {}, 0
        for k, shape in zip(self._keys, self._shapes):
            n = math.prod(shape)
            out[k] = x[i : i + n].reshape(shape)
            i += n
        return out

    def _logp_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        grads, energy = potential_grad(self._potential, self._unflatten(x.clone()))
        grad = torch.cat([grads[k].reshape(-1) for k in self._keys])
        return -energy.detach(), -grad.detach()

    def _adapt(self, x: Tensor, accept_prob: float) -> None:
        t = self._t
        if t < self._adapt_start:  # annealing phase: Robbins–Monro on log h
            if self.adapt_step_size:
                self.step_size *= math.exp(0.1 * (accept_prob - self.target_accept))
            return
        if t == self._adapt_start:
            self._da = DualAveraging(math.log(self.step_size))
        if self.adapt_step_size:
            self.step_size = math.exp(self._da.step(self.target_accept, accept_prob))
        if self.precondition:
            self._window.update(t, x)
            if self._window.closes(t):
                self._inv_mass = self._window.inv_mass().to(x)
                self._cache = None
                self._da = DualAveraging(math.log(self.step_size))
        if t == self._warmup_steps - 1 and self.adapt_step_size:
            self.step_size = math.exp(self._da.log_step_avg)


class MALA(LangevinKernel):
    """Metropolis-adjusted Langevin algorithm (exact for the model's posterior).

    Example:
        >>> import pyro
        >>> from pyro.infer import MCMC
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> def model():
        ...     pyro.sample("x", NoisyGaussian(torch.zeros(2), torch.eye(2)))
        >>> pyro.set_rng_seed(0)
        >>> mcmc = MCMC(MALA(model), num_samples=200, warmup_steps=100, disable_progbar=True)
        >>> mcmc.run()
        >>> mcmc.get_samples()["x"].shape
        torch.Size([200, 2])
    """

    def __init__(self, model: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("metropolis", True)
        super().__init__(model, **kwargs)


class AnnealedLangevinKernel(LangevinKernel):
    """Annealed Langevin dynamics (Song & Ermon, 2019) over a Pyro model's potential.

    The first ``anneal_fraction`` of warm-up walks a geometric ladder
    :math:`\\sigma_1 = \\sigma_\\max > \\dots > \\sigma_L = \\sigma_\\min` with every
    noise-conditional site rebound by :class:`~ncmle_prob.infer.noise_level` (the annealed
    posterior :math:`p(x \\mid \\sigma_i)\\,p(y \\mid x)`), starting each level with the step
    scaled by :math:`\\sigma_i^2/\\sigma_{i-1}^2` as in Song & Ermon and adapting it on the
    way. The rest of warm-up and all draws use the model's own σ (its target posterior), with
    unadjusted steps by default: the step is adapted towards a high would-be acceptance
    probability (``target_accept=0.8``), which bounds the discretisation bias; pass
    ``metropolis=True`` for exact (annealed-start MALA) draws.

    Args:
        model: a Pyro model.
        sigma_max: first annealing level.
        sigma_min: last annealing level.
        num_levels: number of levels :math:`L`.
        anneal_fraction: share of warm-up spent annealing.
        **kwargs: as for :class:`LangevinKernel`.

    Example:
        >>> import pyro
        >>> from pyro.infer import MCMC
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> def model():
        ...     pyro.sample("x", NoisyGaussian(torch.zeros(2), torch.eye(2)))
        >>> pyro.set_rng_seed(0)
        >>> kernel = AnnealedLangevinKernel(model, sigma_max=3.0, num_levels=5)
        >>> mcmc = MCMC(kernel, num_samples=100, warmup_steps=100, disable_progbar=True)
        >>> mcmc.run()
        >>> mcmc.get_samples()["x"].shape
        torch.Size([100, 2])
    """

    def __init__(
        self,
        model: Callable[..., Any] | None = None,
        *,
        sigma_max: float = 1.0,
        sigma_min: float = 0.01,
        num_levels: int = 10,
        anneal_fraction: float = 0.5,
        **kwargs: Any,
    ) -> None:
        if not (0 < sigma_min <= sigma_max and math.isfinite(sigma_max)):
            raise ValueError(
                f"need 0 < sigma_min <= sigma_max (finite), got sigma_min={sigma_min!r}, "
                f"sigma_max={sigma_max!r}"
            )
        if int(num_levels) != num_levels or num_levels < 1:
            raise ValueError(f"num_levels must be a positive integer, got {num_levels!r}")
        if not 0.0 <= anneal_fraction < 1.0:
            raise ValueError(f"anneal_fraction must be in [0, 1), got {anneal_fraction!r}")
        kwargs.setdefault("metropolis", False)
        kwargs.setdefault("target_accept", 0.8)
        self.sigmas: Sequence[float] = ladder(float(sigma_max), float(sigma_min), int(num_levels))
        self.anneal_fraction = float(anneal_fraction)
        self._level = -1
        super().__init__(model, **kwargs)

    def _schedule(self) -> None:
        per = int(self.anneal_fraction * self._warmup_steps) // len(self.sigmas)
        self._per_level = per
        self._anneal_steps = per * len(self.sigmas)
        self._level = -1
        super()._schedule()

    def _set_anneal_level(self, t: int) -> None:
        if self._per_level == 0 or t >= self._anneal_steps:
            level, sigma = len(self.sigmas), None
        else:
            level = t // self._per_level
            sigma = self.sigmas[level]
        if level != self._level:
            if 0 <= self._level < len(self.sigmas) and sigma is not None:
                self.step_size *= (sigma / self.sigmas[self._level]) ** 2
            self._level = level
            self._anneal_sigma = sigma
            self._cache = None


class AnnealedLangevin(AnnealedLangevinKernel):
    """Deprecated alias of :class:`AnnealedLangevinKernel` (kept for one release; the name
    ``AnnealedLangevin`` belongs to the sampler :class:`ncmle_prob.samplers.AnnealedLangevin`).
    """

    def __init__(self, model: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        from .._deprecated import warn_once

        warn_once("ncmle_prob.infer.AnnealedLangevin", "AnnealedLangevinKernel")
        super().__init__(model, **kwargs)
