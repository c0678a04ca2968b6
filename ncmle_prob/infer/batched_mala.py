r"""Batched MALA: one independent Metropolis-adjusted Langevin chain per image, in one tensor.

The Pyro kernels of :mod:`ncmle_prob.infer.kernels` run one chain over all latent sites with
one acceptance test and one step size; putting ``B`` images in one Pyro chain would make
their acceptance a product of ``B`` ratios and the step shrink with ``B``. Here every chain
``b`` has its own state :math:`x_b`, step :math:`h_b`, diagonal preconditioner :math:`M_b`,
acceptance test and random stream, while the target's log density and gradient are evaluated
for all chains in one batched call:

.. math::

    x_b' = x_b + h_b M_b \nabla \log\pi_b(x_b) + \sqrt{2 h_b}\, M_b^{1/2} \xi_b, \qquad
    \alpha_b = \min\Big(1, \frac{\pi_b(x_b')\, q(x_b \mid x_b')}{\pi_b(x_b)\, q(x_b' \mid x_b)}
    \Big).

Warm-up adapts :math:`\log h_b` by dual averaging (Hoffman & Gelman, 2014) towards
``target_accept`` and, from 15 % to 75 % of warm-up, estimates each chain's marginal variances
(regularised as in Stan) as :math:`M_b`; the step is then re-adapted. Chain ``b`` draws its
noise from its own generator seeded with ``seeds[b]``, so a chain gives the same draws whether
it runs alone or in a batch (up to floating-point differences of the batched target).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..samplers.mala import DualAveraging, WarmupWindow, mala_step

__all__ = ["BatchedMALAResult", "batched_mala"]

LogDensity = Callable[[Tensor], tuple[Tensor, Tensor]]


@dataclass
class BatchedMALAResult:
    """Draws ``(B, num_samples, D)`` and per-chain diagnostics (tensors of shape ``(B,)``)."""

    samples: Tensor
    step_size: Tensor
    acceptance_rate: Tensor
    mean_accept_prob: Tensor
    divergences: Tensor


def batched_mala(
    log_density: LogDensity,
    init: Tensor,
    *,
    num_samples: int,
    warmup_steps: int,
    seeds: Sequence[int],
    step_size: float = 0.1,
    target_accept: float = 0.574,
    precondition: bool = True,
    progress: bool = False,
) -> BatchedMALAResult:
    r"""Runs ``B`` independent MALA chains on targets :math:`\pi_b`, batched.

    Args:
        log_density: maps ``x (B, D)`` to ``(log π_b(x_b) (B,), ∇ log π_b(x_b) (B, D))``;
            chain ``b`` only ever sees row ``b``.
        init: ``(B, D)`` starting points.
        num_samples: draws kept per chain (after warm-up).
        warmup_steps: adaptation steps per chain (not kept).
        seeds: ``B`` seeds, one random stream per chain.
        step_size: initial step :math:`h`.
        target_accept: warm-up target of the mean acceptance probability.
        precondition: learn a diagonal preconditioner per chain in warm-up.
        progress: show a tqdm bar of the steps.

    Returns:
        :class:`BatchedMALAResult`.

    Example:
        >>> def log_density(x):  # chain b targets N(b, 1) in 2-D
        ...     mu = torch.arange(x.shape[0], dtype=x.dtype)[:, None]
        ...     return -0.5 * ((x - mu) ** 2).sum(-1), mu - x
        >>> out = batched_mala(log_density, torch.zeros(3, 2), num_samples=2000,
        ...                    warmup_steps=300, seeds=[0, 1, 2])
        >>> out.samples.shape, out.samples.mean((1, 2)).round().tolist()
        (torch.Size([3, 2000, 2]), [0.0, 1.0, 2.0])
    """
    if not isinstance(init, Tensor) or init.dim() != 2:
        raise ValueError(f"init must be a (B, D) tensor, got "
                         f"{tuple(init.shape) if isinstance(init, Tensor) else type(init)}")
    b, d = init.shape
    if len(seeds) != b:
        raise ValueError(f"seeds must give one seed per chain ({b}), got {len(seeds)}")
    for name, v in (("num_samples", num_samples), ("warmup_steps", warmup_steps)):
        if int(v) != v or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a positive finite float, got {step_size!r}")
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept!r}")
    dev, dt = init.device, init.dtype
    gens = [torch.Generator(device=dev).manual_seed(int(s)) for s in seeds]

    def noise() -> tuple[Tensor, Tensor]:
        z = torch.stack([torch.randn(d, generator=g, device=dev, dtype=dt) for g in gens])
        u = torch.stack([torch.rand((), generator=g, device=dev, dtype=dt) for g in gens])
        return z, u

    x = init.detach().clone()
    logp, grad = log_density(x)
    h = torch.full((b,), float(step_size), device=dev, dtype=dt)
    inv_mass = torch.ones(b, d, device=dev, dtype=dt)
    da = DualAveraging(h.log())
    window = WarmupWindow(int(warmup_steps))
    draws = torch.empty(b, int(num_samples), d, device=dev, dtype=dt)
    accepted = torch.zeros(b, device=dev, dtype=dt)
    prob_sum = torch.zeros(b, device=dev, dtype=dt)
    divergent = torch.zeros(b, dtype=torch.long, device=dev)
    from tqdm.auto import tqdm

    steps = tqdm(range(int(warmup_steps) + int(num_samples)), desc="mala", unit="step",
                 disable=not progress, leave=False, dynamic_ncols=True)
    for t in steps:
        warm = t < warmup_steps
        z, u = noise()
        out = mala_step(x, logp, grad, log_density, h, z=z, u=u, event_dims=(-1,),
                        inv_mass=inv_mass)
        x, logp, grad = out.x, out.log_prob, out.score
        if warm:
            h = da.step(target_accept, out.accept_prob).exp()
            if precondition:
                window.update(t, x)
                if window.closes(t):
                    inv_mass = window.inv_mass()
                    da = DualAveraging(h.log())
            if t == warmup_steps - 1:
                h = da.log_step_avg.exp()
        else:
            draws[:, t - warmup_steps] = x
            accepted += out.accepted.to(dt)
            prob_sum += out.accept_prob
            divergent += (~out.finite).long()
    n = max(int(num_samples), 1)
    return BatchedMALAResult(draws, h, accepted / n, prob_sum / n, divergent)
