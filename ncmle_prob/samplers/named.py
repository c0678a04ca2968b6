"""A table of named components: the one registry pattern of samplers, predictors and
correctors."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

__all__ = ["NamedRegistry"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class NamedRegistry:
    """A table of named components (samplers, predictors, correctors): one pattern for all.

    Entries are added by a decorator (:meth:`register`) or lazily by an import path
    (:meth:`register_lazy`: the module is imported on first :meth:`get`, so listing the names
    has no import side effect). Names are identifiers; a taken name is an error.

    Example:
        >>> table = NamedRegistry("widget")
        >>> @table.register("spin")
        ... def spin(x):
        ...     return -x
        >>> table.names(), table.get("spin")(2)
        (['spin'], -2)
        >>> table.get("jump")
        Traceback (most recent call last):
        ...
        ValueError: unknown widget 'jump'; available widgets: ['spin']
    """

    def __init__(self, kind: str, check: Callable[[str, Any], Any] | None = None) -> None:
        self.kind = kind
        self._check = check
        self._table: dict[str, Any] = {}
        self._lazy: dict[str, str] = {}

    def _check_new(self, name: object) -> str:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{self.kind} name must be an identifier-like string, got {name!r}")
        if name in self._table or name in self._lazy:
            raise ValueError(
                f"a {self.kind} named {name!r} is already registered; pick another name or "
                f"unregister({name!r}) first"
            )
        return name

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator adding ``obj`` under ``name``; the registry's ``check(name, obj)``, if
        any, validates it or returns a replacement (which is stored and returned)."""
        self._check_new(name)

        def decorate(obj: Any) -> Any:
            self._check_new(name)
            obj = self._check(name, obj) if self._check is not None else obj
            self._table[name] = obj
            return obj

        return decorate

    def register_lazy(self, name: str, target: str) -> None:
        """Adds ``name`` as ``"package.module:attribute"``, imported on first use."""
        self._check_new(name)
        if target.count(":") != 1:
            raise ValueError(f"lazy target must be 'module:attribute', got {target!r}")
        self._lazy[name] = target

    def unregister(self, name: str) -> None:
        """Removes ``name`` (a built-in one included)."""
        if name in self._lazy:
            del self._lazy[name]
            return
        self.get(name)
        del self._table[name]

    def names(self) -> list[str]:
        """Sorted names, lazy ones included (listing imports nothing)."""
        return sorted({*self._table, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return name in self._table or name in self._lazy

    def get(self, name: str) -> Any:
        """The entry called ``name`` (importing a lazy one by its path)."""
        if name in self._table:
            return self._table[name]
        if name in self._lazy:
            module, attr = self._lazy[name].split(":")
            obj = getattr(importlib.import_module(module), attr)
            obj = self._check(name, obj) if self._check is not None else obj
            del self._lazy[name]
            self._table[name] = obj
            return obj
        raise ValueError(f"unknown {self.kind} {name!r}; available {self.kind}s: {self.names()}")
