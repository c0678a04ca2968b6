"""MLE and NCMLE models of the exact benchmark, trained only through
:func:`ncmle_prob.training.fit`.

Both objectives train the same MADE on the same oracle draws per training seed, with the same
optimiser and the same early stopping: the validation bits/dim at σ = 0 (an affine function of
the validation NLL) evaluated every ``eval_every`` updates, stopping after ``patience``
evaluations without improvement and restoring the best weights (``FitConfig.patience``,
``monitor=0``, ``restore_best``). ``fit`` writes ``last.pt`` and ``best.pt`` atomically into
the run's folder and resumes from them (``resume=True``); the finished run's
:class:`~ncmle_prob.training.History` is kept as ``history.json`` beside them, so a finished
model is loaded (``load_model(best.pt)``), never retrained.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ncmle_prob.distributions import NoisyGaussianMixture
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior
from ncmle_prob.training import History, atomic_write, fit, load_model

from .config import Config

OBJECTIVES = ("mle", "ncmle")


def prior_for(objective: str) -> NoiseLevelPrior:
    r"""MLE is :math:`\pi = \delta_0`; NCMLE the library's default prior (20 % at σ = 0, the
    rest log-uniform on [0.01, 1])."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    return NoiseLevelPrior.mle() if objective == "mle" else NoiseLevelPrior()


def data_for_seed(q: NoisyGaussianMixture, seed: int, cfg: Config) -> tuple[Tensor, Tensor]:
    """(train, validation) oracle draws of one training seed, float32 like the model."""
    g = torch.Generator().manual_seed(10_000 + seed)
    return (q.sample((cfg.num_train,), generator=g).float(),
            q.sample((cfg.num_val,), generator=g).float())


def train_model(
    q: NoisyGaussianMixture, objective: str, seed: int, cfg: Config, folder: Path,
    log: Any = print,
) -> tuple[MADE, dict[str, Any]]:
    """Trains (or resumes, or loads) one model; returns it with its run record: the stop
    update, the best update, the reason, the evaluations and the CPU seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    record_path = folder / "history.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        model = load_model(folder / "best.pt")
        assert isinstance(model, MADE)
        return model.eval(), record
    torch.manual_seed(seed)
    model = MADE(cfg.features, hidden_features=cfg.hidden, family="gaussian_mixture",
                 components=cfg.components_model)
    train, val = data_for_seed(q, seed, cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    history: History = fit(
        model, train, prior=prior_for(objective), steps=cfg.max_steps,
        batch_size=cfg.batch_size, lr=cfg.lr, grad_clip=10.0, eval_data=val,
        eval_sigmas=(0.0,), eval_every=cfg.eval_every, patience=cfg.patience, monitor=0.0,
        min_delta=cfg.min_delta,
        restore_best=True, checkpoint_dir=folder, checkpoint_every=cfg.eval_every,
        resume=True, seed=seed, progress=False, log_every=cfg.eval_every,
    )
    record = {
        "objective": objective, "seed": seed,
        "stopped_step": history.stopped_step, "best_step": history.best_step,
        "stop_reason": history.stop_reason, "max_steps": cfg.max_steps,
        "early_stopped": str(history.stop_reason).startswith("early stopping"),
        "evals": [[e["step"], e["bits_per_dim"]["0.0"]] for e in history.evals],
        "wall_seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
    }
    atomic_write(record_path, lambda f: f.write(json.dumps(record).encode()))
    log(f"[train {objective} s{seed}] stopped at update {record['stopped_step']} (best "
        f"{record['best_step']}, {record['stop_reason']}), {record['cpu_seconds']:.0f} CPU s")
    return model.eval(), record
