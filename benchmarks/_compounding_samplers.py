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

:func:`corrector_grid` builds the score-corrected grid over the predictor–corrector
engine's options.
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

METHOD = "score_corrected_ancestral"


def corrector_grid(
    sigma_starts: tuple[float, ...],
    pc_steps: tuple[int, ...] = (2, 5, 10),
    pc_predictors: tuple[str, ...] = ("reverse_diffusion", "probability_flow", "none"),
    pc_correctors: tuple[str, ...] = ("langevin", "mala"),
) -> list[dict[str, Any]]:
    r"""The score-corrected settings: σ_start × budget × predictor × corrector.

    The budget axis is ``steps_per_level`` in ``pc_steps`` (the engine's default ladder and
    step rule: MALA adapted to its target acceptance, Langevin by the signal-to-noise rule;
    the Langevin time S it reached is recorded).
    """
    grid = []
    for s0, t, pred, corr in itertools.product(sigma_starts, pc_steps, pc_predictors,
                                               pc_correctors):
        opts: dict[str, Any] = {"sigma_start": s0, "steps_per_level": t,
                                "predictor": pred, "corrector": corr}
        grid.append({"label": f"corrected s0={s0} T={t} {pred}/{corr}",
                     "kind": "corrected", "model": "ncmle", "opts": opts,
                     "sigma_start": s0, "budget": f"T={t}", "predictor": pred,
                     "corrector": corr})
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
