"""The one name registry of the library: every component chosen by name lives in a table here.

A :class:`NamedRegistry` is a table of named components of one *kind*. Every by-name choice of
the library is one such table, created once by the module that owns the kind:

==================  ============================================  ===============================
kind                owner (where entries are added)               added by
==================  ============================================  ===============================
``family``          :mod:`ncmle_prob.distributions.families`      ``@register_family``
``model``           :mod:`ncmle_prob.models.base`                 defining a model class
``sampler``         :mod:`ncmle_prob.samplers.registry`           ``@samplers.register(name)``
``predictor``       :mod:`ncmle_prob.samplers.predictors`         ``@register_predictor(name)``
``corrector``       :mod:`ncmle_prob.samplers.correctors`         ``@register_corrector(name)``
``restore kernel``  :mod:`ncmle_prob.infer.inverse`               ``@register_restore_kernel``
``command``         :mod:`ncmle_prob.cli`                         ``COMMANDS.register_lazy``
==================  ============================================  ===============================

:func:`table` returns the table of a kind (for listing: ``table("sampler").names()``), so
tools such as the CLI and the docs read every name from one place. This module imports
nothing of the library and nothing outside the standard library; import-linter keeps it so.

Example:
    >>> widgets = NamedRegistry("widget")
    >>> @widgets.register("spin")
    ... def spin(x):
    ...     return -x
    >>> widgets.names(), widgets.get("spin")(2)
    (['spin'], -2)
    >>> widgets.get("jump")
    Traceback (most recent call last):
    ...
    ValueError: unknown widget 'jump'; available widgets: ['spin']
    >>> table("widget") is widgets
    True
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["NamedRegistry", "kinds", "table"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLES: dict[str, NamedRegistry] = {}


class NamedRegistry:
    """A table of named components of one kind: one pattern for every by-name choice.

    Entries are added by a decorator (:meth:`register`), directly (:meth:`add`) or lazily by an
    import path (:meth:`register_lazy`: the module is imported on first :meth:`get`, so
    listing the names has no import side effect). Names are identifiers; a taken name is an
    error naming the name.

    Args:
        kind: what the entries are (``"sampler"``, ``"family"``...), used in error messages
            and as the key of :func:`table`; one table per kind.
        check: optional ``check(name, obj) -> obj`` run on every new entry; it validates the
            entry (raising ``TypeError``/``ValueError``) or returns a replacement, which is
            stored.

    Raises:
        ValueError: a table of this kind already exists.
    """

    def __init__(self, kind: str, check: Callable[[str, Any], Any] | None = None) -> None:
        if kind in _TABLES:
            raise ValueError(f"a registry of kind {kind!r} already exists; use table({kind!r})")
        self.kind = kind
        self._check = check
        self._table: dict[str, Any] = {}
        self._lazy: dict[str, str] = {}
        self._order: dict[str, None] = {}  # registration order
        _TABLES[kind] = self

    def _check_new(self, name: object) -> str:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{self.kind} name must be an identifier-like string, got {name!r}")
        if name in self._table or name in self._lazy:
            raise ValueError(
                f"a {self.kind} named {name!r} is already registered; pick another name or "
                f"unregister({name!r}) first"
            )
        return name

    def add(self, name: str, obj: Any) -> Any:
        """Adds ``obj`` under ``name`` (after ``check``); returns what was stored."""
        self._check_new(name)
        obj = self._check(name, obj) if self._check is not None else obj
        self._table[name] = obj
        self._order[name] = None
        return obj

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator adding ``obj`` under ``name``; returns what ``check`` returned."""
        self._check_new(name)
        return lambda obj: self.add(name, obj)

    def register_lazy(self, name: str, target: str) -> None:
        """Adds ``name`` as ``"package.module:attribute"``, imported on first :meth:`get`."""
        self._check_new(name)
        if not isinstance(target, str) or target.count(":") != 1:
            raise ValueError(f"lazy target must be 'module:attribute', got {target!r}")
        self._lazy[name] = target
        self._order[name] = None

    def unregister(self, name: str) -> None:
        """Removes ``name`` (a built-in one included).

        Raises:
            ValueError: unknown name.
        """
        if name in self._lazy:
            del self._lazy[name]
        else:
            self.get(name)
            del self._table[name]
        del self._order[name]

    def names(self, *, sort: bool = True) -> list[str]:
        """Sorted names, lazy ones included (listing imports nothing); ``sort=False``: in the
        order they were registered (imported lazy entries keep their place)."""
        if sort:
            return sorted({*self._table, *self._lazy})
        return list(self._order)

    def pending(self, name: str) -> str | None:
        """The ``"module:attribute"`` of a lazy entry not imported yet (else ``None``)."""
        return self._lazy.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._table or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._table) + len(self._lazy)

    def get(self, name: str) -> Any:
        """The entry called ``name`` (importing a lazy one by its path).

        Raises:
            ValueError: unknown name; the message lists the valid ones.
        """
        if isinstance(name, str) and name in self._table:
            return self._table[name]
        if isinstance(name, str) and name in self._lazy:
            module, attr = self._lazy[name].split(":")
            obj = getattr(importlib.import_module(module), attr)
            obj = self._check(name, obj) if self._check is not None else obj
            del self._lazy[name]
            self._table[name] = obj
            return obj
        raise ValueError(f"unknown {self.kind} {name!r}; available {self.kind}s: {self.names()}")

    def __repr__(self) -> str:
        return f"NamedRegistry({self.kind!r}, names={self.names()})"


def table(kind: str) -> NamedRegistry:
    """The registry of ``kind`` (created by the module that owns the kind).

    Raises:
        ValueError: no registry of that kind exists (the owning module was not imported).
    """
    try:
        return _TABLES[kind]
    except KeyError:
        raise ValueError(
            f"no registry of kind {kind!r}; known kinds: {sorted(_TABLES)} (import the module "
            "that owns it first)"
        ) from None


def kinds() -> list[str]:
    """The kinds that have a registry so far."""
    return sorted(_TABLES)
