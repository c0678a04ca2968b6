r"""The predictor–corrector annealing engine shared by every annealing sampler.

On a decreasing ladder :math:`\sigma_1 > \dots > \sigma_L` (the last level may be the target
σ = 0 itself when the distribution has a score there), :func:`anneal` runs, for each level,
:math:`T` corrector steps on :math:`p(\cdot\mid\sigma_i)` (:mod:`.correctors`) and then one
predictor step to :math:`\sigma_{i+1}` (:mod:`.predictors`):

.. math::

    x \xrightarrow{\ T \text{ corrector steps at } \sigma_i\ } x
    \xrightarrow{\ \text{predictor } \sigma_i \to \sigma_{i+1}\ } x.

``annealed_langevin``, ``score_corrected_ancestral`` and the ladders of the Pyro kernel
:class:`~ncmle_prob.infer.AnnealedLangevinKernel` all use this module (:func:`ladder` is the one
ladder builder).

**Step rules** (the corrector step :math:`\alpha` of each level):

* ``adapt``: start from the previous level's step (the first level from
  :math:`\alpha = D^{2/3}/\overline{\|s\|^2}`, about :math:`c\,D^{-1/3}` on a Gaussian of
  variance :math:`c`) and after every step update
  :math:`\log\alpha \leftarrow \log\alpha + \gamma(\bar a - a^*)`, :math:`\gamma = 2`, with
  :math:`\bar a` the mean acceptance probability over the chains and :math:`a^*` =
  ``target_accept`` (0.574, the optimal rate of MALA). With all chains sharing one step the
  batch mean is a precise signal; the adapted step of each level goes to
  :class:`~ncmle_prob.samplers.SampleInfo`. The default of the MALA corrector.
* ``snr``: score_sde's signal-to-noise rule, :math:`\alpha = 2\,(r\,\|z\|/\|s\|)^2` with the
  norms averaged over the chains, :math:`\|z\| = \sqrt D` and :math:`r` = ``snr`` (0.16 in
  score_sde). The default of the Langevin corrector.
* ``fixed``: an explicit :math:`\alpha_i` per level (a float for every level, or a sequence).
* ``technique4``: Song & Ermon (2020), :math:`\alpha_i = \varepsilon\sigma_i^2/\sigma_L^2`
  (:func:`~ncmle_prob.samplers.schedules.langevin_step_size`), kept for comparison. It
  assumes the data are one point: its total Langevin time is small, and directions of data
  variance above it stay frozen at their starting spread.

**Langevin time.** A direction of variance :math:`\lambda` relaxes under Langevin dynamics
about as :math:`e^{-S/\lambda}` after a time :math:`S = \sum_i\sum_t \alpha_{i,t}`; the engine
reports :math:`S` so that a run can be judged by it.

Example:
    >>> import torch
    >>> from ncmle_prob.distributions import NoisyGaussian
    >>> d = NoisyGaussian(torch.zeros(2), 0.5 * torch.eye(2))   # N(0, 0.5 I) at sigma = 0
    >>> g = torch.Generator().manual_seed(0)
    >>> x0 = torch.randn(4000, 2, generator=g)                   # exact at sigma = 0.71
    >>> out = anneal(d, x0, ladder(0.71, 0.0, 4), generator=g)
    >>> out.sigmas[-1], round(float(out.x.var(0).mean()), 1), out.langevin_time > 1.0
    (0.0, 0.5, True)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from .correctors import Chain, Level, corrector_is_metropolis, get_corrector
from .predictors import get_predictor
from .protocol import SamplerDivergenceError
from .schedules import geometric_ladder, langevin_step_size

__all__ = ["STEP_RULES", "AnnealResult", "anneal", "at_level", "ladder"]

#: The step rules of :func:`anneal`.
STEP_RULES = ("adapt", "snr", "fixed", "technique4")
_GAIN = 2.0  # gamma of the adapt rule: a step 10x too large is fixed within ~2 steps


def ladder(
    start: float, end: float, num_levels: int, *, floor: float = 0.01
) -> list[float]:
    r"""The annealing levels from ``start`` down to ``end`` (the one ladder builder).

    ``num_levels`` geometric levels from ``start`` to ``end`` when ``end > 0``; when
    ``end == 0`` (a continuous target with a score at σ = 0) the geometric part ends at
    ``min(floor, start)`` and the level 0 is appended (``num_levels + 1`` levels). A start at
    or below the end gives the end alone.

    Example:
        >>> ladder(1.0, 0.01, 3)
        [1.0, 0.1, 0.01]
        >>> ladder(1.0, 0.0, 3)
        [1.0, 0.1, 0.01, 0.0]
    """
    if not (math.isfinite(start) and start > 0 and math.isfinite(end) and end >= 0):
        raise ValueError(f"need start > 0 and end >= 0 (finite), got start={start}, end={end}")
    if end == 0:
        return [*ladder(start, min(floor, start), num_levels), 0.0]
    if start <= end or num_levels == 1:
        return [float(end)]
    return geometric_ladder(start, end, num_levels).tolist()


def at_level(dist: NoiseConditionalDistribution, sigma: float) -> NoiseConditionalDistribution:
    """``dist`` rebound to one noise level, keeping its ``batch_shape``: ``dist.at_levels(
    [sigma])[0]`` (a plain ``dist.at(float)`` drops the batch dims that a tensor-bound σ
    contributed). To walk several levels bind them all at once with
    :meth:`~ncmle_prob.distributions.NoiseConditionalDistribution.at_levels` (one check)."""
    return dist.at_levels([float(sigma)])[0]


@dataclass
class AnnealResult:
    """What :func:`anneal` returns.

    Attributes:
        x: the final states.
        chain: the final states with their log density and score at the last level.
        sigmas: the levels visited.
        step_sizes: the (final) corrector step of each level.
        acceptance_rates: mean Metropolis acceptance probability of each level (``None``
            for a corrector without Metropolis test).
        langevin_time: :math:`S = \\sum_{i,t}\\alpha_{i,t}`.
        evals: batched ``log_prob_and_score`` evaluations.
        level_times: :math:`S_i = \\sum_t \\alpha_{i,t}`, the Langevin time of each level
            (they add up to ``langevin_time``).
    """

    x: Tensor
    chain: Chain
    sigmas: tuple[float, ...]
    step_sizes: tuple[float, ...]
    acceptance_rates: tuple[float, ...] | None
    langevin_time: float
    evals: int
    level_times: tuple[float, ...] = ()


def _diverged(level: int, sigma: float, alpha: float, detail: str) -> SamplerDivergenceError:
    return SamplerDivergenceError(
        f"Langevin chain diverged at level {level} (sigma={sigma:.4g}, step alpha={alpha:.4g}): "
        f"{detail}. The step size is too large for this score: lower option 'step_size' (for "
        f"an exact noisy density alpha < 2 (v + sigma^2) is stable), or use corrector='mala'"
    )


def _not_finite(level: int, sigma: float, detail: str) -> SamplerDivergenceError:
    return SamplerDivergenceError(
        f"the model's density is not finite at level {level} (sigma={sigma:.4g}): {detail}. "
        "This is the model, not the step size: a model trained by MLE only has no trained "
        "noisy levels (train it with the NCMLE objective), or the draws reached a region where "
        "its log-density overflows"
    )


def _fixed_steps(
    rule: str, sigmas: Sequence[float], steps: int, step_size: float | Sequence[float] | None
) -> list[float] | None:
    if rule == "fixed":
        if step_size is None:
            raise ValueError("step_rule 'fixed' needs step_size (a float or one per level)")
        if isinstance(step_size, (int, float)):
            return [float(step_size)] * len(sigmas)
        alphas = [float(a) for a in step_size]
        if len(alphas) != len(sigmas):
            raise ValueError(f"got {len(sigmas)} levels but {len(alphas)} step sizes")
        return alphas
    if rule == "technique4":
        positive = [s for s in sigmas if s > 0]
        last = positive[-1]
        if step_size is None:
            ratio = positive[0] / positive[1] if len(positive) > 1 else 2.0
            eps = langevin_step_size(last, max(ratio, 1.0), steps)
        else:
            eps = float(step_size)
        return [eps * max(s, last) ** 2 / last**2 for s in sigmas]
    return None


def anneal(
    dist: NoiseConditionalDistribution,
    x: Tensor,
    sigmas: Sequence[float],
    *,
    predictor: str = "reverse_diffusion",
    corrector: str = "mala",
    steps_per_level: int = 10,
    step_rule: str = "adapt",
    step_size: float | Sequence[float] | None = None,
    snr: float = 0.16,
    target_accept: float = 0.574,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "anneal",
    levels: Sequence[NoiseConditionalDistribution] | None = None,
) -> AnnealResult:
    r"""Predictor–corrector annealing of ``x`` down ``sigmas`` (see the module docstring).

    ``x`` is taken as a draw at ``sigmas[0]``. Cost: one batched ``log_prob_and_score`` per
    level to start it (which also validates ``x`` once) plus one per corrector step; the
    predictor reuses the score the corrector leaves.

    Args:
        dist: a noise-conditional distribution with a score at every level.
        x: start, shape ``(N, *batch_shape, *event_shape)`` (not modified).
        sigmas: the levels, decreasing (:func:`ladder`).
        predictor: a name from :func:`~ncmle_prob.samplers.predictors`.
        corrector: a name from :func:`~ncmle_prob.samplers.correctors`.
        steps_per_level: corrector steps :math:`T` per level.
        step_rule: ``"adapt"``, ``"snr"``, ``"fixed"`` or ``"technique4"``.
        step_size: :math:`\alpha` for ``fixed`` (a float, or one per level); the
            :math:`\varepsilon` of ``technique4`` (``None``: Song & Ermon's choice); the
            first level's initial step for ``adapt`` (``None``: from the score).
        snr: the signal-to-noise ratio :math:`r` of the ``snr`` rule.
        target_accept: the acceptance probability ``adapt`` aims at.
        generator: optional generator on the distribution's device.
        progress: show a tqdm bar.
        desc: label of the bar.
        levels: ``dist`` already bound to every level of ``sigmas``
            (``dist.at_levels(sigmas)``, which is what the engine does when ``None``): σ is
            validated once for the whole ladder, never level by level.

    Raises:
        ValueError: bad levels or options.
        SamplerDivergenceError: the chains became non-finite or exploded (unadjusted steps).
    """
    from tqdm.auto import tqdm

    if step_rule not in STEP_RULES:
        raise ValueError(f"step_rule must be one of {list(STEP_RULES)}, got {step_rule!r}")
    sig = [float(s) for s in sigmas]
    if not sig or any(not (math.isfinite(s) and s >= 0) for s in sig) or any(
        a <= b for a, b in itertools.pairwise(sig)
    ):
        raise ValueError(f"sigmas must be finite, >= 0 and strictly decreasing, got {sig}")
    if sig[0] == 0 and step_rule == "technique4":
        raise ValueError("step_rule 'technique4' needs a positive level")
    if isinstance(steps_per_level, bool) or not isinstance(steps_per_level, int) or (
        steps_per_level < 0
    ):
        raise ValueError(f"steps_per_level must be an integer >= 0, got {steps_per_level!r}")
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept!r}")
    if levels is None:
        levels = dist.at_levels(sig)  # the one σ check of the run
    elif len(levels) != len(sig):
        raise ValueError(f"got {len(sig)} levels but {len(levels)} bound distributions")
    step = get_corrector(corrector)
    predict = get_predictor(predictor)
    metropolis = corrector_is_metropolis(corrector)
    steps = 0 if corrector == "none" else steps_per_level
    fixed = _fixed_steps(step_rule, sig, steps, step_size)
    k = len(dist.event_shape)
    event_dims = tuple(range(-k, 0))
    d = math.prod(dist.event_shape)
    alpha = float(step_size) if step_rule == "adapt" and step_size is not None else None
    alphas: list[float] = []
    rates: list[float] = []
    level_times: list[float] = []
    total_time, evals = 0.0, 0
    x = x.detach()
    bar = tqdm(total=len(sig) * steps, desc=desc, disable=not progress, leave=False)
    try:
        with torch.no_grad():
            for i, sigma in enumerate(sig):
                lvl = Level(levels[i], sigma, event_dims, generator)
                lp, g = lvl.dist.log_prob_and_score(x)  # validates x once per level
                x = x.expand(g.shape)
                evals += 1
                chain = Chain(x, lp, g)
                # one host sync per level: the largest |x| and whether lp and g are finite
                bad = ~torch.isfinite(lp) | ~torch.isfinite(g).flatten(lp.dim()).all(-1)
                start, n_bad = torch.stack([x.abs().amax(), bad.sum().to(x.dtype)]).tolist()
                if n_bad:
                    raise _not_finite(i + 1, sigma, f"its log-density or score is not finite at "
                                      f"{int(n_bad)} of the {lp.numel()} draws")
                if fixed is not None:
                    alpha = fixed[i]
                elif alpha is None:
                    alpha = d ** (2.0 / 3.0) / max(float((g * g).sum(event_dims).mean()), 1e-30)
                acc_sum, level_time = 0.0, 0.0
                for _ in range(steps):
                    if step_rule == "snr":
                        gnorm = float(torch.linalg.vector_norm(
                            chain.score.reshape(*chain.score.shape[: chain.score.dim() - k], -1),
                            dim=-1).mean())
                        alpha = 2.0 * (snr * math.sqrt(d) / max(gnorm, 1e-30)) ** 2
                    if not (alpha > 0 and math.isfinite(alpha)):
                        raise ValueError(f"level {i + 1}: the step must be finite and > 0, "
                                         f"got {alpha}")
                    chain, a = step(lvl, chain, alpha)
                    level_time += alpha
                    a_mean = float(a.mean())
                    acc_sum += a_mean
                    if step_rule == "adapt":
                        alpha *= math.exp(_GAIN * (a_mean - target_accept))
                    bar.update(1)
                evals += lvl.evals
                total_time += level_time
                level_times.append(level_time)
                alphas.append(float(alpha) if alpha is not None else 0.0)
                rates.append(acc_sum / steps if steps else math.nan)
                x = chain.x
                end = float(x.abs().amax())
                if not math.isfinite(end):
                    raise _diverged(i + 1, sigma, alphas[-1], "the samples became NaN or infinite")
                if end > 100.0 * (start + 10.0 * max(sigma, 1.0)):
                    raise _diverged(i + 1, sigma, alphas[-1],
                                    f"max |x| grew from {start:.3g} to {end:.3g} within the level")
                if i + 1 < len(sig):
                    x = predict(x, chain.score, sigma, sig[i + 1],
                              lambda lvl=lvl, x=x: lvl.normal(x))
    finally:
        bar.close()
    return AnnealResult(
        x=x, chain=chain, sigmas=tuple(sig), step_sizes=tuple(alphas),
        acceptance_rates=tuple(rates) if metropolis and steps else None,
        langevin_time=total_time, evals=evals, level_times=tuple(level_times),
    )
