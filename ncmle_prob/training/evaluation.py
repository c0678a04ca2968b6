"""Bits/dim of a model on a data set at a list of noise levels."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence, Sized

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..objectives import bits_per_dim
from .noise import keyed_generator

__all__ = ["evaluate_bits_per_dim"]


@torch.no_grad()
def evaluate_bits_per_dim(
    model: nn.Module,
    data: Tensor | Dataset,
    sigmas: Sequence[float] = (0.0,),
    *,
    bins: int | None = None,
    batch_size: int = 1024,
    seed: int = 0,
) -> dict[float, float]:
    """Mean bits/dim of ``data`` perturbed at each σ: :math:`x = x_0 + \\sigma\\varepsilon`.

    The noise is drawn from a generator keyed by ``(seed, σ)``, so two models evaluated with
    the same seed see the same noisy data. Conventions are those of
    :func:`ncmle_prob.objectives.bits_per_dim` (σ = 0 on grid data with a discretized family is
    a log mass; otherwise a density converted to the bin width given by ``bins``).

    Args:
        model: a model whose call ``model(sigma)`` returns a noise-conditional distribution.
        data: clean data: a tensor ``(N, *event_shape)`` on the model's device, or a
            map-style ``Dataset`` of examples (or ``(example, label, ...)`` tuples), read in
            order in batches of ``batch_size`` and moved to the model's device.
        sigmas: noise levels.
        bins: grid levels of the data (default: the model's distribution's ``bins``).
        batch_size: evaluation batch size.
        seed: seed of the evaluation noise.

    Returns:
        ``{sigma: bits_per_dim}``.

    Example:
        >>> from ncmle_prob.models import MADE
        >>> _ = torch.manual_seed(0)
        >>> model = MADE(features=2, hidden_features=8)
        >>> out = evaluate_bits_per_dim(model, torch.randn(16, 2), [0.0, 0.5])
        >>> sorted(out), all(math.isfinite(v) for v in out.values())
        ([0.0, 0.5], True)
    """
    if isinstance(data, Tensor):
        if data.dim() < 2 or data.shape[0] == 0:
            raise ValueError(
                "data must be a non-empty tensor (N, *event_shape), got shape "
                f"{tuple(data.shape)}"
            )
        n = data.shape[0]
    elif isinstance(data, Dataset) and isinstance(data, Sized) and len(data) > 0:
        n = len(data)
    else:
        raise ValueError(
            "data must be a non-empty tensor (N, *event_shape) or a non-empty map-style "
            f"Dataset, got {type(data).__name__}"
        )
    was_training = model.training
    model.eval()
    try:
        dist = model()
        results: dict[float, float] = {}
        for s in sigmas:
            s = float(s)
            if not math.isfinite(s) or s < 0:
                raise ValueError(f"eval sigmas must be finite and >= 0, got {s!r}")
            dev = data.device if isinstance(data, Tensor) else dist.device
            g = keyed_generator(seed, f"eval:{s!r}", 0, dev)
            total = 0.0
            for x0 in _batches(data, batch_size, dist.device):
                x = x0 + s * torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, generator=g)
                sig = torch.full(x0.shape[:1], s, dtype=x0.dtype, device=x0.device)
                total += float(bits_per_dim(dist, x, sig, bins=bins).sum())
            results[s] = total / n
        return results
    finally:
        model.train(was_training)


def _batches(data: Tensor | Dataset, batch_size: int, device: torch.device) -> Iterator[Tensor]:
    """Consecutive batches of ``data`` in order (the same chunks for a tensor and a data set)."""
    if isinstance(data, Tensor):
        for start in range(0, data.shape[0], batch_size):
            yield data[start : start + batch_size]
        return
    for batch in DataLoader(data, batch_size=batch_size, shuffle=False):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        yield x.to(device)
