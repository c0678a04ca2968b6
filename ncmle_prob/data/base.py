"""The container every loader returns, and the grid scaling of DESIGN.md §1."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "DataFileError",
    "DatasetNotFoundError",
    "GridDataset",
    "ImageData",
    "TensorGridDataset",
    "to_grid",
]


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are missing; the message says where we looked and how to get them."""


class DataFileError(ValueError):
    """A data file is unreadable, truncated or holds the wrong kind of data; the message names
    the file and what is wrong."""


def to_grid(levels: Tensor, max_level: int, bins: int) -> Tensor:
    """Maps integer levels ``0..max_level`` onto ``bins`` levels of [-1, 1].

    .. math::

        x = \\frac{2\\, \\mathrm{round}(v\\,(\\text{bins}-1)/v_{\\max})}{\\text{bins}-1} - 1

    (the rounding only acts when re-quantising to fewer levels).

    Example:
        >>> to_grid(torch.tensor([0, 8, 16]), 16, 17)
        tensor([-1.,  0.,  1.])
    """
    if int(bins) != bins or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    if bins - 1 > max_level:
        raise ValueError(f"bins={bins} exceeds the data's {max_level + 1} levels")
    v = levels.to(torch.float64)
    if bins - 1 != max_level:
        v = torch.round(v * (bins - 1) / max_level)
    return (2.0 * v / (bins - 1) - 1.0).to(torch.float32)


@dataclass(frozen=True)
class ImageData:
    """A train/test split of grid data in [-1, 1].

    Attributes:
        name: data set name.
        train: training images ``(N, C, H, W)`` (or ``(N, D)`` after :meth:`flatten`).
        test: test images, same layout.
        bins: grid levels (bin width ``2 / (bins - 1)``).
        image_shape: ``(C, H, W)`` of one image.
        train_labels: class labels, if the data set has them.
        test_labels: class labels, if the data set has them.
        source: where the data were read from.
    """

    name: str
    train: Tensor
    test: Tensor
    bins: int
    image_shape: tuple[int, int, int]
    train_labels: Tensor | None = None
    test_labels: Tensor | None = None
    source: str = ""

    def flatten(self) -> ImageData:
        """The same data as vectors ``(N, C*H*W)`` (raster order), e.g. for MADE."""
        return replace(
            self,
            train=self.train.reshape(self.train.shape[0], -1),
            test=self.test.reshape(self.test.shape[0], -1),
        )

    @property
    def features(self) -> int:
        """Dimensions of one example."""
        c, h, w = self.image_shape
        return c * h * w


class GridDataset(Dataset[Tensor]):
    """A map-style :class:`~torch.utils.data.Dataset` of examples on the grid of ``bins``
    levels in [-1, 1], with what a training run and a checkpoint need to know about it.

    ``dataset[i]`` is one float32 example of shape ``event_shape``; ``dataset[[i, j, ...]]`` is
    a batch, and the DataLoader's batched fetch (``__getitems__``) reads a batch at once. Subclasses
    implement :meth:`_read` (a batch of integer indices to a float tensor).

    Attributes:
        name: data set name (e.g. ``"mnist"``, ``"folder"``).
        event_shape: shape of one example, ``(C, H, W)`` for images, ``(D,)`` when flattened.
        bins: grid levels (bin width ``2 / (bins - 1)``), ``None`` for continuous data.
        split: ``"train"`` or ``"test"``.
        source: where the data were read from.
    """

    name: str
    event_shape: torch.Size
    bins: int | None
    split: str
    source: str

    def __init__(self, *, name: str, event_shape: Sequence[int], bins: int | None, split: str,
                 source: str, length: int, flatten: bool = False) -> None:
        self.name, self.bins, self.split, self.source = name, bins, split, source
        self.image_shape = tuple(int(s) for s in event_shape)
        self.flat = bool(flatten)
        self.event_shape = torch.Size(
            [math.prod(self.image_shape)] if flatten else self.image_shape
        )
        self._length = int(length)

    def __len__(self) -> int:
        return self._length

    def _index(self, i: object) -> int:
        try:
            j = operator.index(i)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                f"{self.name} index must be an integer, got {type(i).__name__}"
            ) from None
        if not -self._length <= j < self._length:
            raise IndexError(f"{self.name} index {j} is out of range for {self._length} examples")
        return j % self._length

    def __getitem__(self, index: int | Sequence[int]) -> Tensor:
        if isinstance(index, (list, tuple, Tensor)):
            return self._batch(list(index))
        return self._batch([index])[0]

    def __getitems__(self, indices: list[int]) -> list[Tensor]:
        """The examples at ``indices`` from one read (DataLoader's batched fetch; the default
        collate stacks them)."""
        return list(self._batch(indices).unbind(0))

    def _batch(self, indices: list[int]) -> Tensor:
        return self._shape(self._read([self._index(i) for i in indices]))

    def _shape(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.event_shape)

    def _read(self, indices: list[int]) -> Tensor:
        raise NotImplementedError

    def tensor(self) -> Tensor:
        """All examples as one in-memory tensor ``(N, *event_shape)`` (small data sets)."""
        return self._batch(list(range(self._length)))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, "
                f"n={self._length}, event_shape={tuple(self.event_shape)}, bins={self.bins}, "
                f"source={self.source!r})")


class TensorGridDataset(GridDataset):
    """A :class:`GridDataset` over an in-memory tensor of grid data (e.g. MNIST, digits).

    Example:
        >>> ds = TensorGridDataset(torch.zeros(5, 1, 2, 2), name="zeros", bins=256)
        >>> len(ds), ds[0].shape, ds.event_shape, ds.bins
        (5, torch.Size([1, 2, 2]), torch.Size([1, 2, 2]), 256)
    """

    def __init__(self, data: Tensor, *, name: str, bins: int | None, split: str = "train",
                 source: str = "", flatten: bool = False) -> None:
        if not isinstance(data, Tensor) or data.dim() < 2 or not data.is_floating_point():
            raise TypeError(f"data must be a floating tensor (N, *event_shape), got {data!r:.60}")
        super().__init__(name=name, event_shape=data.shape[1:], bins=bins, split=split,
                         source=source, length=data.shape[0], flatten=flatten)
        self.data = data

    def _read(self, indices: list[int]) -> Tensor:
        return self.data[torch.as_tensor(indices, dtype=torch.long)]

    def tensor(self) -> Tensor:
        """The data themselves (no copy), reshaped to ``(N, *event_shape)``."""
        return self._shape(self.data)
