"""The model catalogue: one record per built-in network, the one list every other list reads.

It imports nothing but the standard library (no torch, nothing of the library), so the command
line checks ``--model`` against it before importing anything heavy. The ``ncmle train
--model`` choices and help, the checkpoints' class lookup (:data:`~ncmle_prob.models.base.MODELS`
registers each record lazily, by import path), the resume check that a checkpoint holds the
requested network, and the commands that must know whether a network reads flat vectors or
images all read :data:`CATALOGUE`.

Adding a built-in model is its module in ``ncmle_prob/models/``, one record here, and, for
``ncmle train``, its builder in :mod:`ncmle_prob.cli.train` (a test checks that the two lists
agree); see ``docs/architecture.rst``.

Example:
    >>> lookup("made").class_name, lookup("pixelcnnpp").input
    ('MADE', 'image')
    >>> names()
    ('made', 'pixelcnnpp')
    >>> by_class("PixelCNNPP").name
    'pixelcnnpp'
    >>> lookup("transformer")
    Traceback (most recent call last):
    ...
    ValueError: unknown model 'transformer'; choose from made, pixelcnnpp
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CATALOGUE", "ModelRecord", "by_class", "lookup", "names"]


@dataclass(frozen=True)
class ModelRecord:
    """One built-in network.

    Attributes:
        name: the command-line name (``ncmle train --model NAME``; a checkpoint's
            ``meta["model"]``).
        class_name: the class's name, under which checkpoints store it and
            :data:`~ncmle_prob.models.base.MODELS` finds it.
        target: ``"module:Class"``, imported on first use (so this module stays torch-free).
        input: what one example is to the network: ``"vector"`` (a flat ``(D,)`` vector; images
            are flattened) or ``"image"`` (a ``(C, H, W)`` image).
        description: one line for help texts and docs.
    """

    name: str
    class_name: str
    target: str
    input: Literal["vector", "image"]
    description: str = ""


#: The built-in networks, in the order help texts list them (the first is the default).
CATALOGUE: tuple[ModelRecord, ...] = (
    ModelRecord("made", "MADE", "ncmle_prob.models.made:MADE", "vector",
                "masked autoencoder (MADE) on flat vectors; images are flattened"),
    ModelRecord("pixelcnnpp", "PixelCNNPP", "ncmle_prob.models.pixelcnnpp.network:PixelCNNPP",
                "image", "PixelCNN++ on (C, H, W) images"),
)


def names() -> tuple[str, ...]:
    """The command-line names, in catalogue order."""
    return tuple(r.name for r in CATALOGUE)


def lookup(name: str) -> ModelRecord:
    """The record called ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    for record in CATALOGUE:
        if record.name == name:
            return record
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(names())}")


def by_class(class_name: str) -> ModelRecord | None:
    """The record of the class called ``class_name`` (``None``: not a built-in network)."""
    for record in CATALOGUE:
        if record.class_name == class_name:
            return record
    return None
