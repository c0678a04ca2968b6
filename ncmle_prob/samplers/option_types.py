"""Sampler options and their types: how a sampler's options are declared, described and checked.

A sampler class declares its options as dataclass fields made with :func:`option` (a default
and a help text); a sampler function as annotated keyword-only parameters with defaults, their
help text read from its Google-style ``Args:`` section. :func:`specs_of` reads either into
:class:`OptionSpec` records, which :func:`~ncmle_prob.samplers.options` shows to a command line
and :func:`~ncmle_prob.samplers.get` uses to check values.

Example:
    >>> spec = OptionSpec(float, 0.1, "jitter scale", optional=False, choices=None)
    >>> spec.coerce("jittered", "jitter", 1)
    1.0
    >>> spec.coerce("jittered", "jitter", "big")
    Traceback (most recent call last):
    ...
    TypeError: option 'jitter' of sampler 'jittered' must be a float, got 'big'
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Union

__all__ = ["BATCH_SIZE_HELP", "RESERVED", "OptionSpec", "option", "specs_of"]

#: Parameter names of the sampler call itself, never options.
RESERVED = frozenset({"dist", "num_samples", "generator", "progress", "return_info", "method"})

#: Help text of ``batch_size``, the option every sampler has (the registry batches).
BATCH_SIZE_HELP = (
    "draws per batch; larger requests run in batches of this size, which bounds the memory "
    "(default: 32768 values per batch, e.g. 167 images of 14x14)"
)


def option(default: Any, help: str) -> Any:
    """A dataclass field for a sampler option with its help text (shown by ``options``)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class OptionSpec:
    """One option: the plain type a CLI parses, its default, help, ``None``-ability, choices."""

    type: type
    default: Any
    help: str
    optional: bool
    choices: tuple[Any, ...] | None

    def coerce(self, sampler: str, key: str, value: Any) -> Any:
        """``value`` checked against this option (ints widen to floats).

        Raises:
            TypeError: a value of the wrong type, naming the option and the sampler.
            ValueError: a value outside the choices of a ``Literal``.
        """
        where = f"option {key!r} of sampler {sampler!r}"
        if value is None:
            if self.optional:
                return None
            raise TypeError(f"{where} must be a {self.type.__name__}, got None")
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"{where} must be one of {list(self.choices)}, got {value!r}")
            return value
        if self.type is bool:
            if not isinstance(value, (bool, int)) or value not in (0, 1):
                raise TypeError(f"{where} must be a bool, got {value!r}")
            return bool(value)
        if self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{where} must be a float, got {value!r}")
            return float(value)
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{where} must be an int, got {value!r}")
            return value
        if not isinstance(value, self.type):
            raise TypeError(f"{where} must be a {self.type.__name__}, got {value!r}")
        return value


def plain(hint: Any) -> tuple[type, bool, tuple[Any, ...] | None]:
    """``(type a CLI parses, accepts None, Literal choices)`` of an annotation.

    Example:
        >>> plain(float | None), plain(Literal["a", "b"])
        ((<class 'float'>, True, None), (<class 'str'>, False, ('a', 'b')))
    """
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"option annotations must be one type or T | None, got {hint}")
        tp, _, choices = plain(args[0])
        return tp, True, choices
    if origin is Literal:
        choices = typing.get_args(hint)
        return type(choices[0]), False, choices
    if not isinstance(hint, type):
        raise TypeError(f"option annotations must be plain types, got {hint!r}")
    return hint, False, None


def docstring_help(fn: Callable[..., Any]) -> dict[str, str]:
    """``name: text`` lines of a Google-style ``Args:`` section."""
    out: dict[str, str] = {}
    doc = inspect.getdoc(fn) or ""
    for m in re.finditer(r"^\s+(\w+)(?: \([^)]*\))?: (.+)$", doc, re.MULTILINE):
        out.setdefault(m.group(1), m.group(2).strip())
    return out


def specs_of(name: str, obj: Any) -> dict[str, OptionSpec]:
    """The options of a sampler class (its init dataclass fields) or function (its annotated
    parameters after the first two, :data:`RESERVED` ones excepted); every sampler also has
    ``batch_size``.

    Raises:
        TypeError: an option without a default or without a plain type annotation.
    """
    specs: dict[str, OptionSpec] = {}
    if inspect.isclass(obj):
        hints = typing.get_type_hints(obj)
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            if f.default is dataclasses.MISSING:
                raise TypeError(f"sampler {name!r}: option {f.name!r} needs a default")
            tp, optional, choices = plain(hints[f.name])
            specs[f.name] = OptionSpec(tp, f.default, _help(f.metadata.get("help", ""), choices),
                                       optional, choices)
        return specs
    hints = typing.get_type_hints(obj)
    helps = docstring_help(obj)
    for i, (p, param) in enumerate(inspect.signature(obj).parameters.items()):
        if i < 2 or p in RESERVED or param.kind is param.VAR_KEYWORD:
            continue
        if param.default is param.empty or p not in hints:
            raise TypeError(
                f"sampler {name!r}: option {p!r} needs a type annotation and a default"
            )
        tp, optional, choices = plain(hints[p])
        specs[p] = OptionSpec(tp, param.default, _help(helps.get(p, ""), choices), optional,
                              choices)
    if "batch_size" not in specs:  # every sampler has it: the registry does the batching
        specs["batch_size"] = OptionSpec(int, None, BATCH_SIZE_HELP, True, None)
    return specs


def _help(text: str, choices: tuple[Any, ...] | None) -> str:
    if choices is None:
        return text
    return f"{text} (one of: {', '.join(map(str, choices))})".lstrip()
