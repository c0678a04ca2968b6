"""The container every loader returns, and the grid scaling of DESIGN.md §1."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

__all__ = ["DatasetNotFoundError", "ImageData", "to_grid"]


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are missing; the message says where we looked and how to get them."""


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
