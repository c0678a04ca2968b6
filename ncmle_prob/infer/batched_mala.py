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


class _DualAveraging:
    """Vectorised dual averaging of log step sizes (Hoffman & Gelman 2014, Algorithm 5)."""

    def __init__(self, log_h0: Tensor, gamma: float = 0.05, t0: float = 10.0,
                 kappa: float = 0.75) -> None:
        self.mu = log_h0 + math.log(10.0)
        self.gamma, self.t0, self.kappa = gamma, t0, kappa
        self.t = 0
        self.h_bar = torch.zeros_like(log_h0)
        self.log_h_avg = torch.zeros_like(log_h0)

    def step(self, target: float, accept: Tensor) -> Tensor:
        self.t += 1
        w = 1.0 / (self.t + self.t0)
        self.h_bar = (1 - w) * self.h_bar + w * (target - accept)
        log_h = self.mu - math.sqrt(self.t) / self.gamma * self.h_bar
        eta = self.t ** (-self.kappa)
        self.log_h_avg = eta * log_h + (1 - eta) * self.log_h_avg
        return log_h


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
    da = _DualAveraging(h.log())
    lo, hi = int(0.15 * warmup_steps), int(0.75 * warmup_steps)
    s1, s2 = torch.zeros(b, d, device=dev, dtype=dt), torch.zeros(b, d, device=dev, dtype=dt)
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
        hh = h[:, None] * inv_mass
        mean_fwd = x + hh * grad
        prop = mean_fwd + torch.sqrt(2 * hh) * z
        logp_new, grad_new = log_density(prop)
        mean_bwd = prop + hh * grad_new
        log_q_fwd = -((prop - mean_fwd) ** 2 / hh).sum(-1) / 4
        log_q_bwd = -((x - mean_bwd) ** 2 / hh).sum(-1) / 4
        log_alpha = logp_new - logp + log_q_bwd - log_q_fwd
        finite = torch.isfinite(log_alpha) & torch.isfinite(grad_new).all(-1)
        log_alpha = torch.where(finite, log_alpha, torch.full_like(log_alpha, -math.inf))
        alpha = log_alpha.clamp(max=0).exp()
        move = u < alpha
        x = torch.where(move[:, None], prop, x)
        logp = torch.where(move, logp_new, logp)
        grad = torch.where(move[:, None], grad_new, grad)
        if warm:
            h = da.step(target_accept, alpha).exp()
            if precondition and lo <= t < hi:
                s1, s2 = s1 + x, s2 + x * x
            if precondition and t == hi - 1 and hi - lo >= 10:
                n = hi - lo
                var = (s2 - s1 * s1 / n) / (n - 1)
                inv_mass = (n / (n + 5.0)) * var.clamp_min(0) + 1e-3 * (5.0 / (n + 5.0))
                da = _DualAveraging(h.log())
            if t == warmup_steps - 1:
                h = da.log_h_avg.exp()
        else:
            draws[:, t - warmup_steps] = x
            accepted += move.to(dt)
            prob_sum += alpha
            divergent += (~finite).long()
    n = max(int(num_samples), 1)
    return BatchedMALAResult(draws, h, accepted / n, prob_sum / n, divergent)
