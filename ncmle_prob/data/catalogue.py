"""The data catalogue: one record per named data set, the one list every other list reads.

It imports nothing but the standard library (no torch, nothing of the library), so the
command line checks ``--data`` against it before importing anything heavy. The loaders,
:func:`~ncmle_prob.data.load_dataset` (the one front door), the ``ncmle`` flags and their help
texts all read their names, aliases, shapes, bins and files from :data:`CATALOGUE`.

Adding a data set is one record here plus its loader function (named by import path, so this
module stays torch-free) and its tests; see ``docs/architecture.rst``.

Example:
    >>> lookup("fmnist").name, lookup("mnist14").native_shape, lookup("digits").bins
    ('fashion_mnist', (14, 14), 17)
    >>> names(kind="toy")
    ('gaussian_mixture', 'rings', 'checkerboard')
    >>> lookup("cifar10")
    Traceback (most recent call last):
    ...
    ValueError: unknown dataset 'cifar10'; choose from digits, mnist, mnist14, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CATALOGUE", "PREFIXES", "DataRecord", "lookup", "names", "spec_names"]

_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class DataRecord:
    """One named data set.

    Attributes:
        name: the canonical name (``--data NAME``, ``load_dataset(NAME)``).
        kind: ``"image"`` (grid data, ``bins`` levels on [-1, 1]) or ``"toy"`` (continuous
            2-D data with an exact noisy density).
        native_shape: the shape of one example as shipped (``(H, W)`` for grey images).
        bins: the grid levels of the data as shipped (``None``: continuous).
        loader: ``"module:function"`` of the loader, imported on first use; it is called as
            ``function(directory, bins, **options)`` for images and ``function(name)`` for toys.
        aliases: other accepted spellings.
        files: files the loader reads from a folder (``data_dir``; empty: shipped with a
            package).
        options: extra keyword arguments of the loader (e.g. ``{"size": 14}``).
        derived_from: the data set this one is computed from (``mnist14`` from ``mnist``).
        description: one line for help texts and docs.
    """

    name: str
    kind: Literal["image", "toy"]
    native_shape: tuple[int, ...]
    bins: int | None
    loader: str
    aliases: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    derived_from: str | None = None
    description: str = ""

    @property
    def reads_files(self) -> bool:
        """Whether the data come from files in a folder (``data_dir``)."""
        return bool(self.files)


#: The named data sets, in the order help texts list them.
CATALOGUE: tuple[DataRecord, ...] = (
    DataRecord("digits", "image", (8, 8), 17, "ncmle_prob.data.digits:load_digits",
               description="scikit-learn's 1797 8x8 digits, 17 levels (embedded)"),
    DataRecord("mnist", "image", (28, 28), 256, "ncmle_prob.data.mnist:load_mnist", files=_IDX,
               description="MNIST 28x28 from IDX files, 256 levels"),
    DataRecord("mnist14", "image", (14, 14), 256, "ncmle_prob.data.mnist:load_mnist",
               files=_IDX, options={"size": 14}, derived_from="mnist",
               description="MNIST at 14x14 (2x2 blocks averaged), 256 levels"),
    DataRecord("fashion_mnist", "image", (28, 28), 256,
               "ncmle_prob.data.mnist:load_fashion_mnist", aliases=("fashion-mnist", "fmnist"),
               files=_IDX, description="Fashion-MNIST 28x28 from IDX files, 256 levels"),
    DataRecord("gaussian_mixture", "toy", (2,), None, "ncmle_prob.data.toy2d:load_toy",
               description="2-D mixture of 8 Gaussians on a ring"),
    DataRecord("rings", "toy", (2,), None, "ncmle_prob.data.toy2d:load_toy",
               description="2-D concentric rings"),
    DataRecord("checkerboard", "toy", (2,), None, "ncmle_prob.data.toy2d:load_toy",
               description="2-D checkerboard"),
)

#: Specs that name files instead of a data set: ``folder:PATH`` (images), ``npy:PATH`` (arrays).
PREFIXES = ("folder", "npy")

_BY_NAME = {r.name: r for r in CATALOGUE}
_BY_ALIAS = {a: r for r in CATALOGUE for a in (r.name, *r.aliases)}


def names(*, kind: str | None = None, derived: bool = True) -> tuple[str, ...]:
    """Canonical names, in catalogue order.

    Args:
        kind: only ``"image"`` or only ``"toy"`` data sets.
        derived: include data sets computed from another one (``mnist14``).
    """
    return tuple(r.name for r in CATALOGUE
                 if (kind is None or r.kind == kind) and (derived or r.derived_from is None))


def spec_names() -> tuple[str, ...]:
    """Every accepted spec as help texts show it: the names, then ``folder:PATH``, ``npy:PATH``."""
    return (*names(), *(f"{p}:PATH" for p in PREFIXES))


def lookup(name: str) -> DataRecord:
    """The record of a name or alias.

    Raises:
        ValueError: unknown name; the message lists every accepted spec.
    """
    record = _BY_ALIAS.get(name) if isinstance(name, str) else None
    if record is None:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(spec_names())}")
    return record
