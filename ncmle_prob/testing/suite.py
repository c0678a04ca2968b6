"""The registry of generic checks and :func:`check_distribution`, which runs them."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from . import contracts, properties, reach
from .spec import Example, Factory

__all__ = ["CHECKS", "KINDS", "check_distribution", "checks_for", "checks_of_kind"]

Check = Callable[[Example, torch.device], None]

#: Every generic check by name, in the order :func:`check_distribution` runs them.
CHECKS: dict[str, Check] = {
    "shapes": properties.check_shapes,
    "per_example_sigma": properties.check_per_example_sigma,
    "expand": properties.check_expand,
    "at": properties.check_at,
    "score": properties.check_score,
    "finite_differences": properties.check_score_finite_differences,
    "denoise": properties.check_denoise,
    "normalisation": properties.check_normalisation,
    "goodness_of_fit": properties.check_goodness_of_fit,
    "float64": properties.check_float64,
    "validation": properties.check_validation,
    "support": contracts.check_support_constraint,
    "infer_shapes": contracts.check_infer_shapes,
    "expand_subclass": contracts.check_expand_subclass,
    "jit_trace": contracts.check_jit_trace,
    "serialization": contracts.check_serialization,
    "predictive": contracts.check_predictive_shapes,
    "sigma_binding": contracts.check_sigma_binding,
    "positive_transform": contracts.check_positive_transform,
    "sigma_reach": reach.check_sigma_reach,
}


#: The kinds of check: ``"property"`` (the math of a distribution: shapes, scores, Tweedie,
#: normalisation, goodness of fit; :mod:`.properties`) and ``"contract"`` (what generic torch
#: and Pyro code relies on, and σ reaching every dimension; :mod:`.contracts`, :mod:`.reach`).
KINDS = ("property", "contract")


def checks_of_kind(kind: str) -> list[str]:
    """The names of :data:`CHECKS` of one kind, in registry order: a check's kind is the
    module that defines it (:mod:`.properties`: ``"property"``; else ``"contract"``).

    Example:
        >>> checks_of_kind("property")[:2], "sigma_reach" in checks_of_kind("contract")
        (['shapes', 'per_example_sigma'], True)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    return [name for name, check in CHECKS.items()
            if (check.__module__ == properties.__name__) == (kind == "property")]


def checks_for(example: Example, only: Iterable[str] | None = None) -> list[str]:
    """Names of the checks that apply to ``example`` (all of :data:`CHECKS`, less its
    ``skip`` and the integration checks its ``dim`` rules out), restricted to ``only``."""
    wanted = list(CHECKS) if only is None else list(only)
    unknown = set(wanted) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; known: {list(CHECKS)}")
    return [name for name in wanted if example.applies(name)]


def check_distribution(
    make: Factory | Example,
    *,
    dim: int | None = None,
    discrete_at_zero: bool = False,
    exact_sampler: bool = True,
    span: tuple[float, float] | None = None,
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
    device: torch.device | str = "cpu",
) -> list[str]:
    """Runs the full contract on a noise-conditional distribution and returns the names of
    the checks that ran; the first violation raises :class:`AssertionError` (its message
    starts with the check's name).

    Args:
        make: ``make(dtype, device)`` returning a fresh, deterministic distribution (see
            :class:`Example`), or an :class:`Example`.
        dim: scalar dimensions of one event; read from ``make`` when ``None``.
        discrete_at_zero, exact_sampler, span, skip: as in :class:`Example`.
        only: run only these checks.
        device: where to run.

    Example:
        >>> import torch
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> from ncmle_prob.testing import check_distribution
        >>> def make(dtype, device):
        ...     loc = torch.tensor([0.5], dtype=dtype, device=device)
        ...     cov = torch.tensor([[0.3]], dtype=dtype, device=device)
        ...     return NoisyGaussian(loc, cov, sigma=torch.tensor([0.0, 0.4], dtype=dtype))
        >>> ran = check_distribution(make, only=["shapes", "score", "sigma_binding"])
        >>> ran
        ['shapes', 'score', 'sigma_binding']
    """
    device = torch.device(device)
    if isinstance(make, Example):
        example = make
    else:
        if dim is None:
            dim = make(torch.float32, device).event_shape.numel()
        example = Example(getattr(make, "__name__", "distribution"), make, dim=dim,
                          discrete_at_zero=discrete_at_zero, exact_sampler=exact_sampler,
                          span=span, skip=frozenset(skip))
    ran = []
    for name in checks_for(example, only):
        try:
            CHECKS[name](example, device)
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from err
        ran.append(name)
    return ran
