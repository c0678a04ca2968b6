"""Score-corrected ancestral sampling: ancestral draws at a moderate noise level, then
annealed Langevin steps with the exact score down to the target, then Tweedie.

Ancestral sampling is exact for the model, but every conditional sees inputs produced by the
model itself, so the model's errors compound along the order and nothing can go back. At a
moderate noise level :math:`\\sigma_\\text{start}` the density is smooth, easy to learn, and
its errors are masked by the noise. From there, Langevin steps on :math:`p_\\theta(\\cdot\\mid
\\sigma_i)` for a short geometric ladder :math:`\\sigma_\\text{start} = \\sigma_1 > \\dots >
\\sigma_L` move *all* dimensions jointly, repeatedly, with the exact joint score
:math:`\\nabla_x\\log p_\\theta(x\\mid\\sigma_i)` (one forward and one backward pass), and a
final Tweedie step :math:`x + \\sigma_L^2\\nabla_x\\log p_\\theta(x\\mid\\sigma_L)` removes the
last noise:

.. math::

    x^{(0)} \\sim p_\\theta(\\cdot\\mid\\sigma_\\text{start}) \\text{ (ancestral)}, \\quad
    x \\leftarrow x + \\alpha_i\\nabla_x\\log p_\\theta(x\\mid\\sigma_i) + \\sqrt{2\\alpha_i}\\,z
    \\;(T \\text{ steps per level}), \\quad \\hat x_0 = x + \\sigma_L^2
    \\nabla_x\\log p_\\theta(x\\mid\\sigma_L).

With ``metropolis=True`` each Langevin step is Metropolis-adjusted using the exact
:math:`\\log p_\\theta` (MALA), which a score-only model cannot do.
:meth:`ScoreCorrectedAncestral.refine` runs the correction alone from any start (e.g. draws of
another model).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from .langevin import _check_common, anneal_and_finish, at_level, resolve_target
from .registry import SampleInfo, Sampler, option, register
from .schedules import geometric_ladder

__all__ = ["ScoreCorrectedAncestral"]


@register("score_corrected_ancestral")
class ScoreCorrectedAncestral(Sampler):
    """Ancestral draws at ``sigma_start``, Langevin down to the target σ, then Tweedie.

    The target is the distribution's bound σ unless ``sigma`` is given; for a target of 0 the
    ladder ends at ``sigma_min`` and the Tweedie step follows (and, for a discretized family,
    snapping to the grid). The defaults (σ from 0.3 to 0.01 in 6 levels, 50 steps each,
    technique-4 step size) suit data scaled to about [-1, 1].

    Args:
        sigma_start: noise level of the ancestral draw, the first Langevin level.
        sigma_min: last level when the target is σ = 0.
        num_levels: Langevin levels from ``sigma_start`` to the last level, both included.
        steps_per_level: Langevin steps T per level.
        step_size: ε of :math:`\\alpha_i = \\varepsilon\\sigma_i^2/\\sigma_L^2`; ``None``:
            technique 4.
        sigma: target noise level; ``None``: the distribution's bound σ.
        metropolis: Metropolis-adjust every step (MALA); acceptance rates go to ``info``.
        denoise: final Tweedie step; ``None``: only when the target is σ = 0.
        snap: round to a discretized family's grid when the target is σ = 0.

    Example:
        >>> from ncmle_prob import samplers
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> d = NoisyGaussian(torch.zeros(2), 0.25 * torch.eye(2))
        >>> g = torch.Generator().manual_seed(0)
        >>> x = samplers.sample(d, 100, "score_corrected_ancestral", steps_per_level=10,
        ...                     generator=g)
        >>> x.shape
        torch.Size([100, 2])
    """

    sigma_start: float = option(0.3, "noise level of the initial ancestral draw")
    sigma_min: float = option(0.01, "last level when the target sigma is 0")
    num_levels: int = option(6, "Langevin levels from sigma_start to the last level")
    steps_per_level: int = option(50, "Langevin steps per level")
    step_size: float | None = option(
        None, "epsilon of alpha_i = epsilon sigma_i^2 / sigma_L^2 (default: technique 4)"
    )
    sigma: float | None = option(None, "target noise level (default: the bound sigma)")
    metropolis: bool = option(False, "Metropolis-adjust every step (MALA)")
    denoise: bool | None = option(None, "final Tweedie step (default: when the target is 0)")
    snap: bool = option(True, "round to the grid at sigma = 0 (discretized families)")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_common(self, ("sigma_start", "sigma_min", "step_size"))

    def ladder(self, target: float) -> list[float]:
        """The Langevin levels for a given target σ; the first is ``sigma_start`` (or the
        target itself when the target is not below ``sigma_start``: then the draw is made at
        the target and the Langevin steps run there)."""
        if target > 0:
            end, start = target, max(self.sigma_start, target)
        else:
            end, start = self.sigma_min, self.sigma_start
            if not start > end:
                raise ValueError(
                    f"option 'sigma_start' ({start}) must exceed 'sigma_min' ({end}), the "
                    f"last level for a target of sigma = 0"
                )
        if self.num_levels == 1 or start == end:
            return [end]
        return geometric_ladder(start, end, self.num_levels).tolist()

    def refine(
        self,
        dist: NoiseConditionalDistribution,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> Tensor:
        """The correction alone: Langevin from ``x`` (treated as a draw at the first level)
        down to the target, then the final step. Diagnostics go to :attr:`info`."""
        target = resolve_target(dist, self.sigma)
        ladder = self.ladder(target)
        x, self.info = anneal_and_finish(
            self, dist, x, ladder, target, start_sigma=ladder[0],
            generator=generator, progress=progress,
        )
        return x

    def run(
        self,
        dist: NoiseConditionalDistribution,
        num_samples: int,
        *,
        generator: torch.Generator | None,
        progress: bool,
    ) -> tuple[Tensor, SampleInfo]:
        target = resolve_target(dist, self.sigma)
        start = self.ladder(target)[0]  # fails on a bad ladder before the costly draw
        x = at_level(dist, start).sample((num_samples,), generator=generator)
        x = self.refine(dist, x, generator=generator, progress=progress)
        assert self.info is not None
        return x, self.info
