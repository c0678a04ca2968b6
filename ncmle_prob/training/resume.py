r"""Whether a resume continues the same run: the options a checkpoint's run must keep.

A resumed run is bit-identical to the uninterrupted one only if everything that shapes the
updates is the same: the optimiser (``lr``, ``weight_decay``, ``grad_clip``, ``ema``, ``amp``),
the batches (``batch_size``, ``seed``, the number of training examples), the noise prior and
the early-stopping rule. A resume that asked for another value would otherwise be half
applied: ``torch.optim.Optimizer.load_state_dict`` restores the checkpoint's learning rate,
so a new ``lr`` would be silently ignored while the checkpoint recorded it as used.

:func:`resume_differences` lists what differs; :class:`~ncmle_prob.training.Trainer` refuses
such a resume with :class:`ResumeMismatchError`, one line naming each option, its recorded
value and the requested one. Only the number of processes (``world_size``) may change: the
global batch stays the same, the data order does not, and the run says so with a
:class:`ResumeOrderWarning`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "KEPT_OPTIONS",
    "ResumeMismatchError",
    "ResumeOrderWarning",
    "mismatch_message",
    "resume_differences",
]

#: ``train_config`` keys (``FitConfig`` field names) that a resume must keep
KEPT_OPTIONS: tuple[str, ...] = (
    "lr", "weight_decay", "grad_clip", "ema", "amp", "batch_size", "seed", "data_size",
    "prior", "patience", "monitor", "min_delta", "eval_every",
)

_EARLY_STOPPING = ("monitor", "min_delta", "eval_every")


class ResumeMismatchError(ValueError):
    """A resume asked for other optimiser, batch, noise or early-stopping options."""


class ResumeOrderWarning(UserWarning):
    """A resume on another number of processes: same updates in law, another data order."""


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):  # JSON makes lists
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    numbers = (int, float)
    if (isinstance(a, numbers) and isinstance(b, numbers)
            and not isinstance(a, bool) and not isinstance(b, bool)):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return bool(a == b)


def _flat(config: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The kept keys, a nested record (the prior) as ``prior.sigma_max`` etc."""
    out: dict[str, Any] = {}
    for key in keys:
        if key not in config:
            continue
        value = config[key]
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def resume_differences(before: Mapping[str, Any],
                       now: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """The kept options whose values differ: ``(name, recorded, requested)``.

    Keys missing on either side (checkpoints of older versions) are not compared.

    Args:
        before: the checkpoint's ``train_config``.
        now: this run's ``train_config``.

    Example:
        >>> resume_differences({"lr": 0.002, "seed": 0, "steps": 50},
        ...                    {"lr": 0.01, "seed": 0, "steps": 100})
        [('lr', 0.002, 0.01)]
        >>> resume_differences({"prior": {"sigma_max": 1.0, "ladder": []}},
        ...                    {"prior": {"sigma_max": 0.5, "ladder": ()}})
        [('prior.sigma_max', 1.0, 0.5)]

    ``steps`` may grow (train for longer); without ``patience``, ``eval_every``, ``monitor``
    and ``min_delta`` only decide what is logged and are not compared either.
    """
    keys = KEPT_OPTIONS if before.get("patience") is not None else tuple(
        k for k in KEPT_OPTIONS if k not in _EARLY_STOPPING)  # without it they only log
    a, b = _flat(before, keys), _flat(now, keys)
    return [(key, a[key], b[key]) for key in a if key in b and not _same(a[key], b[key])]


def mismatch_message(path: str | Path, diffs: list[tuple[str, Any, Any]]) -> str:
    """One line naming each differing option, its recorded value and the requested one.

    Example:
        >>> print(mismatch_message("run/last.pt", [("lr", 0.002, 0.01)]))  # doctest: +ELLIPSIS
        resume: run/last.pt was trained with lr=0.002; this call asks for lr=0.01. A resume ...
    """
    def show(values: list[tuple[str, Any]]) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in values)

    return (f"resume: {path} was trained with {show([(k, a) for k, a, _ in diffs])}; this call "
            f"asks for {show([(k, b) for k, _, b in diffs])}. A resume continues the same run: "
            "pass the checkpoint's values, or start a new run (resume=False, or another "
            "checkpoint_dir) from its weights")
