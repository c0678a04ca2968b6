"""Offline data sets and streaming loaders (nothing is downloaded; see DESIGN.md §5).

* :mod:`.catalogue`: one record per named data set (name, aliases, kind, native shape, bins,
  files), torch-free; every list of data set names reads it;
* :func:`load_dataset`: the one front door, one parser for every data spec (``digits``,
  ``mnist``, ``mnist14``, ``fashion_mnist``, the toys, ``folder:PATH``, ``npy:PATH``), returning a
  :class:`GridDataset` that :func:`~ncmle_prob.training.fit` streams from;
* :class:`ImageFolder`: PNG/JPEG images decoded per item; :class:`ArrayDataset`: ``.npy``
  (memory-mapped) or ``.npz`` arrays;
* :func:`load_digits`: scikit-learn's 8×8 digits, 17 levels — the embedded default;
* :func:`load_mnist`, :func:`load_fashion_mnist`: IDX files from a folder (auto-discovered);
* :func:`load_toy`: 2-D toys with exact noisy densities.

* :func:`read_images`: images of a file (``.pt``, ``.npy``, PNG/JPEG) as a tensor, for
  restoration inputs.

Images are scaled to a grid of ``bins`` levels on [-1, 1] (DESIGN.md §1). The names below are
imported on first use, so ``import ncmle_prob.data.catalogue`` (the command line's check of
``--data``) imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .catalogue import CATALOGUE, DataRecord, lookup  # noqa: F401 (public names)

#: where each public name lives (imported on first attribute access)
_LAZY = {
    "ArrayDataset": "arrays",
    "DataFileError": "base", "DatasetNotFoundError": "base", "GridDataset": "base",
    "ImageData": "base", "TensorGridDataset": "base", "to_grid": "base",
    "load_digits": "digits",
    "ImageFolder": "folder",
    "read_idx": "idx",
    "FASHION_MNIST_DIR": "mnist", "downsample_levels": "mnist", "find_mnist_dirs": "mnist",
    "load_fashion_mnist": "mnist", "load_mnist": "mnist",
    "DATA_SPECS": "spec", "load_dataset": "spec", "parse_spec": "spec",
    "read_images": "read",
    "split_indices": "splits",
    "TOYS": "toy2d", "Checkerboard": "toy2d", "ToyData": "toy2d", "checkerboard": "toy2d",
    "gaussian_mixture": "toy2d", "load_toy": "toy2d", "rings": "toy2d",
}

__all__ = sorted(["CATALOGUE", "DATASETS", "DataRecord", "load", "lookup", *_LAZY])

#: The data sets with a loader of their own (those not derived from another one).
DATASETS = tuple(r.name for r in CATALOGUE if r.derived_from is None)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    if name == "load":
        from .._deprecated import data_load

        return data_load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
