"""Atomic, code-free checkpoints: a JSON config plus tensors, read with ``weights_only=True``.

A checkpoint is one ``torch.save`` file holding only strings, numbers, lists, dicts and tensors:

* ``format`` / ``version``: identify the file as ours;
* ``model_class`` and ``model_config`` (JSON): rebuild the model with
  ``getattr(ncmle_prob.models, model_class)(**config)`` — only classes of
  :mod:`ncmle_prob.models` are ever built, so loading never runs code from the file;
* ``model``, ``ema``, ``optimizer``, ``scaler``: state dicts;
* ``step``, ``rng`` and ``train_config`` (JSON): what :func:`~ncmle_prob.training.fit` needs to
  resume bit-for-bit; ``history`` (JSON) and ``meta`` (JSON, e.g. the data's ``bins``).

Files are written to a temporary name in the same directory, flushed to disk and renamed over
the target with :func:`os.replace`, so a killed process leaves either the old or the new file,
never a truncated one.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._io import atomic_write  # re-exported: the writer lives at the bottom (ncmle_prob._io)

__all__ = [
    "FORMAT",
    "Checkpoint",
    "CheckpointError",
    "OldLayoutWarning",
    "atomic_write",
    "build_model",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "model_spec",
    "save_checkpoint",
]

FORMAT = "ncmle_prob.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, truncated, foreign or for another model."""


@dataclass
class Checkpoint:
    """The parsed content of a checkpoint file (see the module docstring)."""

    path: Path
    model_class: str | None
    model_config: dict[str, Any] | None
    model: dict[str, Tensor]
    ema: dict[str, Tensor] | None = None
    optimizer: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    step: int = 0
    rng: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    history: str = '{"train": [], "evals": []}'
    meta: dict[str, Any] = field(default_factory=dict)


def model_spec(model: nn.Module) -> tuple[str | None, dict[str, Any] | None]:
    """``(class name, JSON-able config)`` of a model of :mod:`ncmle_prob.models`, else Nones."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        return None, None
    json.dumps(config)  # fail early (TypeError) if the config is not JSON-able
    return type(model).__name__, dict(config)


def _model_class(name: str) -> type[nn.Module] | None:
    """The registered model class called ``name`` (kind ``"model"`` of the name registry,
    filled when a model class is defined), or ``None``."""
    from ..models.base import MODELS

    return MODELS.get(name) if isinstance(name, str) and name in MODELS else None


def build_model(model_class: str, config: dict[str, Any]) -> nn.Module:
    """Rebuilds the registered model class ``model_class`` from ``config``; other names are
    refused (loading a checkpoint never imports or runs code it names)."""
    cls = _model_class(model_class)
    if cls is None:
        raise CheckpointError(
            f"checkpoint names model class {model_class!r}, which is not a model of "
            "ncmle_prob.models; build the model yourself and pass it to load"
        )
    try:
        return cls(**config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"cannot rebuild {model_class} from the checkpoint's config: {e}"
        ) from e


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    ema: dict[str, Tensor] | None = None,
    scaler: Any = None,
    step: int = 0,
    rng: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    history: str | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Writes a checkpoint atomically (see the module docstring for the layout).

    Example:
        >>> import tempfile, pathlib
        >>> from ncmle_prob.models import MADE
        >>> model = MADE(features=2, hidden_features=8)
        >>> p = save_checkpoint(pathlib.Path(tempfile.mkdtemp()) / "m.pt", model, step=3)
        >>> load_checkpoint(p).step, type(load_model(p)).__name__
        (3, 'MADE')
    """
    model_class, config = model_spec(model)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model_class": model_class,
        "model_config": json.dumps(config) if config is not None else None,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "ema": {k: v.detach().cpu() for k, v in ema.items()} if ema is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "step": int(step),
        "rng": rng or {},
        "train_config": json.dumps(train_config or {}),
        "history": history if history is not None else '{"train": [], "evals": []}',
        "meta": json.dumps(meta or {}),
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


#: the first bytes of the files ``torch.save`` writes: a zip archive (since torch 1.6) or,
#: for the legacy format, a pickle protocol-2 header
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80\x02")


def _check_file_kind(path: Path) -> None:
    """One clear line for a file that is not a torch file at all (e.g. a text file)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise CheckpointError(f"{path} is not a readable checkpoint: the file is empty")
    if head.startswith(_TORCH_MAGIC):
        return
    try:
        head.decode("utf-8")
        kind = "a text file"
    except UnicodeDecodeError:
        kind = "not a file written by torch.save"
    raise CheckpointError(f"{path} is not a readable checkpoint: it is {kind}")


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> (
    Checkpoint
):
    """Reads and validates a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: missing file, unreadable (corrupt or truncated) file, or a file that
            is not an ncmle_prob checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    _check_file_kind(path)
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types (and long texts) for damaged files
        raise CheckpointError(
            f"{path} is not a readable checkpoint: a corrupt or truncated torch file "
            f"({type(e).__name__} while reading it)"
        ) from e
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        kind = type(raw).__name__ if not isinstance(raw, dict) else "a dict without our 'format'"
        raise CheckpointError(
            f"{path} is not an ncmle_prob checkpoint (found {kind}); it was saved by another "
            "program"
        )
    if raw.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {raw.get('version')!r}; this ncmle_prob reads "
            f"version {VERSION}"
        )
    try:
        config = raw["model_config"]
        return Checkpoint(
            path=path,
            model_class=raw["model_class"],
            model_config=json.loads(config) if config is not None else None,
            model=raw["model"],
            ema=raw.get("ema"),
            optimizer=raw.get("optimizer"),
            scaler=raw.get("scaler"),
            step=int(raw["step"]),
            rng=raw.get("rng") or {},
            train_config=json.loads(raw.get("train_config") or "{}"),
            history=raw.get("history") or '{"train": [], "evals": []}',
            meta=json.loads(raw.get("meta") or "{}"),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} is a damaged ncmle_prob checkpoint: {_first_line(e)}") from e


def _upgraded(ckpt: Checkpoint) -> tuple[dict[str, Any] | None, str | None]:
    """The checkpoint's model config in today's terms (the model class's ``upgrade_config``
    hook, e.g. MADE's layout of old checkpoints), and the hook's note, if any."""
    if ckpt.model_config is None or ckpt.model_class is None:
        return ckpt.model_config, None
    hook = getattr(_model_class(ckpt.model_class), "upgrade_config", None)
    if hook is None:
        return ckpt.model_config, None
    return hook(dict(ckpt.model_config), ckpt.model)


def check_compatible(ckpt: Checkpoint, model: nn.Module) -> None:
    """Raises :class:`CheckpointError` unless ``ckpt`` was saved for a model like ``model``
    (same class and, after the class's ``upgrade_config`` hook, the same config); the weights
    themselves are checked when :func:`load_weights` loads them."""
    model_class, config = model_spec(model)
    if ckpt.model_class is not None and model_class is not None:
        if ckpt.model_class != model_class:
            raise CheckpointError(
                f"{ckpt.path} holds a {ckpt.model_class}, not a {model_class}"
            )
        theirs_config = _upgraded(ckpt)[0]
        if theirs_config != config:
            diff = sorted(
                k for k in set(config) | set(theirs_config or {})
                if (theirs_config or {}).get(k) != config.get(k)
            )
            shown = ", ".join(
                f"{k}={(theirs_config or {}).get(k)!r} (model: {config.get(k)!r})" for k in diff
            )
            raise CheckpointError(f"{ckpt.path} was saved for another {model_class}: {shown}")


def load_weights(ckpt: Checkpoint, model: nn.Module, state: dict[str, Tensor] | None = None
                 ) -> None:
    """Loads ``state`` (default: ``ckpt.model``) into ``model`` with torch's
    ``load_state_dict``, which is also where old formats are upgraded (the model's
    ``_load_from_state_dict``, e.g. MADE's nflows-era state dicts); a mismatch is a
    :class:`CheckpointError` naming the file.
    """
    try:
        model.load_state_dict(ckpt.model if state is None else state)
    except RuntimeError as e:
        details = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
        raise CheckpointError(
            f"{ckpt.path} does not fit this model: {details[0] if details else _first_line(e)}"
        ) from None
    except ValueError as e:  # an old format the model refuses, with its hint
        raise CheckpointError(f"{ckpt.path}: {_first_line(e)}") from None


class OldLayoutWarning(UserWarning):
    """A checkpoint was written in a model layout kept only for loading (e.g. a MADE whose
    first dimension does not see σ)."""


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """One one-line warning per message and process."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, OldLayoutWarning, stacklevel=3)


def load_model(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    *,
    ema: bool = True,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Loads a trained model from a checkpoint.

    Args:
        path: checkpoint file.
        model: a model to fill in; if ``None`` it is rebuilt from the checkpoint's config.
        ema: use the averaged weights when the checkpoint has them.
        device: where to put the model.

    Returns:
        The model in eval mode.
    """
    ckpt = load_checkpoint(path)
    if model is None:
        if ckpt.model_class is None or ckpt.model_config is None:
            raise CheckpointError(
                f"{path} has no model config; build the model yourself and pass it as model="
            )
        config, note = _upgraded(ckpt)
        if note is not None:
            _warn_once(f"{path}: {note}")
        model = build_model(ckpt.model_class, config)  # type: ignore[arg-type]
    check_compatible(ckpt, model)
    load_weights(ckpt, model, ckpt.ema if (ema and ckpt.ema is not None) else ckpt.model)
    return model.to(device).eval()
