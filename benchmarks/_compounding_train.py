"""Training of the compounding benchmark's models: MLE and NCMLE, same budget, same stopping.

Both objectives train the same MADE architecture on the same oracle draws (per training seed)
with Adam, the same batch size and the same maximum number of updates, and both stop early
on the *same* criterion: the validation NLL at σ = 0 (fresh oracle draws), evaluated every
``eval_every`` updates, with the best weights kept and training stopped after ``patience``
evaluations without improvement. Progress is checkpointed atomically after every evaluation
(weights, optimiser, best weights, history), so an interrupted run resumes where it stopped
and a finished model is never retrained.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ncmle_prob.distributions import NoisyGaussianMixture
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior, ncmle_loss

OBJECTIVES = ("mle", "ncmle")


@dataclass(frozen=True)
class TrainSpec:
    """Model size and training budget (identical for both objectives)."""

    hidden_features: int = 128
    num_blocks: int = 2
    family: str = "gaussian_mixture"
    components: int = 4
    max_steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    grad_clip: float = 10.0
    eval_every: int = 100
    patience: int = 5
    num_train: int = 4000
    num_val: int = 1000


def prior_for(objective: str) -> NoiseLevelPrior:
    r"""MLE is :math:`\pi = \delta_0`; NCMLE uses the library's default prior."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    return NoiseLevelPrior.mle() if objective == "mle" else NoiseLevelPrior()


def build_model(features: int, spec: TrainSpec) -> MADE:
    """The benchmark's MADE. Where the library offers ``legacy_layout`` (the σ embedding fed
    to every residual block, as in the MADE the published results were trained with), it is
    used, so that the stored checkpoints load and a rerun trains the same architecture."""
    extra = {"legacy_layout": True} if "legacy_layout" in inspect.signature(MADE).parameters \
        else {}
    return MADE(
        features=features,
        hidden_features=spec.hidden_features,
        num_blocks=spec.num_blocks,
        family=spec.family,
        components=spec.components,
        **extra,
    )


def data_for_seed(q: NoisyGaussianMixture, seed: int, spec: TrainSpec) -> tuple[Tensor, Tensor]:
    """(train, val) oracle draws for one training seed; float32 like the model."""
    g = torch.Generator().manual_seed(10_000 + seed)
    train = q.sample((spec.num_train,), generator=g).float()
    val = q.sample((spec.num_val,), generator=g).float()
    return train, val


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def ckpt_path(ckpt_dir: Path, features: int, objective: str, seed: int) -> Path:
    return ckpt_dir / f"d{features}_{objective}_s{seed}.pt"


@torch.no_grad()
def _val_nll(model: MADE, val: Tensor) -> float:
    return float(-model(0.0).log_prob(val).mean())


def train_one(
    q: NoisyGaussianMixture,
    objective: str,
    seed: int,
    spec: TrainSpec,
    ckpt_dir: Path,
    log: Any = print,
) -> MADE:
    """Trains (or resumes, or just loads) one model; returns it with its best weights."""
    features = q.event_shape[0]
    path = ckpt_path(ckpt_dir, features, objective, seed)
    torch.manual_seed(seed)
    model = build_model(features, spec)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    state: dict[str, Any] = {"step": 0, "best": float("inf"), "bad": 0, "history": [],
                             "done": False, "seconds": 0.0}
    best_weights = {k: v.clone() for k, v in model.state_dict().items()}
    if path.exists():
        ck = torch.load(path, weights_only=True)
        if ck["spec"] != asdict(spec) or ck["objective"] != objective:
            raise ValueError(f"checkpoint {path} was made with another spec; delete it")
        model.load_state_dict(ck["weights"])
        opt.load_state_dict(ck["optimizer"])
        best_weights = ck["best_weights"]
        state = json.loads(ck["state"])
    train, val = data_for_seed(q, seed, spec)
    prior = prior_for(objective)
    g = torch.Generator().manual_seed(20_000 + seed)
    t0 = time.perf_counter() - state["seconds"]
    while not state["done"]:
        for _ in range(spec.eval_every):
            idx = torch.randint(0, train.shape[0], (spec.batch_size,), generator=g)
            loss = ncmle_loss(model, train[idx], prior, generator=g)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
            opt.step()
            state["step"] += 1
        nll = _val_nll(model, val)
        state["history"].append([state["step"], loss.item(), nll])
        if nll < state["best"]:
            state["best"], state["bad"] = nll, 0
            best_weights = {k: v.clone() for k, v in model.state_dict().items()}
            state["best_step"] = state["step"]
        else:
            state["bad"] += 1
        state["done"] = state["bad"] >= spec.patience or state["step"] >= spec.max_steps
        state["seconds"] = time.perf_counter() - t0
        log(f"[train d={features} {objective} s{seed}] step {state['step']} loss "
            f"{loss.item():.2f} val_nll0 {nll:.3f} best {state['best']:.3f} "
            f"({state['seconds']:.0f}s)")
        _atomic_save(
            {"spec": asdict(spec), "objective": objective, "config": model.config,
             "weights": model.state_dict(), "optimizer": opt.state_dict(),
             "best_weights": best_weights, "state": json.dumps(state)},
            path,
        )
    model.load_state_dict(best_weights)
    model.eval()
    model.train_state = state  # type: ignore[attr-defined]
    return model


def train_state(ckpt_dir: Path, features: int, objective: str, seed: int) -> dict[str, Any]:
    """The JSON state (history, best step, seconds) of a finished checkpoint."""
    ck = torch.load(ckpt_path(ckpt_dir, features, objective, seed), weights_only=True)
    return json.loads(ck["state"])
