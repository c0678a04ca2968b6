r"""Score-corrected ancestral sampling: ancestral draws at a moderate noise level, then
predictor–corrector annealing with the exact score down to the target.

Ancestral sampling is exact for the model, but every conditional sees inputs produced by the
model itself, so the model's errors compound along the order and nothing can go back. At a
moderate noise level :math:`\sigma_\text{start}` the density is smooth, easy to learn, and
its errors are masked by the noise. From there the engine (:mod:`.engine`) anneals down a short
geometric ladder :math:`\sigma_\text{start} = \sigma_1 > \dots > \sigma_L`, moving *all*
dimensions jointly with the exact joint score :math:`\nabla_x\log p_\theta(x\mid\sigma_i)`
(one forward and one backward pass per step): a predictor between levels, a corrector (by
default MALA with the exact :math:`\log p_\theta`, which a score-only model cannot do) at
each level,

.. math::

    x^{(1)} \sim p_\theta(\cdot\mid\sigma_\text{start}) \text{ (ancestral)}, \quad
    x^{(i)} \xrightarrow{T \text{ MALA steps at } \sigma_i,\ \text{reverse diffusion to }
    \sigma_{i+1}} x^{(i+1)}.

For continuous data the ladder ends at σ = 0 itself; for grid data at half a bin, followed by
Tweedie's step, snapping and exact Metropolis steps on the grid.
:meth:`ScoreCorrectedAncestral.refine` runs the correction alone from any start (e.g. draws of
another model).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ..distributions import NoiseConditionalAutoregressive, NoiseConditionalDistribution
from .annealing import AnnealingSampler, resolve_target
from .engine import ladder
from .jacobi import fixed_point_draw
from .option_types import option
from .registry import register

__all__ = ["ScoreCorrectedAncestral"]


@register("score_corrected_ancestral")
class ScoreCorrectedAncestral(AnnealingSampler):
    r"""Ancestral draws at ``sigma_start``, predictor–corrector annealing down to the target.

    **Default budget**: one ancestral draw at σ = 0.3 (D sequential forward passes), then
    ``num_levels`` = 10 geometric levels from 0.3 to 0.01 plus the level σ = 0 for a continuous
    target at 0, each :math:`1 + T` = 11 batched log-prob-and-score calls: **D forwards + 121
    network calls per sample** (110 at a target σ > 0 or on grid data, plus 100 forwards of
    grid Metropolis there).

    Args:
        sigma_start: noise level of the ancestral draw, the first level.
        num_levels: geometric levels from ``sigma_start`` to the last positive level.
        initial: ``"jacobi"`` makes the initial draw by parallel fixed-point iteration
            (:mod:`.jacobi`: the same draws, ``iterations`` in the info); for distributions
            that are not autoregressive it falls back to ``dist.sample``.

    The predictor–corrector options (``predictor``, ``corrector``, ``steps_per_level``,
    ``step_rule``, ``step_size``, ``snr``, ``target_accept``, ``sigma``, ``sigma_min``,
    ``denoise``, ``snap``, ``grid_steps``) are shared, see
    :class:`~ncmle_prob.samplers.AnnealingOptions`.

    Example:
        >>> from ncmle_prob import samplers
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> d = NoisyGaussian(torch.zeros(2), 0.25 * torch.eye(2))
        >>> g = torch.Generator().manual_seed(0)
        >>> x, info = samplers.sample(d, 100, "score_corrected_ancestral", generator=g,
        ...                           return_info=True)
        >>> x.shape, info.start_sigma, info.sigmas[-1], info.corrector
        (torch.Size([100, 2]), 0.3, 0.0, 'mala')
    """

    sigma_start: float = option(0.3, "noise level of the initial ancestral draw")
    num_levels: int = option(10, "levels from sigma_start to the last positive level")
    initial: Literal["ancestral", "jacobi"] = option(
        "ancestral", "how the initial draw at sigma_start is made: ancestral, or jacobi (the "
        "same draws by parallel fixed-point passes)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.sigma_start > 0 and self.sigma_start < float("inf")):
            raise ValueError(
                f"option 'sigma_start' must be finite and > 0, got {self.sigma_start!r}")

    def ladder(self, dist: NoiseConditionalDistribution, target: float) -> list[float]:
        """The levels for a given target σ; the first is ``sigma_start`` (or the target itself
        when the target is not below ``sigma_start``: then the draw is made at the target and
        the corrector steps run there)."""
        end, _ = self.finish_plan(dist, target)
        if target == 0 and end > 0 and not self.sigma_start > end:
            raise ValueError(
                f"option 'sigma_start' ({self.sigma_start}) must exceed 'sigma_min' ({end}), "
                f"the last level for a target of sigma = 0"
            )
        return ladder(max(self.sigma_start, end), end, self.num_levels)

    def refine(
        self,
        dist: NoiseConditionalDistribution,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> Tensor:
        """The correction alone: annealing from ``x`` (treated as a draw at the first level)
        down to the target, then the final step. Diagnostics go to :attr:`info`."""
        target = resolve_target(dist, self.sigma)
        _, denoise = self.finish_plan(dist, target)
        sigmas = self.ladder(dist, target)
        x, self.info = self.run_annealing(
            dist, x, sigmas, target, denoise, start_sigma=sigmas[0],
            generator=generator, progress=progress, name=self.name,
        )
        return x

    def start(
        self, first: NoiseConditionalDistribution, sigma: float, num_samples: int,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, float | None, dict[str, object]]:
        """The ancestral (or Jacobi) draw at the first level ``sigma``."""
        passes = None
        if self.initial == "jacobi" and isinstance(first, NoiseConditionalAutoregressive):
            x, passes = fixed_point_draw(first, num_samples, generator=generator)
        else:
            x = first.sample((num_samples,), generator=generator)
        return x, sigma, {"iterations": passes}
