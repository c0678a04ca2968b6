"""Configuration of the compounding benchmark: data, model budget per D, and quick mode."""

from __future__ import annotations

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
