"""Annealed Langevin dynamics (Song & Ermon, 2019) with an optional Metropolis adjustment.

On a decreasing ladder :math:`\\sigma_1 > \\dots > \\sigma_L`, each level runs :math:`T` steps
of unadjusted Langevin dynamics (ULA) on :math:`p(\\cdot \\mid \\sigma_i)` with the exact score,

.. math::

    x \\leftarrow x + \\alpha_i \\nabla_x \\log p(x \\mid \\sigma_i) + \\sqrt{2\\alpha_i}\\, z,
    \\qquad z \\sim \\mathcal N(0, I), \\qquad \\alpha_i = \\varepsilon\\,
    \\sigma_i^2 / \\sigma_L^2,

and the last level may be followed by a Tweedie step :math:`x + \\sigma_L^2
\\nabla_x\\log p(x\\mid\\sigma_L)`.

**Metropolis adjustment (MALA).** Because :math:`\\log p(x\\mid\\sigma)` is exact (not only
its gradient), each step can be accepted with probability

.. math::

    a = \\min\\Big(1,\\; \\frac{p(y\\mid\\sigma_i)\\, q(x \\mid y)}{p(x\\mid\\sigma_i)\\,
    q(y\\mid x)}\\Big), \\qquad q(y\\mid x) = \\mathcal N\\big(y;\\; x + \\alpha_i\\nabla_x
    \\log p(x\\mid\\sigma_i),\\; 2\\alpha_i I\\big),

which makes every level's chain exact for :math:`p(\\cdot\\mid\\sigma_i)` at any step size (no
discretisation bias: ULA's stationary variance on a Gaussian of variance :math:`v` is
:math:`v / (1 - \\alpha/2v)` instead of :math:`v`). Score-only models cannot do this. One
step costs one forward and one backward pass either way (log p and its gradient come from the
same pass); the per-level acceptance rates are reported in :class:`SampleInfo`.

**Step sizes.** ULA on a density whose negative log has curvature at most :math:`L` is stable
for :math:`\\alpha < 2/L`. For a density of noisy data :math:`q_\\sigma = q * \\mathcal N(0,
\\sigma^2 I)` the curvature is at most :math:`1/\\sigma^2`, so :math:`\\alpha_i < 2\\sigma_i^2`
(``step_size`` :math:`< 2\\sigma_L^2`) is always stable for an exact score; the default
``step_size=None`` uses Song & Ermon's technique 4
(:func:`~ncmle_prob.samplers.schedules.langevin_step_size`), about :math:`0.03\\,\\sigma_L^2`
for 100 steps per level. A learned score can be rougher: a chain that diverges (non-finite
values, or values growing 100× beyond their level's start) raises
:class:`~ncmle_prob.samplers.SamplerDivergenceError` naming the level and step size; NaN is
never returned.

**Grid data.** For a discretized family bound to σ = 0 the score does not exist at σ = 0, so
the ladder ends at ``sigma_min`` > 0; the Tweedie step then estimates the clean data and
``snap`` rounds it to the grid (the support of the distribution at σ = 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from .registry import SampleInfo, Sampler, SamplerDivergenceError, option, register
from .schedules import geometric_ladder, langevin_step_size
from .tweedie import snap_to_grid, tweedie_denoise

__all__ = ["AnnealedLangevin", "anneal", "at_level", "finish", "resolve_target"]


def at_level(dist: NoiseConditionalDistribution, sigma: float) -> NoiseConditionalDistribution:
    """``dist`` rebound to one noise level, keeping its ``batch_shape`` (a plain
    ``dist.at(float)`` drops the batch dims that a tensor-bound σ contributed)."""
    s = torch.full(dist.batch_shape, float(sigma), dtype=dist.dtype, device=dist.device)
    return dist.at(s)


def resolve_target(dist: NoiseConditionalDistribution, sigma: float | None) -> float:
    """The target noise level: ``sigma`` if given, else the distribution's bound σ (which must
    then be one value, not several over the batch)."""
    if sigma is not None:
        return float(sigma)
    s = dist.sigma.reshape(-1)
    if s.numel() == 0:
        return 0.0
    if s.numel() > 1 and not bool((s == s[0]).all()):
        raise ValueError(
            f"the distribution is bound to several noise levels (sigma of shape "
            f"{tuple(dist.sigma.shape)}); a Langevin sampler needs one target: pass sigma="
        )
    return float(s[0])


def _has_closed_form_score(dist: NoiseConditionalDistribution) -> bool:
    return type(dist)._score is not NoiseConditionalDistribution._score


def _value_and_score(
    dist: NoiseConditionalDistribution, x: Tensor, s: Tensor, closed_form: bool
) -> tuple[Tensor, Tensor]:
    """``(log p(x | s), score)`` from one forward and one backward pass."""
    if closed_form:
        return dist._log_prob(x, s), dist._score(x, s, create_graph=False)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        lp = dist._log_prob(xg, s)
        (g,) = torch.autograd.grad(lp.sum(), xg)
    return lp.detach(), g


def _diverged(level: int, sigma: float, alpha: float, detail: str) -> SamplerDivergenceError:
    return SamplerDivergenceError(
        f"Langevin chain diverged at level {level} (sigma={sigma:.4g}, step alpha={alpha:.4g}): "
        f"{detail}. The step size is too large for this score: lower option 'step_size' "
        f"(alpha_i = step_size * sigma_i^2 / sigma_L^2 must stay below 2 / curvature; for an "
        f"exact noisy density alpha_i < 2 sigma_i^2 is stable), or use metropolis=True"
    )


def anneal(
    dist: NoiseConditionalDistribution,
    x: Tensor,
    sigmas: Sequence[float],
    step_sizes: Sequence[float],
    steps_per_level: int,
    *,
    metropolis: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "langevin",
) -> tuple[Tensor, list[float] | None]:
    """Runs Langevin (or MALA) levels from ``x``; the building block of the Langevin samplers.

    Args:
        dist: a noise-conditional distribution (its score must exist at every level).
        x: start, shape ``(N, *batch_shape, *event_shape)`` (not modified).
        sigmas: noise levels, visited in order.
        step_sizes: :math:`\\alpha_i` of each level.
        steps_per_level: :math:`T`.
        metropolis: Metropolis-adjust each step (MALA).
        generator: optional generator on the distribution's device.
        progress: show a tqdm bar.
        desc: label of the bar.

    Returns:
        ``(x, acceptance_rates)``: the final state and, with ``metropolis``, the mean
        acceptance rate of each level (``None`` otherwise).

    Example:
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> d = NoisyGaussian(torch.zeros(2), torch.eye(2))
        >>> g = torch.Generator().manual_seed(0)
        >>> x, acc = anneal(d, torch.zeros(500, 2), [1.0], [0.5], 50, metropolis=True,
        ...                 generator=g)
        >>> 0.6 < acc[0] < 1.0, bool((x.var(0) - 2.0).abs().max() < 0.5)
        (True, True)
    """
    from tqdm.auto import tqdm

    if len(sigmas) != len(step_sizes):
        raise ValueError(f"got {len(sigmas)} sigmas but {len(step_sizes)} step sizes")
    k = len(dist.event_shape)
    event_dims = tuple(range(-k, 0))
    closed_form = _has_closed_form_score(dist)
    x = x.detach().clone()
    rates: list[float] = []
    shape, dtype, device = x.shape, dist.dtype, dist.device
    bar = tqdm(total=len(sigmas) * steps_per_level, desc=desc, disable=not progress, leave=False)
    try:
        with torch.no_grad():
            for level, (sig, alpha) in enumerate(zip(sigmas, step_sizes), start=1):
                if not (sig > 0 and alpha > 0 and math.isfinite(alpha)):
                    raise ValueError(
                        f"level {level}: need sigma > 0 and a finite step > 0, got sigma={sig}, "
                        f"alpha={alpha}"
                    )
                s_level = torch.tensor(float(sig), dtype=dtype, device=device)
                x, s = dist._prepare(x, s_level)  # validates x once per level
                x = x.contiguous().clone()
                start = float(x.abs().amax())
                noise = math.sqrt(2.0 * alpha)
                if not metropolis:
                    for _ in range(steps_per_level):
                        g = dist._score(x, s, create_graph=False)
                        z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
                        x.add_(g, alpha=alpha).add_(z, alpha=noise)
                        bar.update(1)
                else:
                    accepted = torch.zeros((), dtype=torch.float64, device=device)
                    lp, g = _value_and_score(dist, x, s, closed_form)
                    for _ in range(steps_per_level):
                        z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
                        y = x + alpha * g + noise * z
                        lp_y, g_y = _value_and_score(dist, y, s, closed_form)
                        back = x - y - alpha * g_y
                        log_q_back = -(back * back).sum(event_dims) / (4.0 * alpha)
                        log_q_fwd = -0.5 * (z * z).sum(event_dims)
                        log_a = torch.nan_to_num(
                            lp_y - lp + log_q_back - log_q_fwd, nan=-math.inf
                        )
                        u = torch.rand(lp.shape, generator=generator, dtype=dtype, device=device)
                        acc = torch.log(u) < log_a
                        acc_x = acc.reshape(acc.shape + (1,) * k)
                        x = torch.where(acc_x, y, x)
                        g = torch.where(acc_x, g_y, g)
                        lp = torch.where(acc, lp_y, lp)
                        accepted += acc.sum()
                        bar.update(1)
                    rates.append(float(accepted) / max(1, lp.numel() * steps_per_level))
                end = float(x.abs().amax())
                if not math.isfinite(end):
                    raise _diverged(level, sig, alpha, "the samples became NaN or infinite")
                if end > 100.0 * (start + 10.0 * sig):
                    raise _diverged(
                        level, sig, alpha,
                        f"max |x| grew from {start:.3g} to {end:.3g} within the level",
                    )
    finally:
        bar.close()
    return x, (rates if metropolis else None)


def finish(
    dist: NoiseConditionalDistribution,
    x: Tensor,
    last_sigma: float,
    target: float,
    denoise: bool | None,
    snap: bool,
    info: SampleInfo,
) -> Tensor:
    """The final step shared by the Langevin samplers: Tweedie at ``last_sigma`` (by default
    when the target is σ = 0) and, for a discretized family targeted at σ = 0, grid snapping."""
    if denoise if denoise is not None else target == 0:
        x = tweedie_denoise(dist, x, last_sigma)
        info.denoised_at = float(last_sigma)
        info.score_evals += 1
    if snap and target == 0 and dist.discrete_at_zero and dist.bins is not None:
        x = snap_to_grid(x, dist.bins)
        info.snapped = True
    return x


def step_sizes_for(
    ladder: Sequence[float], steps_per_level: int, step_size: float | None
) -> list[float]:
    """:math:`\\alpha_i = \\varepsilon\\sigma_i^2/\\sigma_L^2`, with :math:`\\varepsilon` from
    technique 4 when ``step_size`` is ``None`` (ratio 2 for a single level)."""
    last = ladder[-1]
    if step_size is None:
        ratio = ladder[0] / ladder[1] if len(ladder) > 1 else 2.0
        step_size = langevin_step_size(last, max(ratio, 1.0), steps_per_level)
    return [step_size * s * s / (last * last) for s in ladder]


class _LangevinOptions(Protocol):
    name: str
    steps_per_level: int
    step_size: float | None
    metropolis: bool
    denoise: bool | None
    snap: bool


def anneal_and_finish(
    sampler: _LangevinOptions,
    dist: NoiseConditionalDistribution,
    x: Tensor,
    ladder: Sequence[float],
    target: float,
    *,
    start_sigma: float | None,
    generator: torch.Generator | None,
    progress: bool,
) -> tuple[Tensor, SampleInfo]:
    """Anneals ``x`` down ``ladder`` with the sampler's Langevin options, then applies the
    final Tweedie step / grid snap; shared by every sampler built on annealed Langevin."""
    steps, metropolis = sampler.steps_per_level, sampler.metropolis
    alphas = step_sizes_for(ladder, steps, sampler.step_size)
    x, rates = anneal(
        dist, x, ladder, alphas, steps, metropolis=metropolis,
        generator=generator, progress=progress, desc=sampler.name,
    )
    info = SampleInfo(
        sampler.name, tuple(ladder), tuple(alphas), steps,
        None if rates is None else tuple(rates), start_sigma=start_sigma,
        score_evals=len(ladder) * (steps + int(metropolis)),
    )
    x = finish(dist, x, ladder[-1], target, sampler.denoise, sampler.snap, info)
    return x, info


def _check_common(sampler: Sampler, names: Sequence[str]) -> None:
    for name in names:
        value = getattr(sampler, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"option {name!r} must be finite and > 0, got {value!r}")
    for name in ("num_levels", "steps_per_level"):
        if hasattr(sampler, name) and getattr(sampler, name) < 1:
            raise ValueError(f"option {name!r} must be >= 1, got {getattr(sampler, name)!r}")
    sigma = getattr(sampler, "sigma", None)
    if sigma is not None and not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"option 'sigma' must be finite and >= 0, got {sigma!r}")


@register("annealed_langevin")
class AnnealedLangevin(Sampler):
    """Annealed Langevin dynamics from ``sigma_max`` down to the target σ.

    The ladder is geometric from ``sigma_max`` to the target σ (default: the distribution's
    bound σ) or, when the target is 0, to ``sigma_min`` followed by a Tweedie step. The
    defaults (σ from 1 to 0.01 in 10 levels, 100 steps each, technique-4 step size) suit data
    scaled to about [-1, 1], the range of :class:`~ncmle_prob.objectives.NoiseLevelPrior`'s
    default training levels; see the samplers guide for tuning.

    Args:
        sigma_max: first (largest) level; technique 1 suggests the largest pairwise data
            distance (:func:`~ncmle_prob.samplers.schedules.sigma_max_from_data`).
        sigma_min: last level when the target is σ = 0.
        num_levels: ladder length L (1: run at the target level only).
        steps_per_level: Langevin steps T per level.
        step_size: ε of :math:`\\alpha_i = \\varepsilon\\sigma_i^2/\\sigma_L^2`; ``None``:
            technique 4.
        sigma: target noise level; ``None``: the distribution's bound σ.
        init: start ``"gaussian"`` (N(0, σ₁²I)), ``"uniform"`` (U[-1, 1]) or ``"ancestral"``
            (exact draws at σ₁).
        metropolis: Metropolis-adjust every step (MALA); acceptance rates go to ``info``.
        denoise: final Tweedie step; ``None``: only when the target is σ = 0.
        snap: round to a discretized family's grid when the target is σ = 0.

    Example:
        >>> from ncmle_prob import samplers
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> d = NoisyGaussian(torch.zeros(2), 0.25 * torch.eye(2))
        >>> g = torch.Generator().manual_seed(0)
        >>> x, info = samplers.sample(d, 256, "annealed_langevin", num_levels=5,
        ...                           steps_per_level=20, generator=g, return_info=True)
        >>> x.shape, len(info.sigmas), info.denoised_at
        (torch.Size([256, 2]), 5, 0.01)
    """

    sigma_max: float = option(1.0, "largest noise level (technique 1: max pairwise distance)")
    sigma_min: float = option(0.01, "last level when the target sigma is 0")
    num_levels: int = option(10, "number of levels of the geometric ladder")
    steps_per_level: int = option(100, "Langevin steps per level")
    step_size: float | None = option(
        None, "epsilon of alpha_i = epsilon sigma_i^2 / sigma_L^2 (default: technique 4)"
    )
    sigma: float | None = option(None, "target noise level (default: the bound sigma)")
    init: Literal["gaussian", "uniform", "ancestral"] = option("gaussian", "initial state")
    metropolis: bool = option(False, "Metropolis-adjust every step (MALA)")
    denoise: bool | None = option(None, "final Tweedie step (default: when the target is 0)")
    snap: bool = option(True, "round to the grid at sigma = 0 (discretized families)")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_common(self, ("sigma_max", "sigma_min", "step_size"))

    def ladder(self, target: float) -> list[float]:
        """The noise levels visited for a given target σ."""
        end = target if target > 0 else self.sigma_min
        if self.num_levels > 1 and not self.sigma_max > end:
            raise ValueError(
                f"option 'sigma_max' ({self.sigma_max}) must exceed the last level {end} "
                f"(the target sigma, or sigma_min for a target of 0)"
            )
        return geometric_ladder(self.sigma_max, end, self.num_levels).tolist()

    def initial(
        self, dist: NoiseConditionalDistribution, num_samples: int, sigma: float,
        generator: torch.Generator | None,
    ) -> Tensor:
        """The initial state for a first level ``sigma``."""
        shape = (num_samples, *dist.batch_shape, *dist.event_shape)
        kw = {"generator": generator, "dtype": dist.dtype, "device": dist.device}
        if self.init == "gaussian":
            return sigma * torch.randn(shape, **kw)
        if self.init == "uniform":
            return 2.0 * torch.rand(shape, **kw) - 1.0
        return at_level(dist, sigma).sample((num_samples,), generator=generator)

    def run(
        self,
        dist: NoiseConditionalDistribution,
        num_samples: int,
        *,
        generator: torch.Generator | None,
        progress: bool,
    ) -> tuple[Tensor, SampleInfo]:
        target = resolve_target(dist, self.sigma)
        ladder = self.ladder(target)
        x = self.initial(dist, num_samples, ladder[0], generator)
        return anneal_and_finish(
            self, dist, x, ladder, target,
            start_sigma=ladder[0] if self.init == "ancestral" else None,
            generator=generator, progress=progress,
        )
