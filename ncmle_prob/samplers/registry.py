"""The sampler registry: every sampler chosen by name, on top of the protocol and the options.

Every sampler, built in or user-defined, is called as

.. code-block:: python

    x = sampler(dist, num_samples, generator=None, progress=False)   # (num_samples, *event_shape)

and is registered under a name with :func:`register` in the library's one name registry
(:mod:`ncmle_prob._registry`, kind ``"sampler"``). The call protocol lives in :mod:`.protocol`
and the option typing in :mod:`.option_types`; this module sits on top of both, and only the
sampler modules themselves import it (to register), never the engine, predictors or
correctors. In the style of score_sde's ``register_predictor``, but options are validated
against their types when the sampler is built by :func:`get`.

Example:
    A user sampler in five lines (it appears in :func:`available` like the built-in ones):

    >>> import torch
    >>> from ncmle_prob import samplers
    >>> from ncmle_prob.distributions import NoisyGaussian
    >>> @samplers.register("jittered_ancestral")
    ... def jittered(dist, num_samples, *, generator=None, progress=False, jitter: float = 0.1):
    ...     x = dist.sample((num_samples,), generator=generator)
    ...     return x + jitter * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    >>> d = NoisyGaussian(torch.zeros(2), torch.eye(2))
    >>> samplers.sample(d, 3, method="jittered_ancestral", jitter=0.0).shape
    torch.Size([3, 2])
    >>> samplers.options("jittered_ancestral")["jitter"]
    (<class 'float'>, 0.1, '')
    >>> samplers.unregister("jittered_ancestral")
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._registry import NamedRegistry
from ..distributions import NoiseConditionalDistribution
from .info import SampleInfo
from .option_types import OptionSpec, option, specs_of
from .protocol import FunctionSampler, Sampler, SamplerDivergenceError

__all__ = [
    "NamedRegistry",
    "SampleInfo",
    "Sampler",
    "SamplerDivergenceError",
    "available",
    "get",
    "option",
    "options",
    "register",
    "register_lazy",
    "sample",
    "unregister",
]


def _check_sampler(name: str, obj: Any) -> Any:
    if inspect.isclass(obj):
        if not issubclass(obj, Sampler):
            raise TypeError(f"a sampler class must subclass Sampler, got {obj.__name__}")
        if "__dataclass_fields__" not in obj.__dict__:
            obj = dataclass(obj)
        obj.name = name
    elif callable(obj):
        params = inspect.signature(obj).parameters
        missing = [p for p in ("generator", "progress") if p not in params]
        if len(params) < 2 or missing:
            raise TypeError(
                f"sampler function {name!r} must take (dist, num_samples, *, generator, "
                f"progress, **options); missing {missing or ['dist, num_samples']}"
            )
    else:
        raise TypeError(f"register expects a Sampler subclass or a function, got {obj!r}")
    specs_of(name, obj)  # fails early on untyped options
    return obj


#: The samplers, by name (kind ``"sampler"`` of :mod:`ncmle_prob._registry`).
SAMPLERS = NamedRegistry("sampler", _check_sampler)
SAMPLERS.register_lazy("pyro_mala", "ncmle_prob.infer.mcmc_samplers:pyro_mala")
SAMPLERS.register_lazy("pyro_langevin", "ncmle_prob.infer.mcmc_samplers:pyro_langevin")


def register(name: str) -> Callable[[Any], Any]:
    """Decorator registering a sampler class or function under ``name``.

    A class must subclass :class:`Sampler` (it is made a dataclass if it is not one already);
    a function must have the signature ``fn(dist, num_samples, *, generator, progress,
    **options)`` with annotated keyword-only options that have defaults.

    Raises:
        ValueError: ``name`` is taken or not an identifier.
        TypeError: the decorated object is neither kind.
    """
    return SAMPLERS.register(name)


def register_lazy(name: str, target: str) -> None:
    """Registers sampler ``name`` by import path ``"package.module:attribute"``: it is listed
    by :func:`available` at once and imported by :func:`get` on first use (how the Pyro-backed
    ``pyro_mala`` and ``pyro_langevin`` are registered, without importing Pyro's MCMC)."""
    SAMPLERS.register_lazy(name, target)


def unregister(name: str) -> None:
    """Removes a sampler from the registry (built-in ones included)."""
    SAMPLERS.unregister(name)


def available() -> list[str]:
    """Sorted names of the registered samplers (lazily registered ones included)."""
    return SAMPLERS.names()


def _option_specs(name: str) -> dict[str, OptionSpec]:
    return specs_of(name, SAMPLERS.get(name))


def options(name: str) -> dict[str, tuple[type, Any, str]]:
    """The options of sampler ``name``: ``{option: (type, default, help)}`` for CLIs.

    ``type`` is the plain type a command line should parse (``float`` for ``float | None``,
    ``str`` for a ``Literal`` of strings); the help text lists the choices of a ``Literal``.
    """
    return {k: (spec.type, spec.default, spec.help) for k, spec in _option_specs(name).items()}


def get(name: str, **opts: Any) -> Sampler | FunctionSampler:
    """Builds sampler ``name`` configured with ``opts``.

    Returns:
        a callable ``s(dist, num_samples, generator=None, progress=False)``; after a call,
        ``s.info`` holds its :class:`SampleInfo`.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or invalid option value.
        TypeError: unknown option or a value of the wrong type.
    """
    obj = SAMPLERS.get(name)
    specs = specs_of(name, obj)
    unknown = sorted(set(opts) - set(specs))
    if unknown:
        raise TypeError(
            f"sampler {name!r} has no option(s) {unknown}; its options are {sorted(specs)}"
        )
    values = {k: specs[k].coerce(name, k, v) for k, v in opts.items()}
    if inspect.isclass(obj):
        return obj(**values)
    defaults = {k: s.default for k, s in specs.items()}
    return FunctionSampler(name, obj, {**defaults, **values})


def sample(
    dist: NoiseConditionalDistribution,
    num_samples: int,
    method: str = "ancestral",
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
    return_info: bool = False,
    **opts: Any,
) -> Tensor | tuple[Tensor, SampleInfo]:
    """Draws ``num_samples`` samples of ``dist`` with the sampler registered as ``method``.

    Args:
        dist: any noise-conditional distribution (model or oracle); samplers target its
            bound σ unless an option says otherwise.
        num_samples: number of draws.
        method: a name from :func:`available`.
        generator: a :class:`torch.Generator` on the distribution's device, for reproducible
            draws.
        progress: show a tqdm progress bar.
        return_info: also return the run's :class:`SampleInfo` (e.g. MALA acceptance rates).
        **opts: the sampler's options (see :func:`options`).

    Returns:
        a tensor of shape ``(num_samples, *batch_shape, *event_shape)`` on ``dist``'s device
        and dtype, and the :class:`SampleInfo` if ``return_info``.
    """
    s = get(method, **opts)
    x = s(dist, num_samples, generator=generator, progress=progress)
    if return_info:
        assert s.info is not None
        return x, s.info
    return x
