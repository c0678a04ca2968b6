"""Pretrained models shipped inside the package: load a trained model in one line, offline.

Every model of the zoo is a folder ``zoo/NAME/`` of this package holding

* ``card.json``: the model card (plain JSON, read with :func:`json.load`: no code runs), with
  the data and splits, objective and noise prior, architecture, the exact training command and
  the update at which early stopping took the weights, test bits/dim at
  σ ∈ {0, 0.05, 0.1, 0.2, 0.5}, sample metrics beside their real-vs-real floor, samples/s, the
  library version and the SHA-256 of the weights;
* ``model.pt``: an ncmle_prob checkpoint (:mod:`ncmle_prob.training.checkpoint`) with the
  weights only (no optimiser), read with ``torch.load(weights_only=True)`` after its size and
  SHA-256 are checked against the card.

``scripts/build_zoo.py`` writes both from a training run (and reproduces every card from
scratch). Nothing here downloads anything; :func:`available` and :func:`card` import neither
torch nor Pyro.

Example:
    >>> from ncmle_prob import pretrained
    >>> "digits-made-ncmle" in pretrained.available()
    True
    >>> pretrained.card("digits-made-ncmle")["objective"]
    'ncmle'
    >>> model = pretrained.load("digits-made-ncmle")
    >>> model.card["name"], tuple(model(0.1).sample((2,)).shape)
    ('digits-made-ncmle', (2, 64))
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "CARD_FILE",
    "PREFIX",
    "TASKS",
    "WEIGHTS_FILE",
    "ZOO",
    "PretrainedError",
    "available",
    "card",
    "load",
    "resolve",
    "sha256",
    "summary_line",
    "summary_lines",
    "weights_path",
]

#: the folder of the shipped models (one sub-folder per model)
ZOO = Path(__file__).resolve().parent / "zoo"
CARD_FILE = "card.json"
WEIGHTS_FILE = "model.pt"
#: how the command line names a shipped model where it takes a checkpoint
PREFIX = "pretrained:"
#: what a card's ``tasks`` may list: the ``ncmle`` commands that take the model
TASKS = ("sample", "evaluate", "restore")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_CHUNK = 1 << 20


class PretrainedError(ValueError):
    """An unknown model name, or a shipped model whose card or weights are damaged."""


def _zoo() -> Path:
    # the module global, read at each call: tests point ZOO at a damaged copy
    return Path(ZOO)


def available() -> list[str]:
    """Names of the shipped models, sorted.

    Example:
        >>> from ncmle_prob import pretrained
        >>> all(isinstance(n, str) for n in pretrained.available())
        True
    """
    zoo = _zoo()
    if not zoo.is_dir():
        return []
    return sorted(p.name for p in zoo.iterdir() if (p / CARD_FILE).is_file())


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    names = available()
    if name not in names or not _NAME.match(name):
        shown = ", ".join(names) if names else "(none: this installation ships no models)"
        raise PretrainedError(f"unknown pretrained model {name!r}; available: {shown}")
    return name


def card(name: str) -> dict[str, Any]:
    """The model card of ``name`` as a dict (a fresh copy: changing it changes nothing).

    Args:
        name: a name of :func:`available`.

    Raises:
        PretrainedError: an unknown name (the message lists the available ones) or a card that
            is not valid JSON.

    Example:
        >>> from ncmle_prob import pretrained
        >>> c = pretrained.card("digits-made-ncmle")
        >>> sorted(c["test_bits_per_dim"])
        ['0', '0.05', '0.1', '0.2', '0.5']
        >>> pretrained.card("cifar")
        Traceback (most recent call last):
        ...
        ncmle_prob.pretrained.PretrainedError: unknown pretrained model 'cifar'; available: ...
    """
    path = _zoo() / _check_name(name) / CARD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PretrainedError(f"pretrained model {name!r}: its card {path} is not readable JSON "
                              f"({type(e).__name__}); reinstall ncmle_prob") from e
    for key in ("sha256", "bytes"):
        if key not in data.get("weights", {}):
            raise PretrainedError(f"pretrained model {name!r}: its card {path} has no "
                                  f"weights.{key}; reinstall ncmle_prob")
    return copy.deepcopy(data)


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
        >>> _ = p.write_bytes(b"abc")
        >>> sha256(p)[:16]
        'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def weights_path(name: str) -> Path:
    """The weight file of ``name``, after checking its size and SHA-256 against the card.

    Raises:
        PretrainedError: an unknown name, a missing file, a file of another size than the card
            says (truncated or replaced) or a checksum mismatch.

    Example:
        >>> from ncmle_prob import pretrained
        >>> pretrained.weights_path("digits-made-ncmle").name
        'model.pt'
    """
    info = card(name)["weights"]
    path = _zoo() / name / WEIGHTS_FILE
    if not path.is_file():
        raise PretrainedError(f"pretrained model {name!r}: its weight file {path} is missing; "
                              "reinstall ncmle_prob")
    size = path.stat().st_size
    if size != int(info["bytes"]):
        raise PretrainedError(
            f"pretrained model {name!r}: {path} has {size} bytes, its card says "
            f"{info['bytes']} (a truncated or replaced file); reinstall ncmle_prob")
    digest = sha256(path)
    if digest != info["sha256"]:
        raise PretrainedError(
            f"pretrained model {name!r}: checksum mismatch, {path} has SHA-256 {digest[:16]}..., "
            f"its card says {info['sha256'][:16]}... (a damaged or replaced file); reinstall "
            "ncmle_prob")
    return path


def load(name: str, device: str | torch.device | None = None) -> nn.Module:
    """The pretrained model ``name``, verified, in eval mode, with its card as ``.card``.

    The weights are checked against the card's size and SHA-256, then read with
    ``torch.load(weights_only=True)`` (no code from the file runs) into a model of
    :mod:`ncmle_prob.models` rebuilt from the checkpoint's JSON config. Weights stored in
    float16 (where the card's ``weights.dtype`` says so) are loaded into float32 parameters.

    Args:
        name: a name of :func:`available`.
        device: where to put the model (default: CPU).

    Returns:
        The model: ``model(sigma)`` gives the distribution p(x | σ).

    Raises:
        PretrainedError: an unknown name (listing the available ones), a damaged card, or
            weights whose size or checksum do not match the card.

    Example:
        >>> import torch
        >>> from ncmle_prob import pretrained
        >>> model = pretrained.load("digits-made-mle")
        >>> model.card["objective"], next(model.parameters()).dtype
        ('mle', torch.float32)
    """
    from ..training.checkpoint import CheckpointError, load_model

    path = weights_path(name)
    info = card(name)
    try:
        model = load_model(path, device=device if device is not None else "cpu")
    except CheckpointError as e:
        raise PretrainedError(f"pretrained model {name!r}: {e}") from e
    model.card = info
    return model


def resolve(text: str, task: str | None = None) -> str:
    """``pretrained:NAME`` → the verified weight file of ``NAME``; any other text unchanged.

    This is how the command line takes a shipped model wherever it takes a checkpoint.

    Args:
        text: a checkpoint path, or ``pretrained:NAME``.
        task: the command asking (one of :data:`TASKS`); the card's ``tasks`` must list it.

    Raises:
        PretrainedError: unknown name, damaged weights, or a model whose card does not list
            ``task`` (e.g. a model of 2-D points given to an image restoration).

    Example:
        >>> from ncmle_prob import pretrained
        >>> pretrained.resolve("runs/last.pt")
        'runs/last.pt'
        >>> pretrained.resolve("pretrained:digits-made-ncmle", "restore").endswith("model.pt")
        True
    """
    if not text.startswith(PREFIX):
        return text
    name = text[len(PREFIX):]
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    info = card(name)
    tasks = info.get("tasks", list(TASKS))
    if task is not None and task not in tasks:
        raise PretrainedError(
            f"{text} cannot be used by '{task}': it is {_what(info)}, and its card lists the "
            f"tasks {', '.join(tasks)}")
    return str(weights_path(name))


def _what(info: dict[str, Any]) -> str:
    arch = info.get("architecture", {}).get("class", "model")
    data = info.get("data", {})
    shape = data.get("image_shape")
    kind = ("x".join(map(str, shape[1:])) + " images") if shape else (
        f"{data.get('event_shape', ['?'])[0]}-D points")
    return f"a {arch} of {kind} ({data.get('spec', '?')})"


def summary_line(info: dict[str, Any], widths: tuple[int, int] | None = None) -> str:
    """One line describing a card: name, data, model, objective, size, bits/dim, FCD.

    Args:
        info: a card (:func:`card`).
        widths: the name and description columns' widths, to align the lines of several
            cards (:func:`summary_lines`); default: this card's own (no padding).

    Example:
        >>> from ncmle_prob import pretrained
        >>> pretrained.summary_line(pretrained.card("digits-made-ncmle")).split()[0]
        'digits-made-ncmle'
    """
    bpd = info.get("test_bits_per_dim", {})
    sampler = info.get("samples", {}).get("recommended_sampler")
    metrics = info.get("samples", {}).get("metrics", {}).get(sampler or "", {})
    fcd = metrics.get("fcd")
    floor = metrics.get("fcd_floor")
    name_width, what_width = widths or (0, 0)
    parts = [
        f"{info.get('name', '?'):<{name_width}}",
        f"{_what(info):<{what_width}}",
        f"{info.get('objective', '?').upper():<5}",
        f"{info.get('weights', {}).get('bytes', 0) / 1e6:.2f} MB",
        "bits/dim " + " ".join(f"σ={s}: {bpd[s]:.3f}" for s in ("0", "0.1", "0.5") if s in bpd),
    ]
    if fcd is not None:
        parts.append(f"FCD {fcd:.2f} (floor {floor:.2f}, {sampler})" if floor is not None
                     else f"FCD {fcd:.2f} ({sampler})")
    return "  ".join(parts)


def summary_lines(cards: list[dict[str, Any]]) -> list[str]:
    """:func:`summary_line` of each card, with the name and description columns aligned.

    Example:
        >>> from ncmle_prob import pretrained
        >>> cards = [pretrained.card(n) for n in pretrained.available()]
        >>> lines = pretrained.summary_lines(cards)
        >>> len({line.index(c["objective"].upper() + " ") for line, c in zip(lines, cards)})
        1
    """
    widths = (max((len(str(c.get("name", "?"))) for c in cards), default=0),
              max((len(_what(c)) for c in cards), default=0))
    return [summary_line(c, widths) for c in cards]
