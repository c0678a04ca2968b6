"""Argument checks shared by every noise-conditional distribution.

Each check raises a :class:`ValueError` or :class:`TypeError` whose message names the argument,
what was received (shape, dtype, device or value) and the rule it broke. None of them touches
torch's or Pyro's global validation switches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "as_sigma",
    "broadcast_shapes",
    "check_finite",
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
    if v.numel() == 0 or bool(torch.isfinite(v.sum())):
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
) -> Tensor:
    """Converts ``sigma`` to a tensor and checks that it is finite and non-negative.

    Python numbers and tensors are accepted; a tensor is moved to ``device``/``dtype`` only if
    it is a CPU scalar (a convenience for ``sigma=torch.tensor(0.5)``), otherwise device and
    floating dtype must already match.

    Raises:
        TypeError: ``sigma`` is not a number or a real tensor.
        ValueError: ``sigma`` is negative, NaN or infinite, or on another device.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, Tensor)):
        raise TypeError(
            f"{name} must be a float or a torch.Tensor, got {type(sigma).__name__}"
        )
    if isinstance(sigma, Tensor):
        if sigma.is_complex() or sigma.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor, got dtype {sigma.dtype}")
        if sigma.device != device and not (sigma.dim() == 0 and sigma.device.type == "cpu"):
            raise ValueError(
                f"{name} is on device {sigma.device} but the distribution is on {device}"
            )
        sigma = sigma.to(device=device, dtype=dtype)
    else:
        sigma = torch.tensor(float(sigma), dtype=dtype, device=device)
    if not bool(torch.isfinite(sigma).all()):
        raise ValueError(
            f"{name} must be finite, got {_preview(sigma)} (shape {describe_shape(sigma.shape)})"
        )
    if bool((sigma < 0).any()):
        raise ValueError(
            f"{name} must be >= 0 (a noise standard deviation), got {_preview(sigma)} "
            f"(shape {describe_shape(sigma.shape)})"
        )
    return sigma


def _preview(t: Tensor, limit: int = 6) -> str:
    flat = t.detach().reshape(-1)[:limit].tolist()
    more = ", ..." if t.numel() > limit else ""
    return "[" + ", ".join(f"{v:g}" for v in flat) + more + "]" if t.dim() else f"{t.item():g}"
