"""Offline data sets and streaming loaders (nothing is downloaded; see DESIGN.md §5).

* :func:`load_dataset`: one parser for every data spec (``digits``, ``mnist``, ``mnist14``,
  ``fashion_mnist``, the toys, ``folder:PATH``, ``npy:PATH``), returning a
  :class:`GridDataset` that :func:`~ncmle_prob.training.fit` streams from;
* :class:`ImageFolder`: PNG/JPEG images decoded per item; :class:`ArrayDataset`: ``.npy``
  (memory-mapped) or ``.npz`` arrays;
* :func:`load_digits`: scikit-learn's 8×8 digits, 17 levels — the embedded default;
* :func:`load_mnist`, :func:`load_fashion_mnist`: IDX files from a folder (auto-discovered);
* :func:`load_toy`: 2-D toys with exact noisy densities.

Images are scaled to a grid of ``bins`` levels on [-1, 1] (DESIGN.md §1); :func:`load` picks an
in-memory data set by name.
"""

from __future__ import annotations

import os

from .arrays import ArrayDataset
from .base import (
    DataFileError,
    DatasetNotFoundError,
    GridDataset,
    ImageData,
    TensorGridDataset,
    to_grid,
)
from .digits import load_digits
from .folder import ImageFolder
from .idx import read_idx
from .mnist import (
    FASHION_MNIST_DIR,
    downsample_levels,
    find_mnist_dirs,
    load_fashion_mnist,
    load_mnist,
)
from .spec import DATA_SPECS, load_dataset, parse_spec
from .splits import split_indices
from .toy2d import TOYS, Checkerboard, ToyData, checkerboard, gaussian_mixture, load_toy, rings

__all__ = [
    "DATASETS",
    "DATA_SPECS",
    "FASHION_MNIST_DIR",
    "TOYS",
    "ArrayDataset",
    "Checkerboard",
    "DataFileError",
    "DatasetNotFoundError",
    "GridDataset",
    "ImageData",
    "ImageFolder",
    "TensorGridDataset",
    "ToyData",
    "checkerboard",
    "downsample_levels",
    "find_mnist_dirs",
    "gaussian_mixture",
    "load",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_toy",
    "parse_spec",
    "read_idx",
    "rings",
    "split_indices",
    "to_grid",
]

DATASETS = ("digits", "mnist", "fashion_mnist", *TOYS)


def load(
    name: str,
    *,
    directory: str | os.PathLike[str] | None = None,
    bins: int | None = None,
    seed: int = 0,
) -> ImageData | ToyData:
    """Loads a data set by name: one of :data:`DATASETS`.

    Args:
        name: ``"digits"``, ``"mnist"``, ``"fashion_mnist"`` or a toy name.
        directory: folder of the IDX files (MNIST, Fashion-MNIST).
        bins: grid levels for image data (default: the data set's own).
        seed: sampling seed of the toys.

    Example:
        >>> load("digits").bins
        17
    """
    if name == "digits":
        return load_digits(bins or 17)
    if name == "mnist":
        return load_mnist(directory, bins or 256)
    if name == "fashion_mnist":
        return load_fashion_mnist(directory, bins or 256)
    if name in TOYS:
        return load_toy(name, seed=seed)
    raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
