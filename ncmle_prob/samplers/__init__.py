"""Samplers of noise-conditional distributions, chosen by name from one registry.

.. code-block:: python

    from ncmle_prob import samplers
    samplers.available()  # ['ancestral', 'annealed_langevin', 'itarflow', 'jacobi',
                          #  'pyro_langevin', 'pyro_mala', 'score_corrected_ancestral',
                          #  'self_denoising', 'tarflow']
    x = samplers.sample(dist, 1000, method="score_corrected_ancestral", generator=g)

Every sampler targets the distribution's bound σ by default, returns
``(num_samples, *batch_shape, *event_shape)`` on the distribution's device and dtype, and
takes ``generator=`` (reproducible draws) and ``progress=`` (a tqdm bar).

* ``ancestral``: exact draws, one dimension at a time (:mod:`.ancestral`);
* ``annealed_langevin``: predictor–corrector annealing from a Gaussian start
  (:mod:`.langevin`, on the shared engine :mod:`.engine`);
* ``score_corrected_ancestral``: ancestral draws at a moderate σ corrected by
  predictor–corrector annealing with the exact score (:mod:`.score_corrected`);
* ``self_denoising`` (presets ``tarflow``: one Tweedie step, ``itarflow``: ten steps): ancestral
  draws at a moderate σ carried to the target by deterministic DDIM steps with the model's own
  score, no corrector (:mod:`.self_denoising`);
* ``jacobi``: the ancestral draws by parallel fixed-point iteration (:mod:`.jacobi`);
* ``pyro_mala``, ``pyro_langevin``: independent chains of :class:`pyro.infer.MCMC` with the
  kernels of :mod:`ncmle_prob.infer`, one returned draw per chain (registered lazily:
  imported on first use); they need a density, so σ > 0 on grid data.

Every sampler takes ``batch_size`` (:mod:`.batching`): larger requests run in batches, so
the peak memory is that of one batch.

Predictors (:mod:`.predictors`) and correctors (:mod:`.correctors`) of the annealing samplers
are registries of their own, with the same decorator pattern as samplers.
"""

from . import (
    ancestral,
    correctors,
    engine,
    jacobi,
    langevin,
    predictors,
    schedules,
    score_corrected,
    self_denoising,
    tweedie,
)
from .ancestral import Ancestral
from .annealing import AnnealingOptions
from .correctors import correctors as available_correctors
from .correctors import get_corrector, register_corrector, unregister_corrector
from .engine import AnnealResult, anneal, ladder
from .jacobi import Jacobi
from .langevin import AnnealedLangevin
from .predictors import get_predictor, register_predictor, unregister_predictor
from .predictors import predictors as available_predictors
from .registry import (
    NamedRegistry,
    SampleInfo,
    Sampler,
    SamplerDivergenceError,
    available,
    get,
    option,
    options,
    register,
    register_lazy,
    sample,
    unregister,
)
from .score_corrected import ScoreCorrectedAncestral
from .self_denoising import ITarFlow, SelfDenoising, TarFlow
from .tweedie import snap_to_grid, tweedie_denoise

__all__ = [
    "Ancestral",
    "AnnealResult",
    "AnnealedLangevin",
    "AnnealingOptions",
    "ITarFlow",
    "Jacobi",
    "NamedRegistry",
    "SampleInfo",
    "Sampler",
    "SamplerDivergenceError",
    "ScoreCorrectedAncestral",
    "SelfDenoising",
    "TarFlow",
    "ancestral",
    "anneal",
    "available",
    "available_correctors",
    "available_predictors",
    "correctors",
    "engine",
    "get",
    "get_corrector",
    "get_predictor",
    "jacobi",
    "ladder",
    "langevin",
    "option",
    "options",
    "predictors",
    "register",
    "register_corrector",
    "register_lazy",
    "register_predictor",
    "sample",
    "schedules",
    "score_corrected",
    "self_denoising",
    "snap_to_grid",
    "tweedie",
    "tweedie_denoise",
    "unregister",
    "unregister_corrector",
    "unregister_predictor",
]
