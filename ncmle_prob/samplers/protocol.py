"""The sampler protocol: one call signature for every sampler, and the checks around a call.

Every sampler, built in or user-defined, is called as

.. code-block:: python

    x = sampler(dist, num_samples, generator=None, progress=False)   # (num_samples, *event_shape)

A sampler is either a dataclass subclass of :class:`Sampler` whose fields are its options
(:func:`~ncmle_prob.samplers.option_types.option`), or a plain function whose keyword-only
parameters are its options (wrapped as a :class:`FunctionSampler`). :meth:`Sampler.__call__`
checks the arguments, runs the draws in batches (:mod:`.batching`), and checks the output:
shape ``(num_samples, *batch_shape, *event_shape)``, device, finiteness (a non-finite draw is a
:class:`SamplerDivergenceError`, never returned).

This module knows nothing of names: the registry (:mod:`.registry`) sits on top of it.

Example:
    >>> import torch
    >>> from ncmle_prob.distributions import NoisyGaussian
    >>> s = FunctionSampler("plain", lambda d, n, *, generator, progress: d.sample((n,)), {})
    >>> s(NoisyGaussian(torch.zeros(2), torch.eye(2)), 3).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from ..distributions.validation import describe_shape
from .batching import check_batch_size, run_in_batches
from .info import SampleInfo
from .option_types import BATCH_SIZE_HELP, option

__all__ = ["FunctionSampler", "Sampler", "SamplerDivergenceError", "check_call", "check_output"]


class SamplerDivergenceError(ValueError):
    """A sampler's chain diverged (non-finite or exploding values): the step size is too large.

    Raised instead of ever returning NaN or inf samples; the message names the option to change.
    """


@dataclass
class Sampler:
    """Base class of registered sampler classes; the dataclass fields are the options.

    Subclasses implement :meth:`run`; :meth:`__call__` checks the arguments, times the run,
    checks the output (shape, device, finiteness) and keeps the diagnostics in :attr:`info`.
    Option values are validated in ``__post_init__`` (call ``super().__post_init__()``).
    """

    name: ClassVar[str] = ""
    batch_size: int | None = option(None, BATCH_SIZE_HELP)

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
        n = check_call(dist, num_samples, generator)
        x, info = run_in_batches(
            self.run, dist, n, getattr(self, "batch_size", None), generator=generator,
            progress=bool(progress), desc=self.name or type(self).__name__,
        )
        self.info = info
        return check_output(self.name or type(self).__name__, dist, n, x)


class FunctionSampler:
    """A sampler function with its options bound (what ``get`` returns for functions)."""

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


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    return a.index is None or b.index is None or a.index == b.index


def check_call(dist: object, num_samples: object, generator: torch.Generator | None) -> int:
    """The arguments of a sampler call checked; returns ``num_samples``.

    Raises:
        TypeError: ``dist`` is not noise-conditional, ``num_samples`` not an int, ``generator``
            not a generator.
        ValueError: ``num_samples < 1`` or a generator on another device.
    """
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


def check_output(name: str, dist: NoiseConditionalDistribution, n: int, x: object) -> Tensor:
    """A sampler's output checked: a finite tensor ``(n, *batch_shape, *event_shape)`` on
    ``dist``'s device.

    Raises:
        TypeError, RuntimeError: a broken sampler (wrong type, shape or device).
        SamplerDivergenceError: non-finite draws.
    """
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
