r"""The sampler grid of the compounding benchmark, as data, and how one entry is run.

A *method* is a dict: ``{"label", "kind", "model", ...}`` with ``kind`` one of

- ``"ancestral"``: exact ancestral draws of ``model`` at σ = 0;
- ``"tweedie"``: ancestral draws at ``sigma_start`` then one Tweedie step (``denoise=True``);
- ``"corrected"``: the registered ``score_corrected_ancestral`` sampler with ``opts``;
- ``"refine"``: the same sampler's correction alone (``ScoreCorrectedAncestral.refine``),
  started from ``init = "oracle"`` (exact :math:`q_{\sigma_\text{start}}` draws, control a) or
  ``init = "mle_noised"`` (MLE ancestral draws plus :math:`\sigma_\text{start}` noise,
  control b);
- ``"start"``: the starting point only, scored against :math:`q_{\sigma_\text{start}}`:
  ``model="ncmle"`` is NCMLE's ancestral draw at :math:`\sigma_\text{start}`,
  ``model="mle"`` MLE's draw plus :math:`\sigma_\text{start}` noise (control c).

:func:`corrector_grid` builds the score-corrected grid from whatever the installed sampler
offers (read with ``samplers.options``), so the grid follows the engine's option names.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import torch
from torch import Tensor

from ncmle_prob import samplers
from ncmle_prob.distributions import NoisyGaussianMixture
from ncmle_prob.models import MADE
from ncmle_prob.samplers.schedules import geometric_ladder

METHOD = "score_corrected_ancestral"
SIGMA_MIN = 0.01


def _opts() -> dict[str, Any]:
    return samplers.options(METHOD)


def step_size_for_time(sigma_start: float, num_levels: int, steps: int, total: float) -> float:
    r"""ε such that :math:`S = \sum_i T\,\varepsilon\,\sigma_i^2/\sigma_L^2` equals ``total``
    on the geometric ladder (the pre-engine API's step rule :math:`\alpha_i \propto
    \sigma_i^2`)."""
    lad = geometric_ladder(sigma_start, SIGMA_MIN, num_levels).double()
    return float(total / (steps * (lad**2 / SIGMA_MIN**2).sum()))


def corrector_grid(
    sigma_starts: tuple[float, ...], times: tuple[float, ...], num_levels: int, steps: int
) -> list[dict[str, Any]]:
    """The score-corrected settings: σ_start × Langevin time × predictor × corrector."""
    have = _opts()
    predictors = ("none",)
    correctors: tuple[str, ...] = ("langevin", "mala") if "metropolis" in have else ("langevin",)
    if "predictor" in have:
        predictors = ("reverse_diffusion", "probability_flow", "none")
    if "corrector" in have:
        correctors = ("langevin", "mala")
    grid = []
    for s0, total, pred, corr in itertools.product(sigma_starts, times, predictors, correctors):
        opts: dict[str, Any] = {"sigma_start": s0, "num_levels": num_levels,
                                "steps_per_level": steps}
        if "predictor" in have:
            opts["predictor"] = pred
        if "corrector" in have:
            opts["corrector"] = corr
        else:
            opts["metropolis"] = corr == "mala"
        if "langevin_time" in have:
            opts["langevin_time"] = total
        else:
            opts["step_size"] = step_size_for_time(s0, num_levels, steps, total)
        grid.append({"label": f"corrected s0={s0} S={total} {pred}/{corr}", "kind": "corrected",
                     "model": "ncmle", "opts": opts, "sigma_start": s0, "time": total,
                     "predictor": pred, "corrector": corr})
    return grid


def tweedie_grid(sigma_starts: tuple[float, ...]) -> list[dict[str, Any]]:
    return [{"label": f"tweedie s0={s0}", "kind": "tweedie", "model": "ncmle",
             "sigma_start": s0} for s0 in sigma_starts]


def _sync() -> None:
    pass  # CPU benchmark: nothing asynchronous to wait for


def run_method(
    method: dict[str, Any],
    models: dict[str, MADE],
    q: NoisyGaussianMixture,
    num: int,
    generator: torch.Generator,
) -> tuple[Tensor, dict[str, Any]]:
    """Runs one method; returns (samples as float64, info with wall time and diagnostics)."""
    kind = method["kind"]
    model = models[method["model"]]
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    if kind == "ancestral":
        x = samplers.sample(model(0.0), num, "ancestral", generator=generator)
    elif kind == "tweedie":
        x = samplers.sample(model(0.0), num, "ancestral", sigma=method["sigma_start"],
                            denoise=True, generator=generator)
    elif kind == "corrected":
        x, si = samplers.sample(model(0.0), num, METHOD, generator=generator,
                                return_info=True, **method["opts"])
        info = _info(si)
    elif kind == "refine":
        s0 = method["opts"]["sigma_start"]
        if method["init"] == "oracle":
            x0 = q.at(s0).sample((num,), generator=generator).float()
        elif method["init"] == "mle_noised":
            x0 = models["mle"](0.0).sample((num,), generator=generator)
            x0 = x0 + s0 * torch.randn(x0.shape, generator=generator)
        else:
            raise ValueError(f"unknown init {method['init']!r}")
        t0 = time.perf_counter()  # time the correction only
        sampler = samplers.get(METHOD, **method["opts"])
        x = sampler.refine(models["ncmle"](0.0), x0, generator=generator)
        info = _info(sampler.info)
    elif kind == "start":
        s0 = method["sigma_start"]
        if method["model"] == "ncmle":
            x = model(s0).sample((num,), generator=generator)
        else:
            x = model(0.0).sample((num,), generator=generator)
            x = x + s0 * torch.randn(x.shape, generator=generator)
    else:
        raise ValueError(f"unknown method kind {kind!r}")
    _sync()
    info["seconds"] = time.perf_counter() - t0
    info["samples_per_s"] = num / info["seconds"]
    return x.double(), info


def _info(si: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"score_evals": int(getattr(si, "score_evals", 0))}
    steps = getattr(si, "step_sizes", ()) or ()
    t = getattr(si, "steps_per_level", 0)
    s_time = getattr(si, "langevin_time", None)
    if s_time is None and steps:
        s_time = float(sum(steps) * t)
    out["langevin_time"] = s_time
    acc = getattr(si, "acceptance_rates", None)
    if acc:
        out["acceptance_min"] = float(min(acc))
        out["acceptance_mean"] = float(sum(acc) / len(acc))
    return out


def target_sigma(method: dict[str, Any]) -> float:
    """The noise level a method's output is scored at (σ_start for control c, else 0)."""
    return float(method["sigma_start"]) if method["kind"] == "start" else 0.0
