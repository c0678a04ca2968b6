"""Shared pieces of the command line: one-line errors, argument types, output-path checks, data.

Nothing here imports torch at module level: ``ncmle --help`` and argument errors must come back
without paying for torch/Pyro (they are imported inside the commands' ``run`` functions).
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..data import catalogue as _catalogue

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = [
    "DATASETS",
    "FIGURE_FORMATS",
    "CLIError",
    "HelpFormatter",
    "Parser",
    "RunData",
    "check_data_args",
    "check_figure_file",
    "check_output_dir",
    "check_output_file",
    "decay",
    "is_main_process",
    "load_run_data",
    "make_generator",
    "nonnegative_float",
    "parse_floats",
    "parse_options",
    "positive_float",
    "positive_int",
    "probability",
    "resolve_checkpoint",
    "say",
]


class CLIError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message} (see '{self.prog} --help')")


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` once, only where it says something.

    Not for required options, flags (``store_true``), ``None`` defaults or help texts that
    already state their default. A help text may be a zero-argument callable, evaluated only
    when the help is printed (so listing the sampler registry costs nothing otherwise).
    """

    def _format_action(self, action: argparse.Action) -> str:
        if callable(action.help):
            action.help = action.help()
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            text
            and "default" not in text
            and not action.required
            and action.option_strings
            and default is not None
            and default is not argparse.SUPPRESS
            and not isinstance(default, bool)
            and default != []
        ):
            text += " (default: %(default)s)"
        return text


def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer ``>= 1`` (the error names the flag through argparse)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer ``>= 0``."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number ``> 0``."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number ``>= 0``."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def probability(text: str) -> float:
    """argparse type: a number in ``[0, 1]``."""
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def decay(text: str) -> float:
    """argparse type: a number in ``(0, 1)`` (an EMA decay)."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text!r}")
    return value


def _check_parents(flag: str, path: Path) -> None:
    """The nearest existing ancestor of ``path`` must be a writable folder."""
    parent = path.parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link cannot become a folder
            raise CLIError(f"{flag} {path}: {parent} is a broken link")
        parent = parent.parent
    if not parent.is_dir():
        raise CLIError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"{flag} {path}: no permission to write in {parent}")
    _probe(flag, path, parent)


def _probe(flag: str, path: Path, folder: Path) -> None:
    """Creates and removes a file in ``folder``: permissions alone do not tell (``/proc``,
    read-only mounts, running as root)."""
    probe = folder / f".ncmle-probe-{os.getpid()}-{id(path):x}.tmp"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as e:
        raise CLIError(f"{flag} {path}: cannot write in {folder} "
                       f"({e.strerror or type(e).__name__})") from None
    os.close(fd)
    os.unlink(probe)


#: figure formats ``--out``/``--plot`` write, by file extension (matplotlib's Agg writers)
FIGURE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}


def check_figure_file(flag: str, path: str | os.PathLike[str]) -> Path:
    """:func:`check_output_file` for a figure: its extension must name a format we write.

    Example:
        >>> from ncmle_prob.cli.common import check_figure_file
        >>> check_figure_file("--out", "samples.gif")
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: --out samples.gif: unsupported figure format '.gif'; ...
    """
    p = Path(path)
    if p.is_dir():
        return check_output_file(flag, p)  # raises: a folder
    if p.suffix.lower() not in FIGURE_FORMATS:
        what = f"format {p.suffix!r}" if p.suffix else "file name without an extension"
        raise CLIError(f"{flag} {p}: unsupported figure {what}; the extension must be one of "
                       f"{', '.join(FIGURE_FORMATS)}")
    return check_output_file(flag, p)


def check_output_file(flag: str, path: str | os.PathLike[str]) -> Path:
    """Checks, before any work, that a file can be written at ``path`` (replacing a file).

    Example:
        >>> import tempfile
        >>> from ncmle_prob.cli.common import check_output_file
        >>> check_output_file("--out", tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: --out ...: is a folder; give a file name
    """
    p = Path(path)
    if p.is_dir():
        raise CLIError(f"{flag} {p}: is a folder; give a file name")
    if p.exists() and not os.access(p, os.W_OK):
        raise CLIError(f"{flag} {p}: the file exists and is not writable")
    _check_parents(flag, p)
    if p.parent.is_dir():
        _probe(flag, p, p.parent)
    return p


def check_output_dir(flag: str, path: str | os.PathLike[str], *files: str) -> Path:
    """Checks, before any work, that ``path`` is (or can become) a writable folder, and that the
    named ``files`` inside it are not folders.

    Example:
        >>> import tempfile, pathlib
        >>> from ncmle_prob.cli.common import check_output_dir
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
        >>> _ = f.write_text("x")
        >>> check_output_dir("--out", f)
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: --out .../notes.txt: is a file, not a folder
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CLIError(f"{flag} {p}: is a file, not a folder")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise CLIError(f"{flag} {p}: no permission to write in this folder")
    else:
        _check_parents(flag, p)
    for name in files:
        if (p / name).is_dir():
            raise CLIError(f"{flag} {p}: {p / name} is a folder")
    return p


def is_main_process() -> bool:
    """False on the non-zero ranks of a torchrun launch (they stay silent)."""
    return os.environ.get("RANK", "0") == "0"


def add_run_args(p: argparse.ArgumentParser, unit: str) -> None:
    """``--batch-size`` and ``--quiet``, shared by ``sample``, ``evaluate`` and ``restore``."""
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                   help=f"{unit} per batch: larger requests run in batches of N, which bounds "
                        "the memory (default: 32768 values per batch, e.g. 167 images of 14x14)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (there is none either when stderr is not a terminal)")


def show_progress(quiet: bool) -> bool:
    """Progress bars: on rank 0, unless ``--quiet`` or stderr is not a terminal (a log file,
    a pipe, a test's captured output)."""
    import sys

    isatty = getattr(sys.stderr, "isatty", None)
    return not quiet and is_main_process() and bool(isatty is not None and isatty())


def resolve_checkpoint(text: str, task: str) -> str:
    """The one place a command turns its checkpoint argument into a file: ``pretrained:NAME``
    becomes the shipped model's verified weight file (:func:`ncmle_prob.pretrained.resolve`,
    which checks that the model's card lists ``task``); any other text is a path, unchanged.

    Example:
        >>> from ncmle_prob.cli.common import resolve_checkpoint
        >>> resolve_checkpoint("runs/last.pt", "sample")
        'runs/last.pt'
        >>> resolve_checkpoint("pretrained:nope", "sample")
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: unknown pretrained model 'nope'; available: ...
    """
    from ..pretrained import PREFIX, PretrainedError, resolve

    if not text.startswith(PREFIX):
        return text
    try:
        return resolve(text, task)
    except PretrainedError as e:
        raise CLIError(str(e)) from None


def say(*args: Any) -> None:
    """Prints on rank 0 only."""
    if is_main_process():
        print(*args, flush=True)


def parse_floats(text: str, name: str = "sigmas") -> list[float]:
    """``"0,0.05,0.2"`` → ``[0.0, 0.05, 0.2]``; each finite and ≥ 0.

    Example:
        >>> from ncmle_prob.cli.common import parse_floats
        >>> parse_floats("0,0.05,0.2")
        [0.0, 0.05, 0.2]
    """
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise CLIError(f"--{name} must be comma-separated numbers, got {text!r}") from e
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise CLIError(f"--{name} must be non-empty, finite and >= 0, got {text!r}")
    return values


_KIND_NAMES = {int: "an integer", float: "a number", str: "a string"}


def _coerce(kind: type, key: str, text: str) -> Any:
    if kind is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise CLIError(f"--option {key}= must be true or false, got {text!r}")
    try:
        return kind(text)
    except (TypeError, ValueError) as e:
        what = _KIND_NAMES.get(kind, f"of type {kind.__name__}")
        raise CLIError(f"--option {key}= must be {what}, got {text!r}") from e


def sampler_names() -> list[str]:
    """The sampler registry's names (imports torch: call it only when needed)."""
    from .. import samplers

    return samplers.available()


def parse_options(method: str, pairs: list[str]) -> dict[str, Any]:
    """Parses ``key=value`` sampler options with the registry's declared types."""
    from .. import samplers

    names = sampler_names()
    if method not in names:
        raise CLIError(f"--method: unknown sampler {method!r}; choose from {', '.join(names)}")
    spec = samplers.options(method)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--option must look like key=value, got {pair!r}")
        if key not in spec:
            raise CLIError(
                f"--option: unknown option {key!r} for sampler {method!r}; valid: "
                f"{', '.join(sorted(spec)) or '(none)'}"
            )
        out[key] = _coerce(spec[key][0], key, value)
    return out


@dataclass
class RunData:
    """Data as a command uses it: flattened vectors for MADE, plus what plots need."""

    name: str
    train: Tensor
    test: Tensor
    bins: int | None
    image_shape: tuple[int, ...] | None


#: The data sets ``--data NAME`` of the vector commands serves (the catalogue's data sets with a
#: loader of their own), read from the torch-free catalogue (:mod:`ncmle_prob.data.catalogue`).
DATASETS = _catalogue.names(derived=False)
#: Those read from IDX files in ``--data-dir``.
IDX_DATASETS = tuple(n for n in DATASETS if _catalogue.lookup(n).reads_files)


def _idx_names() -> str:
    """``"mnist, mnist14 and fashion_mnist"``: the catalogue's data sets read from files."""
    idx = [r.name for r in _catalogue.CATALOGUE if r.reads_files]
    return ", ".join(idx[:-1]) + " and " + idx[-1]


def check_data_args(name: str, directory: str | None) -> None:
    """Argument-level checks of ``--data``/``--data-dir`` (no data is read, torch not imported).

    Example:
        >>> from ncmle_prob.cli.common import check_data_args
        >>> check_data_args("digits", "/data")
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: --data-dir is only read for mnist and fashion_mnist ...
    """
    if name not in DATASETS:
        raise CLIError(f"--data: unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if directory is not None and name not in IDX_DATASETS:
        raise CLIError(
            f"--data-dir is only read for {' and '.join(IDX_DATASETS)} (IDX files); "
            f"--data {name} ships with the package, drop --data-dir"
        )


def load_run_data(name: str, directory: str | None = None, bins: int | None = None) -> RunData:
    """Loads a data set by name for the command line (MADE works on flattened vectors)."""
    from ..data import DatasetNotFoundError, ImageData
    from ..data.spec import load_record

    check_data_args(name, directory)
    try:
        data = load_record(_catalogue.lookup(name), directory=directory, bins=bins)
    except DatasetNotFoundError as e:
        # the loaders' hint names the Python argument; on the command line it is a flag
        raise CLIError(str(e).replace("Pass directory=...", "Pass --data-dir DIR")) from e
    if isinstance(data, ImageData):
        flat = data.flatten()
        return RunData(name, flat.train, flat.test, data.bins, data.image_shape)
    return RunData(name, data.train, data.test, None, None)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A seeded generator on ``device``."""
    import torch

    return torch.Generator(device=device).manual_seed(seed)
