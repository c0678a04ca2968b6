r"""Self-denoising: noisy ancestral draws carried down to the target by the model's own score.

TarFlow (Zhai et al., 2024) draws autoregressively at one fixed noise level and takes one
Tweedie step; iTARFlow (2026) trains on a range of σ as NCMLE does, draws at the top of the
range and takes about ten self-denoising steps with its own score. Neither re-equilibrates at
the target (no corrector): this module is that family of samplers.

**The step.** On a ladder :math:`\sigma_1 = \sigma_\text{start} > \sigma_2 > \dots >
\sigma_K > \sigma_{K+1} = \sigma_\text{target}` (geometric down to ``sigma_end`` for a target
σ = 0), each step is the deterministic DDIM update of the variance-exploding process
(Song, Meng & Ermon, 2021, with :math:`\eta = 0`):

.. math::

    \hat x_0 = x + \sigma_k^2\, s_k, \qquad
    \hat\varepsilon = \frac{x - \hat x_0}{\sigma_k} = -\sigma_k s_k, \qquad
    x \leftarrow \hat x_0 + \sigma_{k+1}\hat\varepsilon
      = x + \sigma_k(\sigma_k - \sigma_{k+1})\, s_k,

with :math:`s_k = \nabla_x\log p(x\mid\sigma_k)`. It is an exact first-order integrator of the
probability-flow ODE :math:`\mathrm dx/\mathrm d\sigma = -\sigma\nabla_x\log p(x\mid\sigma)`
(the step :math:`-\sigma_k s_k (\sigma_{k+1} - \sigma_k)`), so as :math:`K\to\infty` it maps
:math:`p(\cdot\mid\sigma_\text{start})` onto :math:`p(\cdot\mid\sigma_\text{target})`. The
last step into σ = 0 is Tweedie's posterior mean :math:`x + \sigma_K^2 s_K`; **with K = 1 the
whole sampler is one Tweedie step from the start (TarFlow)**, which over-smooths: on
:math:`\mathcal N(\mu, v)` it returns variance :math:`v^2/(v + \sigma^2) < v`. More steps
remove that shrinkage (the ODE keeps the variance), at one batched score per step.

**Cost**: one ancestral draw at ``sigma_start`` (D sequential forward passes, or the
``jacobi`` fixed-point passes) plus K batched score evaluations per batch.

Presets: ``tarflow`` is this sampler with ``steps=1`` and ``itarflow`` with ``steps=10``
(the same options otherwise). On grid data at σ = 0 the result is snapped to the grid.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

import torch
from torch import Tensor

from ..distributions import NoiseConditionalAutoregressive, NoiseConditionalDistribution
from .annealing import resolve_target
from .engine import at_level
from .jacobi import fixed_point_draw
from .registry import SampleInfo, Sampler, option, register
from .schedules import geometric_ladder
from .tweedie import snap_to_grid

__all__ = ["ITarFlow", "SelfDenoising", "TarFlow", "self_denoising_ladder"]


def self_denoising_ladder(
    sigma_start: float, steps: int, sigma_end: float, target: float = 0.0
) -> list[float]:
    r"""The levels :math:`[\sigma_1, \dots, \sigma_K, \sigma_\text{target}]` of ``steps`` = K
    self-denoising steps.

    For a target σ = 0: :math:`\sigma_1 = \sigma_\text{start}`, geometric down to
    :math:`\sigma_K` = ``sigma_end`` (K = 1: the start alone), then 0. For a target σ > 0:
    K + 1 geometric levels from the start to the target (``sigma_end`` is not used). A start
    at or below the target gives ``[target]`` (no step).

    Raises:
        ValueError: ``steps`` < 1, or a non-positive or non-finite level, or
            ``sigma_end`` >= ``sigma_start`` with ``steps`` > 1 and a target of 0.

    Example:
        >>> self_denoising_ladder(0.3, 1, 0.01)
        [0.3, 0.0]
        >>> [round(s, 4) for s in self_denoising_ladder(0.3, 3, 0.03)]
        [0.3, 0.0949, 0.03, 0.0]
        >>> [round(s, 4) for s in self_denoising_ladder(0.4, 2, 0.01, target=0.1)]
        [0.4, 0.2, 0.1]
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"option 'steps' must be an integer >= 1, got {steps!r}")
    for name, value in (("sigma_start", sigma_start), ("sigma_end", sigma_end)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"option {name!r} must be finite and > 0, got {value!r}")
    if not (math.isfinite(target) and target >= 0):
        raise ValueError(f"the target sigma must be finite and >= 0, got {target!r}")
    if sigma_start <= target:
        return [float(target)]
    if target > 0:
        levels = geometric_ladder(sigma_start, target, steps + 1).tolist()
        return [float(sigma_start), *levels[1:-1], float(target)]  # exact ends
    if steps == 1:
        return [float(sigma_start), 0.0]
    if not sigma_end < sigma_start:
        raise ValueError(
            f"option 'sigma_end' ({sigma_end}) must be below 'sigma_start' ({sigma_start}) "
            f"for steps > 1")
    levels = geometric_ladder(sigma_start, sigma_end, steps).tolist()
    return [float(sigma_start), *levels[1:-1], float(sigma_end), 0.0]


@register("self_denoising")
class SelfDenoising(Sampler):
    r"""Ancestral draws at ``sigma_start``, then K deterministic self-denoising (DDIM) steps
    :math:`x \leftarrow x + \sigma_k(\sigma_k - \sigma_{k+1})\nabla_x\log p(x\mid\sigma_k)`
    down to the target, without a corrector (see the module docstring for the math).

    ``steps=1`` is TarFlow's noisy ancestral + Tweedie; ``steps=10`` is iTARFlow's
    self-denoising (the presets ``tarflow`` and ``itarflow``).

    Args:
        sigma_start: noise level of the ancestral draw, :math:`\sigma_1`.
        steps: number K of score steps (K = 1: one Tweedie step).
        sigma_end: the last positive level :math:`\sigma_K` for a target σ = 0 (K > 1).
        sigma: target noise level; ``None``: the distribution's bound σ. A target at or above
            ``sigma_start`` is drawn directly (no step).
        initial: ``ancestral``, or ``jacobi``: the same draws by parallel fixed-point passes
            (autoregressive models; others fall back to ``dist.sample``).
        snap: round to a discretized family's grid at a target σ = 0.

    Example:
        On :math:`\mathcal N(0, v)` one step is the closed-form posterior mean of the start:

        >>> from ncmle_prob import samplers
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> d = NoisyGaussian(torch.zeros(1), 0.25 * torch.eye(1))
        >>> x, info = samplers.sample(d, 4, "self_denoising", steps=1, return_info=True,
        ...                           generator=torch.Generator().manual_seed(0))
        >>> start = d.at(0.3).sample((4,), generator=torch.Generator().manual_seed(0))
        >>> bool(torch.allclose(x, start * 0.25 / (0.25 + 0.3**2)))  # E[x0 | x] = v x/(v+s^2)
        True
        >>> info.sigmas, info.score_evals, info.denoised_at
        ((0.3, 0.0), 1, 0.3)
    """

    sigma_start: float = option(0.3, "noise level of the initial ancestral draw")
    steps: int = option(10, "self-denoising (DDIM) score steps down to the target; 1: Tweedie")
    sigma_end: float = option(0.01, "last positive level for a target of sigma = 0 (steps > 1)")
    sigma: float | None = option(None, "target noise level (default: the bound sigma)")
    initial: Literal["ancestral", "jacobi"] = option(
        "ancestral", "how the initial draw at sigma_start is made: ancestral, or jacobi (the "
        "same draws by parallel fixed-point passes)")
    snap: bool = option(True, "round to the grid at sigma = 0 (discretized families)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"option 'sigma' must be finite and >= 0, got {self.sigma!r}")
        self_denoising_ladder(self.sigma_start, self.steps, self.sigma_end)  # validates

    def ladder(self, target: float) -> list[float]:
        """The levels for a target σ: :func:`self_denoising_ladder` with these options."""
        return self_denoising_ladder(self.sigma_start, self.steps, self.sigma_end, target)

    def denoise(
        self, dist: NoiseConditionalDistribution, x: Tensor, target: float | None = None
    ) -> Tensor:
        """The K steps alone, from ``x`` treated as a draw at ``sigma_start`` (e.g. another
        model's noisy draws); snaps on grid data at σ = 0. Diagnostics go to :attr:`info`."""
        target = resolve_target(dist, self.sigma) if target is None else float(target)
        sigmas = self.ladder(target)
        info = SampleInfo(self.name or "self_denoising", sigmas=tuple(sigmas),
                          predictor="ddim", start_sigma=sigmas[0])
        for s, s_next in itertools.pairwise(sigmas):
            with torch.no_grad():
                score = at_level(dist, s).score(x).detach()
                x = x + (s * (s - s_next)) * score
            info.score_evals += 1
        if len(sigmas) > 1 and target == 0:
            info.denoised_at = sigmas[-2]
        if self.snap and target == 0 and dist.discrete_at_zero and dist.bins is not None:
            x = snap_to_grid(x, dist.bins)
            info.snapped = True
        self.info = info
        return x

    def run(
        self,
        dist: NoiseConditionalDistribution,
        num_samples: int,
        *,
        generator: torch.Generator | None,
        progress: bool,
    ) -> tuple[Tensor, SampleInfo]:
        from tqdm.auto import tqdm

        target = resolve_target(dist, self.sigma)
        sigmas = self.ladder(target)
        first = at_level(dist, sigmas[0])
        passes = None
        with tqdm(total=1, desc=self.name, disable=not progress, leave=False) as bar:
            if self.initial == "jacobi" and isinstance(first, NoiseConditionalAutoregressive):
                x, passes = fixed_point_draw(first, num_samples, generator=generator)
            else:
                x = first.sample((num_samples,), generator=generator)
            x = self.denoise(dist, x, target)
            bar.update(1)
        assert self.info is not None
        self.info.iterations = passes
        return x, self.info


@register("tarflow")
class TarFlow(SelfDenoising):
    """Preset of ``self_denoising`` with ``steps=1``: noisy ancestral draws at
    ``sigma_start`` and one Tweedie step (TarFlow's sampler). Same options.

    Example:
        >>> from ncmle_prob import samplers
        >>> samplers.options("tarflow")["steps"][1], samplers.options("itarflow")["steps"][1]
        (1, 10)
    """

    steps: int = option(1, "self-denoising (DDIM) score steps down to the target; 1: Tweedie")


@register("itarflow")
class ITarFlow(SelfDenoising):
    """Preset of ``self_denoising`` with ``steps=10``: noisy ancestral draws at
    ``sigma_start`` and ten self-denoising steps with the model's own score, no corrector
    (iTARFlow's sampler). Same options."""

    steps: int = option(10, "self-denoising (DDIM) score steps down to the target; 1: Tweedie")
