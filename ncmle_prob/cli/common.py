"""Shared pieces of the command line: one-line errors, parsing helpers, data and model set-up."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
from torch import Tensor

__all__ = [
    "CLIError",
    "Parser",
    "RunData",
    "is_main_process",
    "load_run_data",
    "parse_floats",
    "parse_options",
    "say",
]


class CLIError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message} (see '{self.prog} --help')")


def is_main_process() -> bool:
    """False on the non-zero ranks of a torchrun launch (they stay silent)."""
    return os.environ.get("RANK", "0") == "0"


def say(*args: Any) -> None:
    """Prints on rank 0 only."""
    if is_main_process():
        print(*args, flush=True)


def parse_floats(text: str, name: str = "sigmas") -> list[float]:
    """``"0,0.05,0.2"`` → ``[0.0, 0.05, 0.2]``; each finite and ≥ 0."""
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise CLIError(f"--{name} must be comma-separated numbers, got {text!r}") from e
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise CLIError(f"--{name} must be non-empty, finite and >= 0, got {text!r}")
    return values


def _coerce(kind: type, key: str, text: str) -> Any:
    if kind is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise CLIError(f"option {key} must be true or false, got {text!r}")
    try:
        return kind(text)
    except (TypeError, ValueError) as e:
        raise CLIError(f"option {key} must be a {kind.__name__}, got {text!r}") from e


def parse_options(method: str, pairs: list[str]) -> dict[str, Any]:
    """Parses ``key=value`` sampler options with the registry's declared types."""
    from .. import samplers
    if method not in samplers.available():
        raise CLIError(
            f"unknown sampler {method!r}; choose from {', '.join(samplers.available())}"
        )
    spec = samplers.options(method)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--option must look like key=value, got {pair!r}")
        if key not in spec:
            raise CLIError(
                f"unknown option {key!r} for sampler {method!r}; valid: "
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


def load_run_data(name: str, directory: str | None = None, bins: int | None = None) -> RunData:
    """Loads a data set by name for the command line (MADE works on flattened vectors)."""
    from ..data import DATASETS, ImageData, load

    if name not in DATASETS:
        raise CLIError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    data = load(name, directory=directory, bins=bins)
    if isinstance(data, ImageData):
        flat = data.flatten()
        return RunData(name, flat.train, flat.test, data.bins, data.image_shape)
    return RunData(name, data.train, data.test, None, None)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A seeded generator on ``device``."""
    return torch.Generator(device=device).manual_seed(seed)
