"""``.npy`` / ``.npz`` arrays of images or vectors as a data set (``.npy`` memory-mapped)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .base import DataFileError, DatasetNotFoundError, GridDataset, to_grid
from .splits import split_indices

__all__ = ["ArrayDataset"]

_CHUNK = 4096  # examples per chunk of the range check (bounded memory on huge arrays)


def _open(path: Path, key: str | None, split: str) -> tuple[np.ndarray, str, bool]:
    """The array, a description of where it came from, and whether it is already the split."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.files)
                if key is None:
                    for cand in (split, f"x_{split}"):
                        if cand in names:
                            key = cand
                            break
                    else:
                        if len(names) != 1:
                            raise DataFileError(
                                f"{path} holds arrays {names}; name one with key=..., or store "
                                f"'train' and 'test' (or 'x_train' and 'x_test')"
                            )
                        key = names[0]
                if key not in names:
                    raise DataFileError(f"{path} has no array {key!r}; it holds {names}")
                arr = z[key]
            presplit = key in (split, f"x_{split}")
            return arr, f"{path}[{key}]", presplit
        return np.load(path, mmap_mode="r", allow_pickle=False), str(path), False
    except DataFileError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataFileError(f"{path} is not a readable (complete) .npy/.npz file: {e}") from e


def _layout(arr: np.ndarray, where: str) -> tuple[int, ...]:
    """The event shape: (C, H, W) for images, (D,) for vectors; channel-last is transposed."""
    if arr.ndim == 2:
        return (arr.shape[1],)
    if arr.ndim == 3:
        return (1, arr.shape[1], arr.shape[2])
    if arr.ndim == 4 and arr.shape[1] in (1, 3):
        return tuple(arr.shape[1:])
    if arr.ndim == 4 and arr.shape[3] in (1, 3):
        return (arr.shape[3], arr.shape[1], arr.shape[2])
    raise DataFileError(
        f"{where} has shape {arr.shape}; expected (N, D) vectors, (N, H, W) grey images, or "
        "(N, C, H, W) / (N, H, W, C) images with C = 1 or 3"
    )


class ArrayDataset(GridDataset):
    """Examples stored in a ``.npy`` file (memory-mapped: rows are read when used) or a ``.npz``.

    Accepted contents:

    * ``uint8`` (or another integer type with values in 0..255): 8-bit levels, mapped by
      :func:`~ncmle_prob.data.to_grid` to ``bins`` levels (default 256);
    * floating point: finite values used as they are. With ``bins`` given they must lie in
      [-1, 1] on that grid (snapped to the exact grid values); without, the data are
      continuous (``bins`` is ``None``, any finite values, e.g. 2-D vectors).

    Shapes: ``(N, D)`` vectors, ``(N, H, W)`` grey images, ``(N, C, H, W)`` or
    ``(N, H, W, C)`` images with ``C`` = 1 or 3. A ``.npz`` may hold ``train`` and ``test``
    (or ``x_train`` / ``x_test``) arrays, which ``split`` picks; a single array (and every
    ``.npy``) is split by :func:`~ncmle_prob.data.splits.split_indices`.

    The whole array is checked on construction, in chunks (bounded memory): dtype, finiteness
    and range, and the grid for floats with ``bins``. A truncated file is refused.

    Args:
        path: the ``.npy`` or ``.npz`` file.
        split: ``"train"``, ``"test"`` or ``"all"``.
        key: the array of a ``.npz`` to read (default: see above).
        bins: grid levels (default: 256 for integer data, ``None`` for floats).
        flatten: examples as vectors.

    Raises:
        DatasetNotFoundError: no such file.
        DataFileError: truncated or unreadable file, wrong dtype, values out of range or off
            the grid, an unsupported shape.

    Example:
        >>> import tempfile, pathlib
        >>> import numpy as np
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
        >>> np.save(p, np.full((20, 4, 4), 255, dtype=np.uint8))
        >>> ds = ArrayDataset(p, split="train")
        >>> len(ds), ds.event_shape, ds.bins, float(ds[0].min())
        (18, torch.Size([1, 4, 4]), 256, 1.0)
    """

    def __init__(self, path: str | os.PathLike[str], *, split: str = "train",
                 key: str | None = None, bins: int | None = None, flatten: bool = False) -> None:
        path = Path(path)
        if not path.is_file():
            raise DatasetNotFoundError(f"array file {path} does not exist")
        if path.suffix not in (".npy", ".npz"):
            raise DataFileError(f"{path} must be a .npy or .npz file")
        arr, where, presplit = _open(path, key, split)
        if arr.shape[0] == 0:
            raise DataFileError(f"{where} is empty (shape {arr.shape})")
        event = _layout(arr, where)
        self.channel_last = arr.ndim == 4 and arr.shape[1] not in (1, 3)
        kind = arr.dtype.kind
        if kind in "iu":
            self.integer = True
            bins = 256 if bins is None else bins
            to_grid(torch.zeros(1, dtype=torch.long), 255, bins)  # checks bins
        elif kind == "f":
            self.integer = False
        else:
            raise DataFileError(
                f"{where} has dtype {arr.dtype}; expected uint8 levels 0..255 or floats in [-1, 1]"
            )
        self._check_values(arr, where, bins)
        rows = list(range(arr.shape[0])) if presplit else split_indices(
            arr.shape[0], split, where=where)
        super().__init__(name="npy", event_shape=event, bins=bins, split=split, source=where,
                         length=len(rows), flatten=flatten)
        self.array, self.rows = arr, np.asarray(rows, dtype=np.int64)

    def _check_values(self, arr: np.ndarray, where: str, bins: int | None) -> None:
        for start in range(0, arr.shape[0], _CHUNK):
            chunk = np.asarray(arr[start : start + _CHUNK])
            if self.integer:
                lo, hi = int(chunk.min()), int(chunk.max())
                if lo < 0 or hi > 255:
                    raise DataFileError(
                        f"{where} holds integer values in [{lo}, {hi}]; 8-bit levels must lie "
                        "in 0..255"
                    )
                continue
            if not np.isfinite(chunk).all():
                row = start + int(np.nonzero(~np.isfinite(chunk.reshape(len(chunk), -1))
                                             .all(1))[0][0])
                raise DataFileError(f"{where} has NaN/inf values (first in example {row})")
            lo, hi = float(chunk.min()), float(chunk.max())
            if bins is not None:
                if lo < -1 or hi > 1:
                    raise DataFileError(
                        f"{where} holds values in [{lo:g}, {hi:g}]; grid data must lie in "
                        "[-1, 1] (or store uint8 levels 0..255)"
                    )
                k = (chunk.astype(np.float64) + 1) * (bins - 1) / 2
                if np.abs(k - np.round(k)).max() > 1e-4:
                    raise DataFileError(
                        f"{where} has values off the grid of bins={bins} levels in [-1, 1]"
                    )

    def _read(self, indices: list[int]) -> Tensor:
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        order = np.argsort(rows)  # sorted reads are sequential on the memory map
        block = np.empty((len(rows), *self.array.shape[1:]), dtype=self.array.dtype)
        block[order] = self.array[rows[order]]
        if self.channel_last:
            block = block.transpose(0, 3, 1, 2)
        t = torch.from_numpy(np.ascontiguousarray(block))
        if self.integer:
            return to_grid(t.long(), 255, self.bins or 256)
        t = t.to(torch.float32)
        if self.bins is not None:  # snap float rounding onto the exact grid values
            t = to_grid(torch.round((t.double() + 1) * (self.bins - 1) / 2).long(),
                        self.bins - 1, self.bins)
        return t.reshape(len(rows), *self.image_shape)
