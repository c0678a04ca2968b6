"""A folder of PNG/JPEG images as a streaming data set (decoded per item, never all at once).

Pillow is imported lazily (it ships with matplotlib; ``pip install pillow`` otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from .base import DataFileError, DatasetNotFoundError, GridDataset, to_grid
from .splits import split_indices

__all__ = ["IMAGE_SUFFIXES", "ImageFolder", "block_mean_levels", "list_images"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
Resize = Literal["resize", "crop", "crop_resize"]


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("reading image folders needs Pillow: pip install pillow") from e
    return Image


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by path: the data order."""
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _size_arg(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)
    if len(hw) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in hw):
        raise ValueError(f"size must be a positive integer or (height, width), got {size!r}")
    return (int(hw[0]), int(hw[1]))


def block_mean_levels(levels: np.ndarray, factor: tuple[int, int]) -> np.ndarray:
    r"""Shrinks 8-bit images ``(H, W)`` or ``(H, W, C)`` by averaging ``fh x fw`` blocks.

    Each output level is the block's mean rounded half up, :math:`\lfloor (\sum v + n/2) / n
    \rfloor` for blocks of ``n`` pixels: for a factor 2 exactly how ``mnist14`` is made from
    MNIST (:func:`ncmle_prob.data.mnist.downsample_levels`), so a folder of MNIST PNGs read with
    ``size=14`` gives the same images as ``mnist14``.

    Example:
        >>> import numpy as np
        >>> block_mean_levels(np.array([[0, 1], [2, 3]], dtype=np.uint8), (2, 2)).tolist()
        [[2]]
    """
    fh, fw = factor
    h, w = levels.shape[0] // fh, levels.shape[1] // fw
    v = levels.astype(np.int64).reshape(h, fh, w, fw, *levels.shape[2:])
    n = fh * fw
    return ((v.sum(axis=(1, 3)) + n // 2) // n).astype(np.uint8)


class ImageFolder(GridDataset):
    """PNG/JPEG images of a folder, decoded lazily, on a grid of ``bins`` levels in [-1, 1].

    The files are found recursively (``.png``, ``.jpg``, ``.jpeg``, any case), sorted by path.
    If the folder has ``train/`` and ``test/`` sub-folders, ``split`` picks one; otherwise the
    split is by position in the sorted list (:func:`~ncmle_prob.data.splits.split_indices`:
    every tenth image is a test image).

    Construction opens every file's *header* (size and mode, no pixel decoding) to check the
    folder: not empty, readable image files, one size unless ``size`` is given, images at least
    ``size`` for ``resize="crop"``. Pixels are decoded when an item is read; a file that turns
    out truncated or corrupt then raises :class:`~ncmle_prob.data.DataFileError` naming it (pass
    ``verify=True`` to decode everything up front instead).

    Images are 8-bit: converted to ``"L"`` (1 channel) or ``"RGB"`` (3), then levels
    0..255 are mapped by :func:`~ncmle_prob.data.to_grid` to ``bins`` levels.

    Args:
        folder: the folder.
        split: ``"train"`` or ``"test"``.
        size: output ``(height, width)`` (or one int for a square); ``None``: the images' own
            size, which must then be the same for all.
        resize: how to reach ``size``: ``"resize"`` (scale, aspect not kept, Lanczos; an
            exact integer reduction averages blocks instead, as ``mnist14`` is made),
            ``"crop"`` (centre crop; images must be at least ``size``) or ``"crop_resize"``
            (centre crop to the aspect ratio of ``size``, then scale).
        channels: 1 (grey) or 3 (RGB); ``None``: 1 if every image is grey, else 3.
        bins: grid levels (default 256).
        flatten: examples as vectors ``(C*H*W,)`` (e.g. for MADE).
        verify: decode every image at construction (catches truncated files before training).

    Raises:
        DatasetNotFoundError: the folder does not exist.
        DataFileError: no images, an unreadable file, mixed sizes without ``size``, an image
            smaller than the crop, or (``verify=True`` or on access) a truncated image.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for i in range(3):
        ...     Image.new("L", (6, 4), color=85 * i).save(d / f"{i}.png")
        >>> ds = ImageFolder(d, split="train", size=(2, 3))
        >>> len(ds), ds.event_shape, ds.bins, round(float(ds[2].max()), 4)  # 2 * 170/255 - 1
        (3, torch.Size([1, 2, 3]), 256, 0.3333)
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        split: str = "train",
        size: int | Sequence[int] | None = None,
        resize: Resize = "resize",
        channels: int | None = None,
        bins: int = 256,
        flatten: bool = False,
        verify: bool = False,
    ) -> None:
        root = Path(folder)
        if not root.is_dir():
            raise DatasetNotFoundError(
                f"image folder {root} does not exist" if not root.exists()
                else f"{root} is a file, not a folder of images"
            )
        if resize not in ("resize", "crop", "crop_resize"):
            raise ValueError(f"resize must be 'resize', 'crop' or 'crop_resize', got {resize!r}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
        hw = _size_arg(size)
        if (root / "train").is_dir() and (root / "test").is_dir():
            split_indices(0, split)  # checks the split name
            files = list_images(root / split if split != "all" else root)
        else:
            files = list_images(root)
            files = [files[i] for i in split_indices(len(files), split, where=str(root))]
        if not files:
            raise DataFileError(
                f"no images in {root}{'/' + split if (root / split).is_dir() else ''}: looked "
                f"for {', '.join(IMAGE_SUFFIXES)} files (recursively)"
            )
        image = _pil()
        sizes: dict[tuple[int, int], Path] = {}
        all_grey = True
        for f in files:
            try:
                with image.open(f) as im:
                    w, h = im.size
                    all_grey &= im.mode in _GREY_MODES
                    if verify:
                        im.load()
            except (OSError, SyntaxError, ValueError) as e:
                raise DataFileError(f"{f} is not a readable image: {e}") from e
            sizes.setdefault((h, w), f)
        if hw is None and len(sizes) > 1:
            (s1, f1), (s2, f2) = list(sizes.items())[:2]
            raise DataFileError(
                f"images in {root} have different sizes ({f1} is {s1[0]}x{s1[1]}, {f2} is "
                f"{s2[0]}x{s2[1]} (height x width)); pass size= to resize or crop them"
            )
        if hw is not None and resize == "crop":
            small = [(s, f) for s, f in sizes.items() if s[0] < hw[0] or s[1] < hw[1]]
            if small:
                (h, w), f = small[0]
                raise DataFileError(
                    f"{f} is {h}x{w}, smaller than the crop {hw[0]}x{hw[1]}; use "
                    "resize='resize' or 'crop_resize'"
                )
        out_hw = hw if hw is not None else next(iter(sizes))
        c = channels if channels is not None else (1 if all_grey else 3)
        super().__init__(name="folder", event_shape=(c, *out_hw), bins=bins, split=split,
                         source=str(root), length=len(files), flatten=flatten)
        to_grid(torch.zeros(1, dtype=torch.long), 255, bins)  # checks bins up front
        self.files, self.size, self.resize, self.channels = files, hw, resize, c

    def _decode(self, path: Path) -> np.ndarray:
        image = _pil()
        try:
            with image.open(path) as im:
                mode = "L" if self.channels == 1 else "RGB"
                if im.mode != mode:
                    im = im.convert(mode)
                factor = self._block_factor(im.size)
                if factor is not None:
                    arr = block_mean_levels(np.asarray(im, dtype=np.uint8), factor)
                else:
                    if self.size is not None:
                        im = self._fit(im, image)
                    arr = np.asarray(im, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as e:
            raise DataFileError(f"{path} cannot be decoded (truncated or corrupt?): {e}") from e
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    def _block_factor(self, wh: tuple[int, int]) -> tuple[int, int] | None:
        """``(fh, fw)`` when ``resize="resize"`` shrinks by exact integer factors, else None."""
        if self.size is None or self.resize != "resize":
            return None
        (h, w), (iw, ih) = self.size, wh
        if (ih, iw) == (h, w) or ih % h or iw % w:
            return None
        return ih // h, iw // w

    def _fit(self, im: Any, image: Any) -> Any:
        h, w = self.size  # type: ignore[misc]
        iw, ih = im.size
        if self.resize == "crop":
            left, top = (iw - w) // 2, (ih - h) // 2
            return im.crop((left, top, left + w, top + h))
        if self.resize == "crop_resize":
            scale = min(iw / w, ih / h)
            cw, ch = round(w * scale), round(h * scale)
            left, top = (iw - cw) // 2, (ih - ch) // 2
            im = im.crop((left, top, left + cw, top + ch))
        return im.resize((w, h), image.Resampling.LANCZOS)

    def _read(self, indices: list[int]) -> Tensor:
        levels = np.stack([self._decode(self.files[i]) for i in indices])
        return to_grid(torch.from_numpy(levels), 255, self.bins or 256)
