"""``FitConfig``: every option of :func:`~ncmle_prob.training.fit`, checked in one place."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..distributions.validation import check_positive_int as _check_int
from ..objectives import NoiseLevelPrior

__all__ = ["FitConfig", "check_positive_int"]


def check_positive_int(name: str, value: object, *, allow_none: bool = False) -> int | None:
    """``value`` as an ``int`` if it is a positive integer (``None`` too if allowed).

    :func:`ncmle_prob.distributions.validation.check_positive_int` with ``None`` allowed and
    floats refused (an option count given as ``2.0`` is a typo).

    Raises:
        ValueError: naming ``name`` and the value received.

    Example:
        >>> check_positive_int("steps", 5)
        5
    """
    if value is None and allow_none:
        return None
    if isinstance(value, float):  # a size given as 2.0 is a typo here, not a size
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return _check_int(name, value, minimum=1)


def _check_number(name: str, value: object, *, positive: bool, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0) or (not positive and value < 0):  # type: ignore[operator]
        rule = "a positive finite number" if positive else "a finite number >= 0"
        raise ValueError(f"{name} must be {rule}{' or None' if allow_none else ''}, got {value!r}")


@dataclass
class FitConfig:
    """The options of a training run (all have defaults; validated on construction).

    Attributes:
        prior: noise-level prior (default ``NoiseLevelPrior()``; ``NoiseLevelPrior.mle()`` is
            plain MLE).
        steps: number of optimizer steps (exclusive with ``epochs``).
        epochs: passes over the data (incomplete last batches are dropped).
        batch_size: global batch size, divisible by the number of processes (tensors and
            data sets; a user ``DataLoader`` brings its own).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        ema: decay in [0, 1) of an average of the weights the model ends with (``None``: off).
        amp: ``"bf16"`` or ``"fp16"`` autocast (CUDA only), or ``None``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        eval_sigmas: noise levels of the bits/dim evaluations.
        eval_every: evaluate every this many steps (and always at the end).
        patience: early stopping: stop once this many evaluations in a row have not improved
            the monitored validation bits/dim (``None``: off). Needs ``eval_every`` and
            ``eval_data``; see :mod:`ncmle_prob.training.early_stopping`.
        monitor: the σ of ``eval_sigmas`` whose validation bits/dim early stopping watches
            (``None``: the first). Only with ``patience``.
        min_delta: a decrease of the monitored bits/dim by more than this counts as an
            improvement (default 0). Only with ``patience``.
        restore_best: with ``patience``, end with the weights of the best evaluation (the EMA
            weights when ``ema`` is on, as evaluations use them) rather than the last ones.
            They are also written to ``checkpoint_dir/best.pt``.
        bins: grid levels of the data (bits/dim bin width); default: the data set's or the
            family's ``bins``.
        checkpoint_dir: where ``last.pt`` is written atomically (``None``: no checkpoints).
        checkpoint_every: checkpoint every this many steps (and always at the end).
        resume: ``True`` to continue from ``checkpoint_dir/last.pt`` when it exists, or a path.
        seed: seed of the data order, the noise and dropout.
        log_every: steps per logged window (history and progress bar).
        progress: show a tqdm bar (rank 0 only).
        num_workers: :class:`~torch.utils.data.DataLoader` worker processes that read a
            ``Dataset`` (0: in the main process). Unused for tensors.
        pin_memory: pin the batches read from a ``Dataset`` (``None``: on CUDA only).
        meta: JSON-able facts stored with checkpoints (e.g. the data set's name).

    Example:
        >>> FitConfig(steps=100, batch_size=32).replace(lr=1e-2).lr
        0.01
        >>> FitConfig(steps=0)
        Traceback (most recent call last):
        ...
        ValueError: steps must be an integer >= 1, got 0

        Early stopping on the validation bits/dim at σ = 0.1, checked every 50 steps:

        >>> FitConfig(steps=5000, eval_every=50, eval_sigmas=(0.0, 0.1), patience=10,
        ...           monitor=0.1).monitor_sigma
        0.1
        >>> FitConfig(steps=5000, patience=10)
        Traceback (most recent call last):
        ...
        ValueError: patience=10 needs eval_every (evaluate every N steps) and eval_data (the \
validation set the evaluations use); eval_every is None
    """

    prior: NoiseLevelPrior = field(default_factory=NoiseLevelPrior)
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = None
    ema: float | None = None
    amp: str | None = None
    device: str | torch.device | None = "cpu"
    eval_sigmas: Sequence[float] = (0.0,)
    eval_every: int | None = None
    patience: int | None = None
    monitor: float | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    bins: int | None = None
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int | None = None
    resume: bool | str | Path = False
    seed: int = 0
    log_every: int = 10
    progress: bool = True
    num_workers: int = 0
    pin_memory: bool | None = None
    meta: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.prior is None:
            self.prior = NoiseLevelPrior()
        if not isinstance(self.prior, NoiseLevelPrior):
            raise TypeError(f"prior must be a NoiseLevelPrior, got {type(self.prior).__name__}")
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(
                f"give exactly one of steps and epochs, got steps={self.steps!r}, "
                f"epochs={self.epochs!r}"
            )
        for name in ("steps", "epochs", "eval_every", "checkpoint_every"):
            check_positive_int(name, getattr(self, name), allow_none=True)
        for name in ("batch_size", "log_every"):
            check_positive_int(name, getattr(self, name))
        if self.bins is not None and (
            isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 2
        ):
            raise ValueError(f"bins must be an integer >= 2 or None, got {self.bins!r}")
        _check_number("lr", self.lr, positive=True, allow_none=False)
        _check_number("weight_decay", self.weight_decay, positive=False, allow_none=False)
        _check_number("grad_clip", self.grad_clip, positive=True, allow_none=True)
        if self.ema is not None and (
            isinstance(self.ema, bool) or not isinstance(self.ema, (int, float))
            or not 0.0 <= self.ema < 1.0
        ):
            raise ValueError(f"ema must be a decay in [0, 1) or None, got {self.ema!r}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {self.amp!r}")
        try:
            sigmas = tuple(float(s) for s in self.eval_sigmas)
        except (TypeError, ValueError):
            raise ValueError(
                f"eval_sigmas must be a sequence of numbers, got {self.eval_sigmas!r}"
            ) from None
        if not sigmas or any(not math.isfinite(s) or s < 0 for s in sigmas):
            raise ValueError(f"eval_sigmas must be finite numbers >= 0, got {self.eval_sigmas!r}")
        self.eval_sigmas = sigmas
        self._check_early_stopping()
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or (
            self.num_workers < 0
        ):
            raise ValueError(f"num_workers must be an integer >= 0, got {self.num_workers!r}")
        if self.pin_memory not in (None, True, False):
            raise ValueError(f"pin_memory must be True, False or None, got {self.pin_memory!r}")
        if self.meta is not None and not isinstance(self.meta, Mapping):
            raise TypeError(f"meta must be a dict or None, got {type(self.meta).__name__}")
        if not isinstance(self.resume, (bool, str, Path)):
            raise TypeError(
                f"resume must be True/False or a checkpoint path, got {type(self.resume).__name__}"
            )
        if self.resume is True and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir (where last.pt is looked for)")

    def _check_early_stopping(self) -> None:
        """``patience``, ``monitor``, ``min_delta`` and ``restore_best``, checked together."""
        check_positive_int("patience", self.patience, allow_none=True)
        _check_number("min_delta", self.min_delta, positive=False, allow_none=False)
        if not isinstance(self.restore_best, bool):
            raise TypeError(f"restore_best must be True or False, got {self.restore_best!r}")
        if self.monitor is not None:
            _check_number("monitor", self.monitor, positive=False, allow_none=False)
            if float(self.monitor) not in self.eval_sigmas:
                raise ValueError(
                    f"monitor={self.monitor!r} must be one of eval_sigmas "
                    f"{list(self.eval_sigmas)} (the σ whose validation bits/dim is watched)"
                )
            self.monitor = float(self.monitor)
        if self.patience is None:
            if self.monitor is not None or self.min_delta != 0:
                raise ValueError(
                    f"monitor={self.monitor!r} and min_delta={self.min_delta!r} are options of "
                    "early stopping: set patience too (or leave them at their defaults)"
                )
            return
        if self.eval_every is None:
            raise ValueError(
                f"patience={self.patience} needs eval_every (evaluate every N steps) and "
                "eval_data (the validation set the evaluations use); eval_every is None"
            )

    @property
    def monitor_sigma(self) -> float:
        """The σ early stopping watches: ``monitor``, or the first of ``eval_sigmas``.

        Example:
            >>> FitConfig(steps=9, eval_sigmas=(0.1, 0.0), patience=2, eval_every=3).monitor_sigma
            0.1
        """
        return float(self.monitor) if self.monitor is not None else float(self.eval_sigmas[0])

    @classmethod
    def from_options(cls, base: FitConfig | None = None, **options: Any) -> FitConfig:
        """``base`` (or the defaults) with ``options`` replaced; unknown names are a TypeError.

        Example:
            >>> FitConfig.from_options(steps=3, btach_size=4)
            Traceback (most recent call last):
            ...
            TypeError: unknown fit option 'btach_size' (did you mean 'batch_size'?)
        """
        names = [f.name for f in dataclasses.fields(cls)]
        for key in options:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(f"unknown fit option {key!r}{hint}")
        if base is None:
            return cls(**options)
        if not isinstance(base, FitConfig):
            raise TypeError(f"config must be a FitConfig or None, got {type(base).__name__}")
        return base.replace(**options)

    def replace(self, **changes: Any) -> FitConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The JSON-able record stored in checkpoints as ``train_config``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "prior":
                v = dataclasses.asdict(v)
            elif isinstance(v, (Path, torch.device)):
                v = str(v)
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out
