"""Every deprecated name of the library, in one place, each with the version that removes it.

A deprecated name keeps working and warns once per process (a :class:`DeprecationWarning`
naming the replacement and the removal version). Nothing else in the library defines an alias:
to retire one, delete its entry here and its re-export.

==========================================  =====================================  =======
deprecated                                  use instead                            removed
==========================================  =====================================  =======
``ncmle_prob.data.load(name)``              ``ncmle_prob.data.load_dataset(spec)``  0.3
``ncmle_prob.infer.AnnealedLangevin``       ``infer.AnnealedLangevinKernel``       0.3
sampler option ``metropolis=``              ``corrector="mala"``/``"langevin"``    0.3
==========================================  =====================================  =======

Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     _ = warn_once("old_name", "new_name")
    >>> "deprecated" in str(w[0].message) and "0.3" in str(w[0].message)
    True
"""

from __future__ import annotations

import os
import warnings
from typing import Any

__all__ = ["REMOVAL", "data_load", "warn_once"]

#: The version that removes every alias below.
REMOVAL = "0.3"

_WARNED: set[str] = set()

def warn_once(old: str, new: str, *, stacklevel: int = 3) -> bool:
    """Warns once per process that ``old`` is deprecated in favour of ``new``; returns whether
    it warned now."""
    if old in _WARNED:
        return False
    _WARNED.add(old)
    warnings.warn(f"{old} is deprecated and will be removed in ncmle_prob {REMOVAL}: use {new}",
                  DeprecationWarning, stacklevel=stacklevel)
    return True


def data_load(
    name: str, *, directory: str | os.PathLike[str] | None = None, bins: int | None = None,
    seed: int = 0,
) -> Any:
    """Deprecated: ``ncmle_prob.data.load``; use :func:`ncmle_prob.data.load_dataset`.

    Loads an in-memory data set by name (an ``ImageData`` or a ``ToyData``).
    """
    from .data.catalogue import lookup
    from .data.spec import load_record
    from .data.toy2d import load_toy

    warn_once("ncmle_prob.data.load", "ncmle_prob.data.load_dataset(spec)")
    record = lookup(name)
    if record.kind == "toy":
        return load_toy(record.name, seed=seed)
    return load_record(record, directory=directory, bins=bins)
