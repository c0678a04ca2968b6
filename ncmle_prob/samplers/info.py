r"""The diagnostics of a sampler run, :class:`SampleInfo`, and how batches combine them.

A request larger than a sampler's ``batch_size`` runs in batches (:mod:`.batching`); the
:class:`SampleInfo` of the whole request is :func:`merge_infos` of the batches' infos: counts
(score evaluations, seconds, iterations) add up, rates are averaged with the batch sizes as
weights, and the settings (levels, step sizes of the first batch) are kept.

Example:
    >>> a = SampleInfo("ancestral", score_evals=2, grid_acceptance=0.5)
    >>> b = SampleInfo("ancestral", score_evals=3, grid_acceptance=0.2)
    >>> m = merge_infos([a, b], [30, 10])
    >>> m.score_evals, round(m.grid_acceptance, 3), m.batches
    (5, 0.425, 2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SampleInfo", "merge_infos"]


@dataclass
class SampleInfo:
    r"""Diagnostics of one sampler run (``sampler.info`` after a call, or
    ``sample(..., return_info=True)``).

    Attributes:
        method: registered name of the sampler.
        sigmas: the annealing noise levels, in the order visited (empty for ancestral).
        step_sizes: the corrector step :math:`\alpha_i` of each level (for an adapted step,
            its final value at that level).
        steps_per_level: corrector steps per level.
        acceptance_rates: per-level mean Metropolis acceptance rate (``None`` without a
            Metropolis-adjusted corrector).
        langevin_time: the total Langevin time :math:`S = \sum_i \sum_t \alpha_{i,t}` of the
            corrector steps (the sum of every step actually taken; :math:`\sum_i T_i\alpha_i`
            for a fixed step). Directions of data variance :math:`\lambda \gtrsim S` cannot
            relax by the corrector alone.
        level_times: the Langevin time :math:`S_i = \sum_t \alpha_{i,t}` spent at each level
            of ``sigmas`` (they add up to ``langevin_time``; ``level_times[0]`` is the time
            at the first level, e.g. σ_start of score-corrected sampling).
        predictor: name of the predictor between levels (``None`` for ancestral).
        corrector: name of the corrector at each level (``None`` for ancestral).
        start_sigma: σ of the initial ancestral draw, if any.
        denoised_at: σ of the final Tweedie step, if one was taken.
        snapped: whether the output was rounded to a discretized family's grid.
        grid_acceptance: acceptance rate of the Metropolis steps on the grid (discretized
            families at σ = 0), ``None`` if none were taken.
        score_evals: number of batched score (log-prob-and-score) evaluations.
        seconds: wall time of the run.
        batches: number of batches the request ran in (see the ``batch_size`` option).
        iterations: parallel passes of the network of a fixed-point (``jacobi``) ancestral
            draw, summed over batches (``None`` if there was none).
        chains: number of Markov chains whose states were returned (MCMC samplers); equal
            to the number of draws when every draw is the end of its own chain.
        effective_sample_size: for draws that are consecutive states of fewer chains than
            draws, the effective sample size of the draws (minimum over dimensions).
    """

    method: str
    sigmas: tuple[float, ...] = ()
    step_sizes: tuple[float, ...] = ()
    steps_per_level: int = 0
    acceptance_rates: tuple[float, ...] | None = None
    langevin_time: float = 0.0
    level_times: tuple[float, ...] = ()
    predictor: str | None = None
    corrector: str | None = None
    start_sigma: float | None = None
    denoised_at: float | None = None
    snapped: bool = False
    grid_acceptance: float | None = None
    score_evals: int = 0
    seconds: float = 0.0
    batches: int = 1
    iterations: int | None = None
    chains: int | None = None
    effective_sample_size: float | None = None


def _weighted(values: Sequence[float | None], sizes: Sequence[int]) -> float | None:
    pairs = [(v, n) for v, n in zip(values, sizes) if v is not None]
    if not pairs:
        return None
    return sum(v * n for v, n in pairs) / sum(n for _, n in pairs)


def merge_infos(infos: Sequence[SampleInfo], sizes: Sequence[int]) -> SampleInfo:
    """The :class:`SampleInfo` of a request run in batches of ``sizes`` draws.

    Counts add up (``score_evals``, ``seconds``, ``iterations``, ``chains``,
    ``effective_sample_size``, ``batches``); acceptance rates are averaged with the batch
    sizes as weights; everything else is the first batch's.
    """
    if len(infos) != len(sizes) or not infos:
        raise ValueError(f"need one size per info, got {len(infos)} infos, {len(sizes)} sizes")
    if len(infos) == 1:
        return infos[0]
    first = infos[0]
    rates = None
    if all(i.acceptance_rates is not None for i in infos):
        levels = len(first.acceptance_rates or ())
        if all(len(i.acceptance_rates or ()) == levels for i in infos):
            rates = tuple(
                float(_weighted([(i.acceptance_rates or ())[k] for i in infos], sizes) or 0.0)
                for k in range(levels)
            )

    def total(name: str) -> float | None:
        vals = [getattr(i, name) for i in infos]
        return None if any(v is None for v in vals) else sum(vals)

    iterations = total("iterations")
    chains = total("chains")
    return dataclasses.replace(
        first,
        acceptance_rates=rates,
        grid_acceptance=_weighted([i.grid_acceptance for i in infos], sizes),
        score_evals=sum(i.score_evals for i in infos),
        seconds=sum(i.seconds for i in infos),
        batches=sum(i.batches for i in infos),
        iterations=None if iterations is None else int(iterations),
        chains=None if chains is None else int(chains),
        effective_sample_size=total("effective_sample_size"),
    )
