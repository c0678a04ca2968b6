r"""The one Metropolis-adjusted Langevin (MALA) step of the library, its step-size adapter and
its warm-up window.

The annealing corrector (:mod:`.correctors`), batched restoration
(:func:`ncmle_prob.infer.batched_mala.batched_mala`) and the Pyro kernel
(:class:`ncmle_prob.infer.LangevinKernel`) all move with :func:`mala_step`. With step
:math:`h` (a scalar, or one per chain) and an optional diagonal preconditioner :math:`M`,

.. math::

    y = x + h M \nabla\log\pi(x) + \sqrt{2h}\, M^{1/2} z, \qquad
    \log a = \log\pi(y) - \log\pi(x) + \log q(x\mid y) - \log q(y\mid x),

with :math:`q(y\mid x) = \mathcal N(y;\ x + hM\nabla\log\pi(x),\ 2hM)`. A proposal whose
:math:`\log a` or gradient is not finite gets :math:`\log a = -\infty` (never accepted) and is
reported as divergent. Each caller draws its own noise (one generator, one per chain, or
torch's global one), so the step itself is deterministic given ``z`` and ``u``.

:class:`DualAveraging` (Hoffman & Gelman 2014, Algorithm 5; Pyro's constants) adapts
:math:`\log h` towards a target acceptance probability, for a float or a tensor of steps;
:class:`WarmupWindow` estimates :math:`M` from 15 % to 75 % of warm-up (Stan's regularised
diagonal variance), after which the step is re-adapted.

Example:
    >>> import torch
    >>> def log_density(x):                      # N(0, I) in 2-D, four chains
    ...     return -0.5 * (x * x).sum(-1), -x
    >>> x = torch.zeros(4, 2)
    >>> lp, g = log_density(x)
    >>> z, u = torch.randn(4, 2), torch.rand(4)
    >>> out = mala_step(x, lp, g, log_density, 0.5, z=z, u=u, event_dims=(-1,))
    >>> out.x.shape, out.accept_prob.shape, bool(out.finite.all())
    (torch.Size([4, 2]), torch.Size([4]), True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["DualAveraging", "MALAStep", "WarmupWindow", "mala_step"]

#: ``log_density(x) -> (log π(x), ∇ log π(x))``, batched over the leading dims of ``x``.
LogDensity = Callable[[Tensor], tuple[Tensor, Tensor]]


@dataclass
class MALAStep:
    """The outcome of :func:`mala_step`.

    Attributes:
        x, log_prob, score: the chains after the step (the proposal where accepted).
        accept_prob: :math:`\\min(1, a)` per chain (0 for a divergent proposal).
        accepted: whether each chain moved.
        finite: whether each proposal was finite (``False``: divergent).
    """

    x: Tensor
    log_prob: Tensor
    score: Tensor
    accept_prob: Tensor
    accepted: Tensor
    finite: Tensor


def _lift(t: Tensor | float, k: int) -> Tensor | float:
    """A per-chain tensor with ``k`` trailing singleton dims (floats pass through)."""
    return t.reshape(t.shape + (1,) * k) if isinstance(t, Tensor) and t.dim() else t


def mala_step(
    x: Tensor,
    log_prob: Tensor,
    score: Tensor,
    log_density: LogDensity,
    step: float | Tensor,
    *,
    z: Tensor,
    u: Tensor | None,
    event_dims: tuple[int, ...],
    inv_mass: Tensor | None = None,
) -> MALAStep:
    r"""One (preconditioned) MALA step of every chain (see the module docstring).

    Args:
        x: states ``(*chains, *event)``.
        log_prob: :math:`\log\pi(x)`, shape ``chains``.
        score: :math:`\nabla\log\pi(x)`, shaped like ``x``.
        log_density: the target, evaluated once on the proposal.
        step: :math:`h > 0`, a float or one per chain (shape ``chains``).
        z: standard normal noise shaped like ``x``.
        u: uniform noise of shape ``chains`` for the Metropolis test; ``None``: always move
            (unadjusted Langevin; the acceptance probability is still reported).
        event_dims: the event dims of ``x`` (negative indices).
        inv_mass: diagonal preconditioner :math:`M`, broadcasting against ``x`` (e.g. one
            per chain ``(*chains, *event)``, or ``event``).

    Returns:
        :class:`MALAStep`.
    """
    k = len(event_dims)
    h = _lift(step, k)
    hm = h * inv_mass if inv_mass is not None else h
    y = x + hm * score + torch.sqrt(2.0 * hm) * z if isinstance(hm, Tensor) else (
        x + hm * score + math.sqrt(2.0 * hm) * z)
    logp_y, score_y = log_density(y)
    back = x - y - hm * score_y
    log_q_back = -(back * back / hm).sum(event_dims) / 4.0 if k else -(back * back / hm) / 4.0
    log_q_fwd = -0.5 * (z * z).sum(event_dims) if k else -0.5 * z * z
    log_a = logp_y - log_prob + log_q_back - log_q_fwd
    # a non-finite score at y makes log_q_back (hence log_a) NaN or -inf, so this one test
    # also rejects proposals whose score is not finite
    finite = torch.isfinite(log_a)
    log_a = log_a.masked_fill(~finite, -math.inf)
    accept_prob = log_a.clamp(max=0.0).exp()
    if u is None:
        return MALAStep(y, logp_y, score_y, accept_prob, torch.ones_like(finite), finite)
    accepted = u < accept_prob
    acc_x = accepted.reshape(accepted.shape + (1,) * k)
    return MALAStep(torch.where(acc_x, y, x), torch.where(accepted, logp_y, log_prob),
                    torch.where(acc_x, score_y, score), accept_prob, accepted, finite)


class DualAveraging:
    r"""Dual averaging of :math:`\log h` towards a target acceptance probability (Hoffman &
    Gelman 2014, Algorithm 5, with Pyro's constants), for a float or a tensor of steps.

    Args:
        log_step: the initial :math:`\log h` (the prox-centre is :math:`\log 10h`).

    Example:
        >>> da = DualAveraging(math.log(0.1))
        >>> for _ in range(200):
        ...     _ = da.step(0.574, 0.9)   # accepting too often: the step grows
        >>> math.exp(da.log_step_avg) > 0.1
        True
    """

    def __init__(self, log_step: float | Tensor, gamma: float = 0.05, t0: float = 10.0,
                 kappa: float = 0.75) -> None:
        self.mu = log_step + math.log(10.0)
        self.gamma, self.t0, self.kappa = gamma, t0, kappa
        self.t = 0
        self.h_bar: float | Tensor = 0.0 * log_step
        self.log_step_avg: float | Tensor = 0.0 * log_step

    def step(self, target: float, accept_prob: float | Tensor) -> float | Tensor:
        """One update with the latest acceptance probability; returns the new :math:`\\log h`."""
        self.t += 1
        w = 1.0 / (self.t + self.t0)
        self.h_bar = (1 - w) * self.h_bar + w * (target - accept_prob)
        log_h = self.mu - math.sqrt(self.t) / self.gamma * self.h_bar
        eta = self.t ** (-self.kappa)
        self.log_step_avg = eta * log_h + (1 - eta) * self.log_step_avg
        return log_h


class WarmupWindow:
    """The preconditioner window of warm-up: from 15 % to 75 % of the adaptation steps.

    Call :meth:`update` with every warm-up state; :meth:`closes` says when the window has just
    ended (then read :meth:`inv_mass` and restart the step adaptation).

    Args:
        steps: adaptation steps (after any annealing phase).
        start: the step at which adaptation begins.

    Example:
        >>> w = WarmupWindow(100)
        >>> (w.lo, w.hi), w.enabled
        ((15, 75), True)
    """

    def __init__(self, steps: int, start: int = 0) -> None:
        self.lo, self.hi = start + int(0.15 * steps), start + int(0.75 * steps)
        self.enabled = self.hi - self.lo >= 10
        self._s1: Tensor | None = None
        self._s2: Tensor | None = None

    def update(self, t: int, x: Tensor) -> None:
        """Adds state ``x`` (taken at step ``t``) if ``t`` lies in the window."""
        if self.lo <= t < self.hi:
            x = x.detach()
            self._s1 = x if self._s1 is None else self._s1 + x
            self._s2 = x * x if self._s2 is None else self._s2 + x * x

    def closes(self, t: int) -> bool:
        """Whether step ``t`` is the window's last (and the window is long enough)."""
        return self.enabled and t == self.hi - 1

    def inv_mass(self) -> Tensor:
        """Stan's regularised diagonal variance of the window's states,
        :math:`\\frac{n}{n+5}\\hat v + 10^{-3}\\frac{5}{n+5}`."""
        assert self._s1 is not None and self._s2 is not None
        n = self.hi - self.lo
        var = (self._s2 - self._s1 * self._s1 / n) / (n - 1)
        return (n / (n + 5.0)) * var.clamp_min(0) + 1e-3 * (5.0 / (n + 5.0))
