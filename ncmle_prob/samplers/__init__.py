"""Samplers of noise-conditional distributions, chosen by name from one registry.

.. code-block:: python

    from ncmle_prob import samplers
    samplers.available()   # ['ancestral', 'annealed_langevin', 'score_corrected_ancestral']
    x = samplers.sample(dist, 1000, method="score_corrected_ancestral", generator=g)

Every sampler targets the distribution's bound σ by default, returns
``(num_samples, *batch_shape, *event_shape)`` on the distribution's device and dtype, and
takes ``generator=`` (reproducible draws) and ``progress=`` (a tqdm bar).

* ``ancestral``: exact draws, one dimension at a time (:mod:`.ancestral`);
* ``annealed_langevin``: Song & Ermon's annealed Langevin dynamics, optionally
  Metropolis-adjusted (MALA) with the exact log density (:mod:`.langevin`);
* ``score_corrected_ancestral``: ancestral draws at a moderate σ corrected by Langevin steps
  with the exact score, then Tweedie (:mod:`.score_corrected`).
"""

from . import ancestral, langevin, schedules, score_corrected, tweedie
from .ancestral import Ancestral
from .langevin import AnnealedLangevin, anneal
from .registry import (
    SampleInfo,
    Sampler,
    SamplerDivergenceError,
    available,
    get,
    option,
    options,
    register,
    sample,
    unregister,
)
from .score_corrected import ScoreCorrectedAncestral
from .tweedie import snap_to_grid, tweedie_denoise

__all__ = [
    "Ancestral",
    "AnnealedLangevin",
    "SampleInfo",
    "Sampler",
    "SamplerDivergenceError",
    "ScoreCorrectedAncestral",
    "ancestral",
    "anneal",
    "available",
    "get",
    "langevin",
    "option",
    "options",
    "register",
    "sample",
    "schedules",
    "score_corrected",
    "snap_to_grid",
    "tweedie",
    "tweedie_denoise",
    "unregister",
]
