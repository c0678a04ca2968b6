"""The sampler registry: one call signature for every sampler, chosen by name.

Every sampler, built in or user-defined, is called as

.. code-block:: python

    x = sampler(dist, num_samples, generator=None, progress=False)   # (num_samples, *event_shape)

and is registered under a name with :func:`register`. A sampler is either a dataclass subclass
of :class:`Sampler` whose fields are its options, or a plain function whose keyword-only
parameters are its options. Options are typed (field annotations or parameter annotations),
so :func:`options` can describe them to a command line. In the style of score_sde's
``register_predictor``, but options are validated against their types when the sampler is
built by :func:`get`.

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

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from ..distributions.validation import describe_shape
from .batching import check_batch_size, run_in_batches
from .info import SampleInfo
from .named import NamedRegistry

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

_RESERVED = frozenset({"dist", "num_samples", "generator", "progress", "return_info", "method"})


class SamplerDivergenceError(ValueError):
    """A sampler's chain diverged (non-finite or exploding values): the step size is too large.

    Raised instead of ever returning NaN or inf samples; the message names the option to change.
    """


def option(default: Any, help: str) -> Any:
    """A dataclass field for a sampler option with its help text (shown by :func:`options`)."""
    return field(default=default, metadata={"help": help})


@dataclass
class Sampler:
    """Base class of registered sampler classes; the dataclass fields are the options.

    Subclasses implement :meth:`run`; :meth:`__call__` checks the arguments, times the run,
    checks the output (shape, device, finiteness) and keeps the diagnostics in :attr:`info`.
    Option values are validated in ``__post_init__`` (call ``super().__post_init__()``).
    """

    name: ClassVar[str] = ""
    batch_size: int | None = option(
        None, "draws per batch; larger requests run in batches of this size, which bounds the "
        "memory (default: 32768 values per batch, e.g. 167 images of 14x14)")

    def __post_init__(self) -> None:
        self.info: SampleInfo | None = None
        check_batch_size(self.batch_size)

    def run(
        self,
        dist: NoiseConditionalDistribution,
        num_samples: int,
        *,
        generator: torch.Generator | None,
        progress: bool,
    ) -> tuple[Tensor, SampleInfo]:
        """Draws the samples; returns them with the run's diagnostics."""
        raise NotImplementedError

    def __call__(
        self,
        dist: NoiseConditionalDistribution,
        num_samples: int,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> Tensor:
        n = _check_call(dist, num_samples, generator)
        x, info = run_in_batches(
            self.run, dist, n, getattr(self, "batch_size", None), generator=generator,
            progress=bool(progress), desc=self.name or type(self).__name__,
        )
        self.info = info
        return _check_output(self.name or type(self).__name__, dist, n, x)


class _FunctionSampler:
    """A registered function with its options bound (what :func:`get` returns for functions)."""

    def __init__(self, name: str, fn: Callable[..., Tensor], opts: dict[str, Any]) -> None:
        self.name = name
        self.fn = fn
        self.options = dict(opts)
        if "batch_size" not in inspect.signature(fn).parameters:
            self.batch_size = check_batch_size(self.options.pop("batch_size", None))
        else:
            self.batch_size = None  # the function batches itself
        self.info: SampleInfo | None = None

    def run(
        self,
        dist: NoiseConditionalDistribution,
        num_samples: int,
        *,
        generator: torch.Generator | None,
        progress: bool,
    ) -> tuple[Tensor, SampleInfo]:
        x = self.fn(dist, num_samples, generator=generator, progress=progress, **self.options)
        return x, SampleInfo(self.name)

    __call__ = Sampler.__call__

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{self.name}({args})"


# ---------------------------------------------------------------------------------- registry
def register(name: str) -> Callable[[Any], Any]:
    """Decorator registering a sampler class or function under ``name``.

    A class must subclass :class:`Sampler` (it is made a dataclass if it is not one already);
    a function must have the signature ``fn(dist, num_samples, *, generator, progress,
    **options)`` with annotated keyword-only options that have defaults.

    Raises:
        ValueError: ``name`` is taken or not an identifier.
        TypeError: the decorated object is neither kind.
    """
    return _SAMPLERS.register(name)


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
    _specs_of(name, obj)  # fails early on untyped options
    return obj


_SAMPLERS = NamedRegistry("sampler", _check_sampler)
_SAMPLERS.register_lazy("pyro_mala", "ncmle_prob.infer.mcmc_samplers:pyro_mala")
_SAMPLERS.register_lazy("pyro_langevin", "ncmle_prob.infer.mcmc_samplers:pyro_langevin")


def register_lazy(name: str, target: str) -> None:
    """Registers sampler ``name`` by import path ``"package.module:attribute"``: it is listed
    by :func:`available` at once and imported by :func:`get` on first use (how the Pyro-backed
    ``pyro_mala`` and ``pyro_langevin`` are registered, without importing Pyro's MCMC)."""
    _SAMPLERS.register_lazy(name, target)


def unregister(name: str) -> None:
    """Removes a sampler from the registry (built-in ones included)."""
    _SAMPLERS.unregister(name)


def available() -> list[str]:
    """Sorted names of the registered samplers (lazily registered ones included)."""
    return _SAMPLERS.names()


def options(name: str) -> dict[str, tuple[type, Any, str]]:
    """The options of sampler ``name``: ``{option: (type, default, help)}`` for CLIs.

    ``type`` is the plain type a command line should parse (``float`` for ``float | None``,
    ``str`` for a ``Literal`` of strings); the help text lists the choices of a ``Literal``.
    """
    return {k: (spec.type, spec.default, spec.help) for k, spec in _option_specs(name).items()}


def get(name: str, **opts: Any) -> Sampler | _FunctionSampler:
    """Builds sampler ``name`` configured with ``opts``.

    Returns:
        a callable ``s(dist, num_samples, generator=None, progress=False)``; after a call,
        ``s.info`` holds its :class:`SampleInfo`.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or invalid option value.
        TypeError: unknown option or a value of the wrong type.
    """
    obj = _lookup(name)
    specs = _option_specs(name)
    unknown = sorted(set(opts) - set(specs))
    if unknown:
        raise TypeError(
            f"sampler {name!r} has no option(s) {unknown}; its options are {sorted(specs)}"
        )
    values = {k: specs[k].coerce(name, k, v) for k, v in opts.items()}
    if inspect.isclass(obj):
        return obj(**values)
    defaults = {k: s.default for k, s in specs.items()}
    return _FunctionSampler(name, obj, {**defaults, **values})


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


# ---------------------------------------------------------------------------------- helpers
def _lookup(name: str) -> type[Sampler] | Callable[..., Tensor]:
    return _SAMPLERS.get(name)


@dataclass(frozen=True)
class _Spec:
    type: type
    default: Any
    help: str
    optional: bool
    choices: tuple[Any, ...] | None

    def coerce(self, sampler: str, key: str, value: Any) -> Any:
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


def _plain(hint: Any) -> tuple[type, bool, tuple[Any, ...] | None]:
    """``(type a CLI parses, accepts None, Literal choices)`` of an annotation."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"option annotations must be one type or T | None, got {hint}")
        tp, _, choices = _plain(args[0])
        return tp, True, choices
    if origin is Literal:
        choices = typing.get_args(hint)
        return type(choices[0]), False, choices
    if not isinstance(hint, type):
        raise TypeError(f"option annotations must be plain types, got {hint!r}")
    return hint, False, None


def _docstring_help(fn: Callable[..., Any]) -> dict[str, str]:
    """``name: text`` lines of a Google-style ``Args:`` section."""
    out: dict[str, str] = {}
    doc = inspect.getdoc(fn) or ""
    for m in re.finditer(r"^\s+(\w+)(?: \([^)]*\))?: (.+)$", doc, re.MULTILINE):
        out.setdefault(m.group(1), m.group(2).strip())
    return out


def _option_specs(name: str) -> dict[str, _Spec]:
    return _specs_of(name, _lookup(name))


def _specs_of(name: str, obj: Any) -> dict[str, _Spec]:
    specs: dict[str, _Spec] = {}
    if inspect.isclass(obj):
        hints = typing.get_type_hints(obj)
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            if f.default is dataclasses.MISSING:
                raise TypeError(f"sampler {name!r}: option {f.name!r} needs a default")
            tp, optional, choices = _plain(hints[f.name])
            specs[f.name] = _Spec(tp, f.default, _help(f.metadata.get("help", ""), choices),
                                  optional, choices)
        return specs
    hints = typing.get_type_hints(obj)
    helps = _docstring_help(obj)
    for i, (p, param) in enumerate(inspect.signature(obj).parameters.items()):
        if i < 2 or p in _RESERVED or param.kind is param.VAR_KEYWORD:
            continue
        if param.default is param.empty or p not in hints:
            raise TypeError(
                f"sampler {name!r}: option {p!r} needs a type annotation and a default"
            )
        tp, optional, choices = _plain(hints[p])
        specs[p] = _Spec(tp, param.default, _help(helps.get(p, ""), choices), optional, choices)
    if "batch_size" not in specs:  # every sampler has it: the registry does the batching
        field_ = Sampler.__dataclass_fields__["batch_size"]
        specs["batch_size"] = _Spec(int, None, field_.metadata["help"], True, None)
    return specs


def _help(text: str, choices: tuple[Any, ...] | None) -> str:
    if choices is None:
        return text
    return f"{text} (one of: {', '.join(map(str, choices))})".lstrip()


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    return a.index is None or b.index is None or a.index == b.index


def _check_call(
    dist: object, num_samples: object, generator: torch.Generator | None
) -> int:
    if not isinstance(dist, NoiseConditionalDistribution):
        raise TypeError(
            f"dist must be a NoiseConditionalDistribution, got {type(dist).__name__}"
        )
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise TypeError(f"num_samples must be an int, got {type(num_samples).__name__}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if not _same_device(generator.device, dist.device):
            raise ValueError(
                f"generator is on device {generator.device} but the distribution is on "
                f"{dist.device}; create it with torch.Generator(device={str(dist.device)!r})"
            )
    return int(num_samples)


def _check_output(name: str, dist: NoiseConditionalDistribution, n: int, x: object) -> Tensor:
    expected = torch.Size((n,)) + dist.batch_shape + dist.event_shape
    if not isinstance(x, Tensor):
        raise TypeError(f"sampler {name!r} returned {type(x).__name__}, not a tensor")
    if x.shape != expected:
        raise RuntimeError(
            f"sampler {name!r} returned shape {describe_shape(x.shape)}, expected "
            f"(num_samples, *batch_shape, *event_shape) = {describe_shape(expected)}"
        )
    if not _same_device(x.device, dist.device):
        raise RuntimeError(f"sampler {name!r} returned a tensor on {x.device}, not {dist.device}")
    if not bool(torch.isfinite(x).all()):
        raise SamplerDivergenceError(
            f"sampler {name!r} produced non-finite samples; lower its step size"
        )
    return x
