r"""The annealing sampler template: the options every annealing sampler shares, declared once,
and the one run they drive.

:class:`AnnealingOptions` is a dataclass mixin of the predictor–corrector options (see
:mod:`.engine`); :class:`AnnealingSampler` is the template of every annealing sampler. A
sampler built on it says only two things: which ladder it walks (:meth:`~AnnealingSampler.
ladder`) and how it starts (:meth:`~AnnealingSampler.start`); the template resolves the target,
binds the whole ladder once (:meth:`~ncmle_prob.distributions.NoiseConditionalDistribution.
at_levels`: one σ check per run), anneals, and takes the final Tweedie step, snapping and grid
steps. ``annealed_langevin`` and ``score_corrected_ancestral`` are the two built-in ones.
:meth:`AnnealingOptions.finish_plan` decides where the ladder ends:

* a target σ > 0: the ladder ends at the target;
* a target σ = 0 of a distribution with a score there (continuous data): the ladder ends *at*
  σ = 0, where the MALA corrector samples the target exactly; no Tweedie step is needed;
* a target σ = 0 of a discretized family (grid data, no score at σ = 0), or an explicit
  ``sigma_min`` (e.g. to stop where the model is still well trained): the ladder ends at
  ``sigma_min`` (for grid data by default half a bin, :math:`1/(\text{bins}-1)`), followed by
  Tweedie's step :math:`x + \sigma_\min^2\nabla_x\log p(x\mid\sigma_\min)`, snapping to the
  grid and, for grid data, ``grid_steps`` exact Metropolis steps on the grid with the log mass
  (:func:`~ncmle_prob.samplers.correctors.grid_metropolis`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from .correctors import corrector_is_metropolis, get_corrector, grid_metropolis
from .engine import anneal
from .info import SampleInfo
from .option_types import option
from .predictors import get_predictor
from .protocol import Sampler
from .tweedie import snap_to_grid

__all__ = ["AnnealingOptions", "AnnealingSampler", "resolve_target"]

StepRule = Literal["auto", "adapt", "snr", "fixed", "technique4"]


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


@dataclass
class AnnealingOptions:
    r"""Predictor–corrector options shared by the annealing samplers (a dataclass mixin).

    Args:
        predictor: the move between levels (:mod:`~ncmle_prob.samplers.predictors`).
        corrector: the moves at each level (:mod:`~ncmle_prob.samplers.correctors`).
        steps_per_level: corrector steps :math:`T` per level.
        step_rule: ``adapt``, ``snr``, ``fixed``, ``technique4`` (:mod:`.engine`); ``auto``:
            ``fixed`` if ``step_size`` is given, else ``adapt`` for a Metropolis corrector and
            ``snr`` otherwise.
        step_size: :math:`\alpha` of ``fixed``; :math:`\varepsilon` of ``technique4``; the
            first step of ``adapt``.
        snr: :math:`r` of the ``snr`` rule.
        target_accept: acceptance probability aimed at by ``adapt``.
        sigma: target noise level; ``None``: the distribution's bound σ.
        sigma_min: end the ladder at this level and take a Tweedie step (target σ = 0 only);
            ``None``: end at the target, or at half a bin for grid data at σ = 0.
        denoise: final Tweedie step; ``None``: when the ladder ends above the target.
        snap: round to a discretized family's grid when the target is σ = 0.
        grid_steps: exact Metropolis steps on the grid after snapping (grid data at σ = 0).
        metropolis: deprecated; ``True`` is ``corrector="mala"``, ``False`` is
            ``corrector="langevin"``.
    """

    predictor: str = option("reverse_diffusion",
                            "move between levels: reverse_diffusion, probability_flow, none")
    corrector: str = option("mala", "moves at each level: mala, langevin, none")
    steps_per_level: int = option(10, "corrector steps per level")
    step_rule: StepRule = option(  # noqa: RUF009
        "auto", "corrector step: adapt (to target_accept), snr, fixed (step_size), technique4; "
        "auto: adapt for mala, snr for langevin, fixed if step_size is given")
    step_size: float | None = option(
        None, "alpha of the fixed rule (epsilon of technique4, first step of adapt)")
    snr: float = option(0.16, "signal-to-noise ratio of the snr rule (score_sde)")
    target_accept: float = option(0.574, "acceptance probability aimed at by the adapt rule")
    sigma: float | None = option(None, "target noise level (default: the bound sigma)")
    sigma_min: float | None = option(
        None, "end the ladder here and denoise (default: at the target; half a bin for grid "
        "data at sigma = 0)")
    denoise: bool | None = option(
        None, "final Tweedie step (default: when the ladder ends above the target)")
    snap: bool = option(True, "round to the grid at sigma = 0 (discretized families)")
    grid_steps: int = option(100, "exact Metropolis steps on the grid (grid data at sigma = 0)")
    metropolis: bool | None = option(
        None, "deprecated: True means corrector='mala', False corrector='langevin'")

    def __post_init__(self) -> None:
        if self.metropolis is not None:
            from .._deprecated import warn_once

            warn_once("sampler option 'metropolis'", "corrector='mala' or corrector='langevin'",
                      stacklevel=5)
            self.corrector = "mala" if self.metropolis else "langevin"
        get_predictor(self.predictor)  # unknown names: ValueError listing the valid ones
        get_corrector(self.corrector)
        for name in ("step_size", "snr", "sigma_min"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"option {name!r} must be finite and > 0, got {value!r}")
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"option 'sigma' must be finite and >= 0, got {self.sigma!r}")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"option 'target_accept' must be in (0, 1), got "
                             f"{self.target_accept!r}")
        for name in ("num_levels", "steps_per_level"):
            if hasattr(self, name) and getattr(self, name) < 1:
                raise ValueError(f"option {name!r} must be >= 1, got {getattr(self, name)!r}")
        if self.grid_steps < 0:
            raise ValueError(f"option 'grid_steps' must be >= 0, got {self.grid_steps!r}")
        if self.step_rule == "fixed" and self.step_size is None:
            raise ValueError("option step_rule='fixed' needs option 'step_size'")

    @property
    def rule(self) -> str:
        """The step rule in effect (``auto`` resolved)."""
        if self.step_rule != "auto":
            return self.step_rule
        if self.step_size is not None:
            return "fixed"
        return "adapt" if corrector_is_metropolis(self.corrector) else "snr"

    def finish_plan(
        self, dist: NoiseConditionalDistribution, target: float
    ) -> tuple[float, bool]:
        """``(end, denoise)``: the last level of the ladder and whether a Tweedie step
        follows (see the module docstring)."""
        grid = target == 0 and dist.discrete_at_zero
        if self.sigma_min is not None and target == 0:
            end = self.sigma_min
        elif grid:
            end = 1.0 / ((dist.bins or 2) - 1)  # half a bin
        else:
            end = target
        denoise = self.denoise if self.denoise is not None else end > target
        if grid and end == 0:
            raise ValueError("a discretized family at sigma = 0 has no score: set sigma_min > 0")
        return end, bool(denoise)

    def run_annealing(
        self,
        dist: NoiseConditionalDistribution,
        x: Tensor,
        sigmas: Sequence[float],
        target: float,
        denoise: bool,
        *,
        start_sigma: float | None,
        generator: torch.Generator | None,
        progress: bool,
        name: str,
        levels: Sequence[NoiseConditionalDistribution] | None = None,
    ) -> tuple[Tensor, SampleInfo]:
        """Anneals ``x`` down ``sigmas`` with these options, then the final Tweedie step,
        snapping and grid steps; returns the draws and their :class:`SampleInfo`.
        ``levels``: ``dist.at_levels(sigmas)`` when the caller already bound them."""
        out = anneal(
            dist, x, sigmas, predictor=self.predictor, corrector=self.corrector,
            steps_per_level=self.steps_per_level, step_rule=self.rule,
            step_size=self.step_size, snr=self.snr, target_accept=self.target_accept,
            generator=generator, progress=progress, desc=name, levels=levels,
        )
        info = SampleInfo(
            name, out.sigmas, out.step_sizes, self.steps_per_level, out.acceptance_rates,
            out.langevin_time, level_times=out.level_times, predictor=self.predictor,
            corrector=self.corrector, start_sigma=start_sigma, score_evals=out.evals,
        )
        x = out.x
        last = out.sigmas[-1]
        if denoise and last > 0:
            x = x + last * last * out.chain.score  # Tweedie, with the score already at hand
            info.denoised_at = last
        if self.snap and target == 0 and dist.discrete_at_zero and dist.bins is not None:
            x = snap_to_grid(x, dist.bins)
            info.snapped = True
            x, info.grid_acceptance = grid_metropolis(dist.at_levels([0.0])[0], x,
                                                      self.grid_steps, generator)
        return x, info


@dataclass
class AnnealingSampler(AnnealingOptions, Sampler):
    """The template of an annealing sampler: subclasses say which ladder they walk and how
    they start; :meth:`run` does the rest (one σ check for the whole ladder).

    A subclass implements

    * :meth:`ladder` ``(dist, target) -> [σ_1, ..., σ_L]``: the levels, decreasing;
    * :meth:`start` ``(first, sigma, num_samples, generator) -> (x, start_sigma, extra)``:
      the initial states for the first level ``sigma``, given the distribution already bound
      to it (``first``); ``start_sigma`` goes to :attr:`SampleInfo.start_sigma` (``None`` when the
      start is not a draw at that level) and ``extra`` is a dict of further
      :class:`SampleInfo` fields (e.g. ``{"iterations": passes}``).
    """

    def __post_init__(self) -> None:
        Sampler.__post_init__(self)
        AnnealingOptions.__post_init__(self)

    def ladder(self, dist: NoiseConditionalDistribution, target: float) -> list[float]:
        """The noise levels visited for a given target σ."""
        raise NotImplementedError

    def start(
        self, first: NoiseConditionalDistribution, sigma: float, num_samples: int,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, float | None, dict[str, object]]:
        """The initial states at the first level (see the class docstring)."""
        raise NotImplementedError

    def run(
        self,
        dist: NoiseConditionalDistribution,
        num_samples: int,
        *,
        generator: torch.Generator | None,
        progress: bool,
    ) -> tuple[Tensor, SampleInfo]:
        target = resolve_target(dist, self.sigma)
        _, denoise = self.finish_plan(dist, target)
        sigmas = self.ladder(dist, target)  # fails on a bad ladder before any costly draw
        levels = dist.at_levels(sigmas)  # the one σ check of the run
        x, start_sigma, extra = self.start(levels[0], sigmas[0], num_samples, generator)
        x, info = self.run_annealing(
            dist, x, sigmas, target, denoise, start_sigma=start_sigma, generator=generator,
            progress=progress, name=self.name, levels=levels,
        )
        for key, value in extra.items():
            setattr(info, key, value)
        return x, info
