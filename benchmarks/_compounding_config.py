"""Configuration of the compounding benchmark: data, model budget per D, and quick mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from _compounding_data import OracleSpec
from _compounding_train import TrainSpec

#: Full run: D = 64 (a line) and D = 256 (a 16 x 16 image in raster order).
ORACLES = {
    64: OracleSpec(features=64, lengthscale=6.0),
    256: OracleSpec(features=256, lengthscale=3.0),
}
TRAIN = {
    64: TrainSpec(hidden_features=128, max_steps=3000),
    256: TrainSpec(hidden_features=128, max_steps=1200),
}
TRAIN_SEEDS = (0, 1, 2)

#: --quick: a tiny version of everything (the smoke test), not a result.
QUICK_ORACLES = {16: OracleSpec(features=16, components=4, lengthscale=3.0)}
QUICK_TRAIN = {16: TrainSpec(hidden_features=32, max_steps=60, eval_every=20, patience=2,
                             num_train=500, num_val=200)}
QUICK_SEEDS = (0, 1)


@dataclass(frozen=True)
class Budget:
    """Set sizes and seeds of one D (see the docs page for why these sizes)."""

    n_tune: int
    n_test: int
    n_ref: int
    n_kl: int
    tune_train_seeds: tuple[int, ...]
    test_sample_seeds: tuple[int, ...]
    spread_seeds: tuple[int, ...]
    sigma_starts: tuple[float, ...] = (0.2, 0.5, 1.0)
    times: tuple[float, ...] = (0.3, 1.0)
    num_levels: int = 5
    steps_per_level: int = 20
    #: the grid under the predictor-corrector engine (steps per level, predictors, correctors)
    pc_steps: tuple[int, ...] = (2, 5, 10)
    pc_predictors: tuple[str, ...] = ("reverse_diffusion", "probability_flow", "none")
    pc_correctors: tuple[str, ...] = ("langevin", "mala")
    speed: bool = False
    #: options overriding a sampler's defaults in the speed table (--quick only: smaller budgets)
    speed_overrides: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()


BUDGETS = {
    64: Budget(300, 600, 2000, 2000, (0, 1, 2), (0, 1, 2), (10, 11, 12), pc_steps=(3, 10),
               pc_predictors=("reverse_diffusion", "none"), speed=True),
    256: Budget(200, 300, 1000, 1000, (0,), (0, 1), (10, 11, 12), pc_steps=(3,),
                pc_predictors=("reverse_diffusion", "none")),
}
QUICK_BUDGET = Budget(80, 100, 200, 200, (0,), (0, 1), (10, 11), sigma_starts=(0.5,),
                      times=(0.3,), num_levels=2, steps_per_level=3, pc_steps=(2,),
                      pc_predictors=("reverse_diffusion",), pc_correctors=("mala",), speed=True,
                      speed_overrides=(("annealed_langevin", (("num_levels", 2),
                                                              ("steps_per_level", 3))),
                                       ("score_corrected_ancestral", (("num_levels", 2),
                                                                      ("steps_per_level", 3)))))
