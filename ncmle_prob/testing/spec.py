"""What a generic check needs to know about a distribution: :class:`Example`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from ..distributions import NoiseConditionalDistribution

__all__ = ["Example", "Factory", "raises"]

#: ``make(dtype, device)`` returns a fresh, deterministic distribution.
Factory = Callable[[torch.dtype, torch.device], NoiseConditionalDistribution]


@dataclass(frozen=True)
class Example:
    """One distribution to check, and which generic checks apply to it.

    Args:
        id: unique, readable id (a pytest id in a parametrized suite).
        make: ``make(dtype, device)`` returns a *fresh*, deterministic distribution (same
            numbers on every call; float64 must be the float32 one converted, e.g. by
            ``model.to(dtype=dtype)``).
        dim: number of scalar dimensions of one event (``event_shape.numel()``).
        discrete_at_zero: ``log_prob`` is a log *mass* on the grid where σ = 0.
        exact_sampler: ``sample`` draws exactly from ``exp(log_prob)`` (enables goodness of fit
            and, without ``span``, the choice of the integration box from samples).
        span: ``(lo, hi)`` box for numerical integration per dimension; ``None`` derives it
            from samples.
        skip: names of checks (from :data:`ncmle_prob.testing.CHECKS`) that do not apply.
    """

    id: str
    make: Factory
    dim: int
    discrete_at_zero: bool = False
    exact_sampler: bool = True
    span: tuple[float, float] | None = None
    skip: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        from .suite import CHECKS  # the names live with the checks

        unknown = set(self.skip) - set(CHECKS)
        if unknown:
            raise ValueError(f"{self.id}: unknown checks in skip: {sorted(unknown)}")

    def applies(self, check: str) -> bool:
        """Whether the generic check ``check`` runs on this example."""
        if check in self.skip:
            return False
        if check == "normalisation":
            return self.dim <= 2 and (self.exact_sampler or self.span is not None)
        if check == "goodness_of_fit":
            return self.dim <= 2 and self.exact_sampler
        return True


@contextlib.contextmanager
def raises(error: type[BaseException], match: str) -> Iterator[None]:
    """``pytest.raises`` without pytest: the block must raise ``error`` whose message matches
    the regular expression ``match`` (``re.search``)."""
    try:
        yield
    except error as err:
        if not re.search(match, str(err)):
            raise AssertionError(
                f"{type(err).__name__} raised, but its message {str(err)!r} does not match "
                f"{match!r}"
            ) from err
    else:
        raise AssertionError(f"expected {error.__name__} matching {match!r}; nothing was raised")
