"""Image data on the command line: ``--data SPEC`` for image models, checked against a checkpoint.

``SPEC`` is any specification of :func:`ncmle_prob.data.load_dataset` (``digits``, ``mnist``,
``mnist14``, ``fashion_mnist``, ``folder:PATH``, ``npy:PATH``). The argument-level checks here
import nothing heavy; :func:`load_image_data` reads the data (and, for folders, decodes every
image once, so that a corrupt file is reported before any training or output).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data import catalogue as _catalogue
from .common import CLIError, positive_int

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from ..data import GridDataset

__all__ = [
    "IMAGE_SPECS",
    "ImageRun",
    "add_image_data_args",
    "check_data_spec",
    "check_event_shape",
    "checkpoint_data_error",
    "load_image_data",
    "native_bins",
    "spec_from_meta",
]

#: named image data sets (``folder:PATH`` and ``npy:PATH`` name files), from the catalogue
IMAGE_SPECS = _catalogue.names(kind="image")
_IDX = tuple(n for n in IMAGE_SPECS if _catalogue.lookup(n).reads_files)
_NATIVE_BINS = {**{r.name: r.bins for r in _catalogue.CATALOGUE}, "folder": 256}
_TOYS = _catalogue.names(kind="toy")


def add_image_data_args(p: argparse.ArgumentParser | Any) -> None:
    """``--image-size``, ``--channels`` and ``--resize`` (folder data)."""
    p.add_argument("--image-size", type=positive_int, default=None, metavar="N",
                   help="folder: data: resize/crop images to N x N (default: their own size, "
                        "which must then be the same for all)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="folder: data: 1 (grey) or 3 (RGB) (default: grey if every image is)")
    p.add_argument("--resize", choices=("resize", "crop", "crop_resize"), default="resize",
                   help="folder: data: how --image-size is reached")


def check_data_spec(spec: str, data_dir: str | None, *, flag: str = "--data") -> str:
    """The kind of an image data spec (``'digits'``, ..., ``'folder'``, ``'npy'``), checked
    without reading anything.

    Example:
        >>> from ncmle_prob.cli.images import check_data_spec
        >>> check_data_spec("folder:pics", None), check_data_spec("fashion-mnist", None)
        ('folder', 'fashion_mnist')
        >>> check_data_spec("rings", None)
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: --data rings: ... not a 2-D toy; ...
    """
    kind, sep, rest = spec.partition(":")
    if sep:
        if kind not in _catalogue.PREFIXES:
            raise CLIError(f"{flag}: unknown dataset {spec!r}; a prefix must be folder: or npy:")
        if not rest:
            raise CLIError(f"{flag} {spec}: give a path after {kind}:")
    else:
        try:
            kind = _catalogue.lookup(spec).name
        except ValueError:
            kind = spec
        if kind in _TOYS:
            raise CLIError(f"{flag} {spec}: an image model needs image data, not a 2-D toy; "
                           f"choose from {', '.join(IMAGE_SPECS)}, folder:PATH, npy:PATH")
        if kind not in IMAGE_SPECS:
            raise CLIError(f"{flag}: unknown dataset {spec!r}; choose from "
                           f"{', '.join(IMAGE_SPECS)}, folder:PATH, npy:PATH")
    if data_dir is not None and kind not in _IDX:
        raise CLIError(f"--data-dir is only read for {', '.join(_IDX)} (IDX files), not "
                       f"{flag} {spec}")
    return kind


def native_bins(kind: str) -> int | None:
    """The grid levels a data set comes on (``None``: an array's own, checked when read)."""
    return _NATIVE_BINS.get(kind)


@dataclass
class ImageRun:
    """The data of an image command: splits and what a checkpoint records about them."""

    spec: str
    train: GridDataset | None
    test: GridDataset
    bins: int | None
    event_shape: tuple[int, ...]
    meta: dict[str, Any]


def _load(spec: str, split: str, *, data_dir: str | None, bins: int | None,
          size: int | None, channels: int | None, resize: str, flatten: bool) -> GridDataset:
    from ..data import DataFileError, DatasetNotFoundError, ImageFolder, load_dataset

    kind = check_data_spec(spec, data_dir)
    try:
        if kind == "folder":
            # every image decoded once here: a corrupt file fails before any work is done
            return ImageFolder(Path(spec.partition(":")[2]).expanduser(), split=split, size=size,
                               resize=resize, channels=channels,  # type: ignore[arg-type]
                               bins=bins or 256, flatten=flatten, verify=True)
        if size is not None or channels is not None:
            raise CLIError(f"--image-size and --channels apply to folder: data, not --data {spec}")
        return load_dataset(spec, data_dir=data_dir, split=split, bins=bins, flatten=flatten)
    except DatasetNotFoundError as e:
        raise CLIError(f"--data {spec}: " + str(e).replace("Pass directory=...",
                                                           "Pass --data-dir DIR")) from e
    except DataFileError as e:  # the loaders name Python arguments; here they are flags
        raise CLIError(f"--data {spec}: " + str(e).replace("pass size=", "pass --image-size N")
                       .replace("resize='resize' or 'crop_resize'",
                                "--resize resize or --resize crop_resize")) from e


def load_image_data(
    spec: str, *, data_dir: str | None = None, bins: int | None = None, size: int | None = None,
    channels: int | None = None, resize: str = "resize", flatten: bool = False,
    train: bool = True,
) -> ImageRun:
    """Train (optional) and test splits of an image data spec, on ``bins`` levels.

    ``bins`` (``--bins``) may re-quantise to fewer levels than the data come on; more levels
    than the data have is a :class:`~ncmle_prob.cli.common.CLIError` naming ``--bins``.

    Example:
        >>> from ncmle_prob.cli.images import load_image_data
        >>> run = load_image_data("digits", train=False)
        >>> run.bins, run.event_shape, len(run.test)
        (17, (1, 8, 8), 359)
        >>> load_image_data("digits", bins=256)
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: --bins 256 does not match --data digits: ...
    """
    kind = check_data_spec(spec, data_dir)
    native = native_bins(kind)
    if bins is not None and native is not None and bins > native:
        raise CLIError(f"--bins {bins} does not match --data {spec}: its images have {native} "
                       f"levels; pass --bins {native} (or fewer, to re-quantise)")
    opts = {"data_dir": data_dir, "bins": bins, "size": size, "channels": channels,
            "resize": resize, "flatten": flatten}
    test = _load(spec, "test", **opts)  # type: ignore[arg-type]
    tr = _load(spec, "train", **opts) if train else None  # type: ignore[arg-type]
    if tr is not None and tuple(tr.event_shape) != tuple(test.event_shape):
        raise CLIError(f"--data {spec}: train images are {tuple(tr.image_shape)} but test images "
                       f"are {tuple(test.image_shape)}; pass --image-size")
    meta = {"dataset": _stored_spec(spec, kind), "data_dir": _absolute(data_dir),
            "image_shape": list(test.image_shape), "image_size": size, "channels": channels,
            "resize": resize, "data_bins": test.bins}
    return ImageRun(spec, tr, test, test.bins, tuple(test.event_shape), meta)


def checkpoint_data_error(error: CLIError, spec: str, checkpoint: str) -> CLIError:
    """``error`` of reading the data a checkpoint names (not a ``--data`` the user passed),
    reworded to say so and to name the ``--data`` override."""
    text = str(error).removeprefix(f"--data {spec}: ")
    return CLIError(f"{checkpoint} was trained on --data {spec}, which cannot be read here "
                    f"({text}); pass --data SPEC to point at a copy of it")


def _absolute(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else path


def _stored_spec(spec: str, kind: str) -> str:
    """The spec a checkpoint records: ``folder:``/``npy:`` with an absolute path (so that
    ``evaluate`` and ``restore`` find the data from any working folder), aliases resolved."""
    if kind in ("folder", "npy"):
        return f"{kind}:{_absolute(spec.partition(':')[2])}"
    return kind


def spec_from_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The :func:`load_image_data` keywords a checkpoint's ``meta`` records (its data set)."""
    return {"spec": meta.get("dataset"), "data_dir": meta.get("data_dir"),
            "bins": meta.get("bins"), "size": meta.get("image_size"),
            "channels": meta.get("channels"), "resize": meta.get("resize") or "resize"}


def check_event_shape(path: str, model_shape: tuple[int, ...], data: ImageRun,
                      flag: str = "--data") -> None:
    """One line for images that do not fit the checkpoint: size, channels or bins."""
    shape = tuple(data.event_shape)
    if shape != tuple(model_shape):
        what = "shape"
        hint = ""
        if len(shape) == 3 and len(model_shape) == 3:
            if shape[0] != model_shape[0]:
                what = "colour" if shape[0] == 3 else "grey"
                hint = f"; pass --channels {model_shape[0]}"
            else:
                hint = f"; pass --image-size {model_shape[1]}" if (
                    model_shape[1] == model_shape[2]) else ""
            what = {"colour": "colour images", "grey": "grey images"}.get(what, "images")
        else:
            what = "examples"
        raise CLIError(f"{flag} {data.spec}: {what} of shape {shape}, but {path} models "
                       f"{tuple(model_shape)}{hint}")


def subset(ds: Dataset, size: int | None) -> Dataset:
    """The first ``size`` examples of ``ds`` (all when ``size`` is ``None`` or larger)."""
    from torch.utils.data import Subset

    n = len(ds)  # type: ignore[arg-type]
    if size is None or size >= n:
        return ds
    return Subset(ds, range(size))


def as_images(x: Any, image_shape: list[int] | tuple[int, ...] | None) -> Any:
    """Samples ``(N, ...)`` as images ``(N, C, H, W)`` (flat MADE vectors reshaped)."""
    if image_shape is None:
        features = math.prod(x.shape[1:])
        side = math.isqrt(features)
        image_shape = (1, side, side)
    return x.reshape(x.shape[0], *image_shape)
