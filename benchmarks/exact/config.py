"""Sizes of the exact benchmark: the full study and the ``--quick`` smoke version."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Config:
    """Everything that sets the cost and the power of a run (see the docs page for why).

    Attributes:
        features: D, the length of the signal.
        components: K templates of the oracle.
        overlaps: the Mahalanobis distance of the nearest templates at ``sigma_ref``.
        sigma_ref: the σ_start at which the overlap is defined.
        seeds: training seeds (MLE and NCMLE share each seed's training data).
        hidden, components_model: the MADE (gaussian_mixture family).
        num_train, num_val: oracle draws for training and for early stopping.
        max_steps, eval_every, patience, min_delta, batch_size, lr: the options of
            :func:`ncmle_prob.training.fit`. ``min_delta`` = 0.002 bits/dim is 0.09 nats per
            draw at D = 64, a quarter of the standard error of the validation NLL of 500
            draws (about 0.36 nats): gains below it are noise, and counting them keeps
            training going long after the fit has stopped improving.
        n_val_draws: draws per configuration on the validation curve (selection only).
        n_test: draws per method and training seed on the test run.
        n_ref: fresh oracle draws of the energy-distance reference.
        n_kl: oracle draws of the exact KL estimates.
        sigma_starts, steps, sd_steps, correctors, num_levels: the sampler curve.
    """

    features: int = 64
    components: int = 4
    overlaps: tuple[float, ...] = (2.0, 3.0, 5.0, 8.0)
    sigma_ref: float = 0.3
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    hidden: int = 64
    components_model: int = 4
    num_train: int = 600
    num_val: int = 500
    max_steps: int = 4000
    eval_every: int = 50
    patience: int = 5
    min_delta: float = 0.002
    batch_size: int = 128
    lr: float = 2e-3
    n_val_draws: int = 200
    n_test: int = 1000
    n_ref: int = 2000
    n_kl: int = 2000
    sigma_starts: tuple[float, ...] = (0.2, 0.3, 0.5)
    steps: tuple[int, ...] = (3, 10, 30, 100)
    sd_steps: tuple[int, ...] = (1, 3, 10, 30)
    correctors: tuple[str, ...] = ("langevin", "mala")
    num_levels: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FULL = Config()

#: the smoke version: every stage on a tiny problem (not a result)
QUICK = Config(
    features=8, components=3, overlaps=(2.0, 5.0), seeds=(0, 1), hidden=16,
    components_model=2, num_train=200, num_val=150, max_steps=400, eval_every=20, patience=2,
    lr=5e-3,
    n_val_draws=60, n_test=120, n_ref=200, n_kl=200, sigma_starts=(0.3,), steps=(2, 4),
    sd_steps=(1, 3), num_levels=2,
)
