"""Argument checks shared by every noise-conditional distribution.

Each check raises a :class:`ValueError` or :class:`TypeError` whose message names the argument,
what was received (shape, dtype, device or value) and the rule it broke. None of them touches
torch's or Pyro's global validation switches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "as_sigma",
    "bin_width",
    "broadcast_shapes",
    "check_finite",
    "check_positive_int",
    "check_tensor",
    "describe_shape",
]


def describe_shape(shape: Sequence[int]) -> str:
    """Formats a shape as ``(a, b)`` for error messages."""
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_tensor(
    name: str,
    value: object,
    *,
    dtype: torch.dtype,
    device: torch.device,
    event_shape: torch.Size,
) -> Tensor:
    """Checks that ``value`` is a tensor of ``dtype`` on ``device`` ending in ``event_shape``.

    Raises:
        TypeError: if ``value`` is not a tensor or has the wrong dtype.
        ValueError: if it lives on another device or its trailing dims differ from
            ``event_shape``.
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {value.dtype} but the distribution computes in {dtype}; "
            f"convert with {name}.to({dtype}) (or the model with .to({dtype}))"
        )
    if value.device != device:
        raise ValueError(
            f"{name} is on device {value.device} but the distribution is on {device}; "
            f"move it with {name}.to({str(device)!r})"
        )
    k = len(event_shape)
    if value.dim() < k or tuple(value.shape[value.dim() - k :]) != tuple(event_shape):
        raise ValueError(
            f"{name} has shape {describe_shape(value.shape)} but the trailing dims must equal "
            f"event_shape {describe_shape(event_shape)}"
        )
    return value


def broadcast_shapes(*shapes: Sequence[int]) -> torch.Size:
    """:func:`torch.broadcast_shapes` in plain Python, for the few short shapes of a call.

    torch's version goes through ``torch._refs`` (about 8 µs a call); this one takes about
    1 µs, which matters on the per-call path of ``log_prob``.

    Raises:
        RuntimeError: if the shapes do not broadcast, as torch's does.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for shape in shapes:
        for i, n in enumerate(shape, ndim - len(shape)):
            if n != 1 and n != out[i]:
                if out[i] != 1:
                    raise RuntimeError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
                out[i] = n
    return torch.Size(out)


def check_finite(name: str, value: Tensor) -> None:
    """Raises :class:`ValueError` if ``value`` contains NaN or ±inf.

    One reduction (a NaN or ±inf entry makes the sum non-finite) instead of a boolean copy of
    ``value``; the exact count runs only when the sum is not finite, which a finite ``value``
    can also cause by overflowing.
    """
    v = value.detach()
    if v.numel() == 0 or math.isfinite(v.sum().item()):  # one kernel, one sync
        return
    bad = int((~torch.isfinite(v)).sum())
    if bad:
        raise ValueError(
            f"{name} contains {bad} NaN or infinite entries (shape {describe_shape(value.shape)}); "
            "every entry must be finite"
        )


def as_sigma(
    sigma: object,
    *,
    dtype: torch.dtype,
    device: torch.device,
    name: str = "sigma",
    validate: bool = True,
) -> Tensor:
    """Converts ``sigma`` to a tensor and checks that it is finite and non-negative.

    This is *the* entry check of the σ contract: it runs once where σ enters (construction,
    :meth:`~ncmle_prob.distributions.NoiseConditionalDistribution.at`, a per-call ``sigma=``)
    and internal paths pass the tensor it returns on without checking it again. A Python number
    (or a list or tuple of numbers, a ladder: then a 1-D tensor is returned) is checked in
    Python (no device work); a tensor with a single reduction, so the check costs
    one device-to-host synchronisation on CUDA, not one per rule.

    Python numbers and tensors are accepted; a tensor is moved to ``device``/``dtype`` only if
    it is a CPU scalar (a convenience for ``sigma=torch.tensor(0.5)``), otherwise device and
    floating dtype must already match.

    With ``validate=False`` (a distribution built with ``validate_args=False``) a *tensor* is
    not scanned, as torch skips its argument checks then: no reduction, no synchronisation.
    Python numbers are still checked (in Python, at no device cost), and so are types and
    devices (they cost nothing and a wrong one would fail obscurely later).

    Raises:
        TypeError: ``sigma`` is not a number or a real tensor.
        ValueError: ``sigma`` is negative, NaN or infinite, or on another device.

    Example:
        >>> as_sigma(0.5, dtype=torch.float32, device=torch.device("cpu"))
        tensor(0.5000)
        >>> as_sigma(-1.0, dtype=torch.float32, device=torch.device("cpu"))
        Traceback (most recent call last):
        ...
        ValueError: sigma must be >= 0 (a noise standard deviation), got -1 (shape ())
    """
    if isinstance(sigma, (list, tuple)):  # a ladder of numbers: checked in Python
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in sigma):
            raise TypeError(f"{name} must be a sequence of floats, got {sigma!r}")
        values = [float(v) for v in sigma]
        bad = [v for v in values if not (math.isfinite(v) and v >= 0)]
        if bad:
            rule = "finite" if not math.isfinite(bad[0]) else ">= 0 (a noise standard deviation)"
            raise ValueError(
                f"{name} must be {rule} at every level, got {bad[0]:g} in "
                f"{_preview(torch.tensor(values))} (shape ({len(values)},))"
            )
        return torch.tensor(values, dtype=dtype, device=device)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, Tensor)):
        raise TypeError(
            f"{name} must be a float or a torch.Tensor, got {type(sigma).__name__}"
        )
    if not isinstance(sigma, Tensor):
        value = float(sigma)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value:g} (shape ())")
        if value < 0:
            raise ValueError(
                f"{name} must be >= 0 (a noise standard deviation), got {value:g} (shape ())"
            )
        return torch.tensor(value, dtype=dtype, device=device)
    if sigma.is_complex() or sigma.dtype == torch.bool:
        raise TypeError(f"{name} must be a real tensor, got dtype {sigma.dtype}")
    if sigma.device != device and not (sigma.dim() == 0 and sigma.device.type == "cpu"):
        raise ValueError(
            f"{name} is on device {sigma.device} but the distribution is on {device}"
        )
    sigma = sigma.to(device=device, dtype=dtype)
    if not validate:
        return sigma
    # One reduction for both rules: NaN fails ``>= 0`` and inf fails ``< inf``.
    if sigma.numel() and not bool(((sigma >= 0) & (sigma < math.inf)).all()):
        if not bool(torch.isfinite(sigma).all()):
            raise ValueError(
                f"{name} must be finite, got {_preview(sigma)} "
                f"(shape {describe_shape(sigma.shape)})"
            )
        raise ValueError(
            f"{name} must be >= 0 (a noise standard deviation), got {_preview(sigma)} "
            f"(shape {describe_shape(sigma.shape)})"
        )
    return sigma


def bin_width(bins: int) -> float:
    """The distance ``2 / (bins - 1)`` between neighbouring levels of the grid of ``bins``
    equally spaced levels on [-1, 1].

    Raises:
        ValueError: ``bins`` is not an integer ``>= 2``.

    Example:
        >>> bin_width(256) == 2 / 255
        True
    """
    return 2.0 / (check_positive_int("bins", bins, minimum=2) - 1)


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Returns ``value`` as an ``int`` if it is an integral number ``>= minimum``.

    Accepts Python ints, integral floats (``3.0``) and integer-valued 0-d tensors; rejects
    ``bool`` (``True`` is not a size).

    Raises:
        ValueError: naming ``name``, with the value received and the rule broken.

    Example:
        >>> check_positive_int("components", 3)
        3
        >>> check_positive_int("bins", 1, minimum=2)
        Traceback (most recent call last):
        ...
        ValueError: bins must be an integer >= 2, got 1
    """
    if isinstance(value, Tensor) and value.dim() == 0 and not value.is_complex():
        value = value.item()
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and float(value).is_integer()
        and value >= minimum
    )
    if not ok:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def _preview(t: Tensor, limit: int = 6) -> str:
    flat = t.detach().reshape(-1)[:limit].tolist()
    more = ", ..." if t.numel() > limit else ""
    return "[" + ", ".join(f"{v:g}" for v in flat) + more + "]" if t.dim() else f"{t.item():g}"
