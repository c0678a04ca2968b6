"""Images from one file, as restoration and scripts take them: :func:`read_images`."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import Tensor

from .base import DataFileError

__all__ = ["read_images"]

SUFFIXES = (".pt", ".npy", ".png", ".jpg", ".jpeg")


def read_images(
    path: str | os.PathLike[str],
    features: int,
    image_shape: tuple[int, int, int] | None = None,
) -> Tensor:
    r"""Images of one file as ``(N, features)`` float32 rows in [-1, 1] (for pictures).

    ==================  ==========================================================
    file                content
    ==================  ==========================================================
    ``.pt``             a tensor saved with ``torch.save`` (loaded ``weights_only``)
    ``.npy``            a NumPy array (``allow_pickle=False``)
    ``.png``, ``.jpg``  one picture of exactly ``image_shape``, scaled to [-1, 1]
    ==================  ==========================================================

    Args:
        path: the file.
        features: values per image (the model's event size); an array of shape
            ``(N, features)`` or ``(N, C, H, W)`` with ``C*H*W = features`` is accepted.
        image_shape: ``(C, H, W)`` a picture must have (default: one square grey channel).

    Raises:
        FileNotFoundError: no such file.
        DataFileError: an unreadable file, a wrong size or colour, non-finite values; the
            message starts with the path.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.pt"
        >>> torch.save(torch.zeros(2, 1, 2, 2), p)
        >>> read_images(p, 4).shape
        torch.Size([2, 4])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".pt":
        try:
            x = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise DataFileError(f"{path}: not a readable tensor file") from e
    elif suffix == ".npy":
        import numpy as np

        try:
            x = torch.as_tensor(np.load(path, allow_pickle=False))
        except ValueError as e:
            raise DataFileError(f"{path}: not a readable .npy array") from e
    elif suffix in (".png", ".jpg", ".jpeg"):
        side = math.isqrt(features)
        x = _read_picture(path, image_shape or (1, side, side))
    else:
        raise DataFileError(f"{path}: expected one of {', '.join(SUFFIXES)}")
    if not isinstance(x, Tensor):
        raise DataFileError(f"{path} does not hold a tensor")
    per_image = math.prod(x.shape[1:]) if x.dim() in (2, 4) else -1
    if per_image != features:
        raise DataFileError(
            f"{path} has shape {tuple(x.shape)}; expected images of {features} values: "
            f"(N, {features}) or (N, C, H, W) with C*H*W = {features}"
        )
    x = x.float().reshape(-1, features)
    if not bool(torch.isfinite(x).all()):
        raise DataFileError(f"{path} contains NaN or inf")
    return x


def _read_picture(path: Path, image_shape: tuple[int, ...]) -> Tensor:
    """One PNG/JPEG as ``(1, C*H*W)`` in [-1, 1], refused unless it has the model's size and
    channels (a colour picture for a grey model is an error, not averaged silently)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    c, h, w = image_shape
    try:
        with Image.open(path) as im:
            grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
            if c == 1 and not grey:
                raise DataFileError(f"{path}: a colour image ({im.mode}), but the model has "
                                    "grey images (1 channel)")
            if (im.height, im.width) != (h, w):
                raise DataFileError(f"{path}: the image is {im.height}x{im.width}, but the "
                                    f"model's images are {h}x{w}")
            arr = np.asarray(im.convert("L" if c == 1 else "RGB"), dtype=np.float32)
    except (OSError, UnidentifiedImageError, SyntaxError) as e:
        raise DataFileError(f"{path}: not a readable image ({type(e).__name__})") from e
    t = torch.from_numpy(arr.copy()) / 255 * 2 - 1
    t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
    return t.reshape(1, -1)
