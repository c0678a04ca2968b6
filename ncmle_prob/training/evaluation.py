"""Bits/dim of a model on a data set at a list of noise levels."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..objectives import bits_per_dim
from .noise import keyed_generator

__all__ = ["evaluate_bits_per_dim"]


@torch.no_grad()
def evaluate_bits_per_dim(
    model: nn.Module,
    data: Tensor,
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
        data: clean data ``(N, *event_shape)`` on the model's device.
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
    if not isinstance(data, Tensor) or data.dim() < 2 or data.shape[0] == 0:
        raise ValueError(f"data must be a non-empty tensor (N, *event_shape), got {data!r:.60}")
    was_training = model.training
    model.eval()
    try:
        dist = model()
        results: dict[float, float] = {}
        for s in sigmas:
            s = float(s)
            if not math.isfinite(s) or s < 0:
                raise ValueError(f"eval sigmas must be finite and >= 0, got {s!r}")
            g = keyed_generator(seed, f"eval:{s!r}", 0, data.device)
            total = 0.0
            for start in range(0, data.shape[0], batch_size):
                x0 = data[start : start + batch_size]
                x = x0 + s * torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, generator=g)
                sig = torch.full(x0.shape[:1], s, dtype=x0.dtype, device=x0.device)
                total += float(bits_per_dim(dist, x, sig, bins=bins).sum())
            results[s] = total / data.shape[0]
        return results
    finally:
        model.train(was_training)
