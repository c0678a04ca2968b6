"""The record a training run returns: logged losses and evaluations, JSON-able."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["History"]


@dataclass
class History:
    """Losses and evaluations of a :func:`~ncmle_prob.training.fit` run.

    Attributes:
        train: one dict per logging window: ``step`` (optimizer steps done), ``loss`` (mean
            NCMLE loss of the window, nats per example), ``bits_per_dim`` (mean bits/dim of the
            noised training batches, see :func:`ncmle_prob.objectives.bits_per_dim`),
            ``examples_per_s`` (global throughput) and ``grad_norm``.
        evals: one dict per evaluation: ``step`` and ``bits_per_dim``, a mapping from σ
            (as a string, JSON keys) to the mean bits/dim of the evaluation set at that σ.
        best: with early stopping, the best evaluation so far: ``step``, ``sigma`` (the
            monitored σ) and ``bits_per_dim`` (its value); recomputed from ``evals`` after
            each evaluation (``None`` without early stopping).
        stopped: set when the run ends: ``step`` (the step training stopped at) and
            ``reason`` (``"early stopping: ..."`` or ``"step budget"``).

    Example:
        >>> h = History()
        >>> h.train.append({"step": 10, "loss": 1.5})
        >>> History.from_json(h.to_json()).losses
        [(10, 1.5)]
        >>> h.stopped = {"step": 10, "reason": "step budget"}
        >>> History.from_json(h.to_json()).stop_reason, h.best_step
        ('step budget', None)
    """

    train: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    stopped: dict[str, Any] | None = None

    @property
    def best_step(self) -> int | None:
        """Step of the best evaluation under early stopping (``None``: none, or no early
        stopping)."""
        return int(self.best["step"]) if self.best else None

    @property
    def stopped_step(self) -> int | None:
        """The step the run stopped at (``None`` while it runs)."""
        return int(self.stopped["step"]) if self.stopped else None

    @property
    def stop_reason(self) -> str | None:
        """Why the run stopped: ``"early stopping: ..."``, ``"step budget"`` or ``None``."""
        return str(self.stopped["reason"]) if self.stopped else None

    @property
    def losses(self) -> list[tuple[int, float]]:
        """``(step, loss)`` pairs of the logged windows."""
        return [(int(r["step"]), float(r["loss"])) for r in self.train]

    @property
    def last_eval(self) -> dict[float, float]:
        """The last evaluation as ``{sigma: bits_per_dim}`` (empty if none ran)."""
        if not self.evals:
            return {}
        return {float(k): float(v) for k, v in self.evals[-1]["bits_per_dim"].items()}

    def to_json(self) -> str:
        """Serialises the history to a JSON string."""
        return json.dumps({"train": self.train, "evals": self.evals, "best": self.best,
                           "stopped": self.stopped})

    @classmethod
    def from_json(cls, text: str) -> History:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(train=list(data.get("train", [])), evals=list(data.get("evals", [])),
                   best=data.get("best"), stopped=data.get("stopped"))
