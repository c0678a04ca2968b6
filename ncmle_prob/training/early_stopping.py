r"""Early stopping on the validation bits/dim, derived from the recorded evaluations.

The state of early stopping (the best value, its step, and the evaluations since) is never
stored: it is recomputed from ``History.evals``, which checkpoints already hold, so a resumed
run decides exactly as the uninterrupted one would. With monitored values
:math:`v_1, v_2, \dots` (bits/dim of the validation set at the monitored σ, one per
evaluation), evaluation :math:`j` *improves* when

.. math::

    v_j < v_{b} - \delta, \qquad b = \text{the last evaluation that improved}

(the first evaluation always improves; :math:`\delta` is ``min_delta``). The best step is the
step of evaluation :math:`b`; training stops once ``patience`` evaluations in a row have not
improved. With :math:`\delta = 0` the best evaluation is the first :math:`\arg\min_j v_j`.

The weights evaluated at the best step are kept by :class:`BestWeights`: written atomically to
``best.pt`` when the run has a ``checkpoint_dir``, else held in memory.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import CheckpointError, atomic_write, load_checkpoint, save_checkpoint

__all__ = [
    "BEST_NAME",
    "BestWeights",
    "EarlyStoppingState",
    "broadcast_state",
    "early_stopping_state",
    "monitored_value",
    "stop_reason",
]

BEST_NAME = "best.pt"


@dataclass(frozen=True)
class EarlyStoppingState:
    """Where early stopping stands after a list of evaluations.

    Attributes:
        best_step: step of the best evaluation (``None`` before the first).
        best_value: its monitored bits/dim (``inf`` before the first).
        since_best: evaluations after the best one that did not improve on it.
        exhausted: ``since_best >= patience``: the run stops (or stopped) here.
    """

    best_step: int | None
    best_value: float
    since_best: int
    exhausted: bool


def monitored_value(row: dict[str, Any], monitor: float) -> float:
    """The bits/dim at σ = ``monitor`` of one ``History.evals`` row (``nan`` if missing)."""
    value = row["bits_per_dim"].get(repr(float(monitor)))
    return float(value) if value is not None else math.nan


def early_stopping_state(
    evals: Sequence[dict[str, Any]], monitor: float, patience: int, min_delta: float = 0.0
) -> EarlyStoppingState:
    """Early stopping's state after ``evals`` (rows of ``History.evals``, in order).

    Args:
        evals: the evaluations so far, each ``{"step": ..., "bits_per_dim": {repr(σ): ...}}``.
        monitor: the σ whose bits/dim is watched.
        patience: evaluations without improvement that stop training.
        min_delta: the decrease that counts as an improvement (``>= 0``).

    Returns:
        The :class:`EarlyStoppingState` (an evaluation of ``nan`` never improves).

    Example:
        >>> rows = [{"step": s, "bits_per_dim": {"0.0": v}}
        ...         for s, v in [(10, 3.0), (20, 2.5), (30, 2.6), (40, 2.7)]]
        >>> early_stopping_state(rows, 0.0, patience=2)
        EarlyStoppingState(best_step=20, best_value=2.5, since_best=2, exhausted=True)
        >>> early_stopping_state(rows[:3], 0.0, patience=2).exhausted
        False
    """
    best_step: int | None = None
    best, since = math.inf, 0
    for row in evals:
        value = monitored_value(row, monitor)
        if value < best - min_delta or (best_step is None and math.isfinite(value)):
            best_step, best, since = int(row["step"]), value, 0
        else:
            since += 1
    return EarlyStoppingState(best_step, best, since, since >= patience)


def stop_reason(state: EarlyStoppingState | None, config: Any, stopped_early: bool) -> str:
    """The ``History.stopped["reason"]`` of a run that ended (``config``: its ``FitConfig``).

    Example:
        >>> from ncmle_prob.training import FitConfig
        >>> cfg = FitConfig(steps=50, eval_every=10, patience=2)
        >>> stop_reason(EarlyStoppingState(20, 2.5, 2, True), cfg, True)
        'early stopping: validation bits/dim at σ=0 did not improve by more than 0 in 2 \
evaluations after the best, 2.5 at step 20 (patience 2)'
    """
    if not stopped_early:
        return "step budget"
    if state is None or state.best_step is None:  # not rank 0: the evaluations live there
        return "early stopping (decided on rank 0)"
    return (f"early stopping: validation bits/dim at σ={config.monitor_sigma:g} did not improve "
            f"by more than {config.min_delta:g} in {state.since_best} evaluations after the "
            f"best, {state.best_value:.6g} at step {state.best_step} (patience "
            f"{config.patience})")


class BestWeights:
    """The weights of the best evaluation: in ``best.pt`` (atomic) or, without a folder, in
    memory.

    Args:
        path: ``checkpoint_dir / "best.pt"``, or ``None`` to keep the weights in memory.

    Example:
        >>> keeper = BestWeights(None)
        >>> net = torch.nn.Linear(1, 1)
        >>> keeper.save(net, step=5, value=1.25, meta={})
        >>> keeper.step, sorted(keeper.load(5, 1.25))
        (5, ['bias', 'weight'])
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.step: int | None = None
        self.value: float | None = None
        self._state: dict[str, Tensor] | None = None

    def save(self, model: nn.Module, *, step: int, value: float, meta: dict[str, Any],
             train_config: dict[str, Any] | None = None) -> None:
        """Keeps ``model``'s weights as those of the evaluation at ``step`` (value ``value``)."""
        self.step, self.value = step, value
        if self.path is None:
            self._state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return
        self._state = None
        meta = {**meta, "best_step": step, "best_bits_per_dim": value}
        save_checkpoint(self.path, model, step=step, train_config=train_config, meta=meta)

    def adopt(self, files: Sequence[Path], step: int, value: float) -> bool:
        """Takes the first of ``files`` holding the weights of ``(step, value)``, if any (on
        resume; a ``best.pt`` left by a later step or another run is ignored)."""
        for f in files:
            try:
                ck = load_checkpoint(f)
            except CheckpointError:
                continue
            if ck.step == step and ck.meta.get("best_bits_per_dim") == value:
                self.step, self.value = step, value
                if self.path is None:
                    self._state = dict(ck.model)
                elif f != self.path:  # e.g. resume=PATH from another folder: copy it here
                    atomic_write(self.path, lambda fh, src=f: fh.write(src.read_bytes()))
                return True
        return False

    def load(self, step: int | None, value: float | None) -> dict[str, Tensor] | None:
        """The kept weights if they are those of ``(step, value)``, else ``None``."""
        if step is None or self.step != step or self.value != value:
            return None
        if self._state is not None:
            return self._state
        if self.path is None or not self.path.is_file():
            return None
        return load_checkpoint(self.path).model


    def restore(self, model: nn.Module, best: dict[str, Any] | None, distributed: bool) -> bool:
        """Loads the weights of ``best`` (``History.best``; ``None`` off rank 0) into ``model``
        on every rank; ``False`` (with a warning) if they were not kept."""
        state = self.load(best["step"], best["bits_per_dim"]) if best else None
        if distributed:
            state = broadcast_state(state, model, state is not None)
        if state is None:
            if best is not None:
                warnings.warn(
                    f"restore_best: the weights of the best evaluation (step {best['step']}) "
                    "were not kept (their best.pt is gone or from another run); the model keeps "
                    "its last weights", UserWarning, stacklevel=3,
                )
            return False
        model.load_state_dict(state)
        return True


def broadcast_state(state: dict[str, Tensor] | None, model: nn.Module, src_has: bool) -> (
    dict[str, Tensor] | None
):
    """Under torchrun, rank 0's ``state`` on every rank (others pass ``None``)."""
    import torch.distributed as dist

    own = model.state_dict()
    dev = next(iter(own.values())).device
    flag = torch.tensor([1.0 if src_has else 0.0], device=dev)
    dist.broadcast(flag, 0)
    if not flag.item():
        return None
    out = {k: (state[k] if state is not None else v).detach().clone().to(v.device)
           for k, v in own.items()}
    for t in out.values():
        dist.broadcast(t, 0)
    return out
