"""Every deprecated name of the library, in one place, each with the version that removes it.

A deprecated name keeps working and warns once per process (a :class:`DeprecationWarning`
naming the replacement and the removal version). Nothing else in the library defines an alias:
to retire one, delete its entry here and its re-export.

==========================================  =====================================  =======
deprecated                                  use instead                            removed
==========================================  =====================================  =======
``ncmle_prob.data.load(name)``              ``ncmle_prob.data.load_dataset(spec)``  0.3
``ncmle_prob.infer.AnnealedLangevin``       ``infer.AnnealedLangevinKernel``       0.3
``ncmle_prob.infer.denoise``                ``infer.remove_noise`` ("denoise" is   0.3
                                            Tweedie's formula only)
sampler option ``metropolis=``              ``corrector="mala"``/``"langevin"``    0.3
restore ``kernel="mala"``, ``"pyro_mala"``,  ``"batched_mala"``, ``"mcmc_mala"``,      0.3
``"annealed_langevin"``, ``"nuts"``         ``"mcmc_annealed_langevin"``,
                                            ``"mcmc_nuts"``
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

__all__ = [
    "ATTRIBUTES",
    "OLD_RESTORE_KERNELS",
    "REMOVAL",
    "data_load",
    "deprecated_attribute",
    "restore_kernel",
    "warn_once",
]

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


#: Restore kernel names of before 0.2 (they collided with sampler and corrector names).
OLD_RESTORE_KERNELS = {
    "mala": "batched_mala",
    "pyro_mala": "mcmc_mala",
    "annealed_langevin": "mcmc_annealed_langevin",
    "nuts": "mcmc_nuts",
}


def restore_kernel(name: str) -> str:
    """The current name of a restore kernel (an old name warns once)."""
    if isinstance(name, str) and name in OLD_RESTORE_KERNELS:
        warn_once(f"restore kernel {name!r}", f"kernel={OLD_RESTORE_KERNELS[name]!r}",
                  stacklevel=4)
        return OLD_RESTORE_KERNELS[name]
    return name


#: Deprecated module attributes: ``(module, name) -> (module of the new name, new name)``.
ATTRIBUTES = {
    ("ncmle_prob.infer", "denoise"): ("ncmle_prob.infer.inverse", "remove_noise"),
    ("ncmle_prob.infer.inverse", "denoise"): ("ncmle_prob.infer.inverse", "remove_noise"),
}


def deprecated_attribute(module: str, name: str) -> Any:
    """The module ``__getattr__`` of a deprecated attribute (warns once).

    Raises:
        AttributeError: ``name`` is not a deprecated attribute of ``module``.
    """
    if (module, name) not in ATTRIBUTES:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    import importlib

    new_module, new = ATTRIBUTES[(module, name)]
    warn_once(f"{module}.{name}", f"{new_module.rsplit('.', 1)[0]}.{new}")
    return getattr(importlib.import_module(new_module), new)


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
