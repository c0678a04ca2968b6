"""Ancestral sampling for PixelCNN++: a row-band cached sampler and the naive reference.

The naive sampler re-runs the whole network for every one of the ``C·H·W`` dimensions. The
cached sampler uses three facts: (i) all channels of a pixel share one network evaluation (the
channel coupling is applied afterwards); (ii) no layer looks below the current row, so the
network only needs to run on the *band* of ``2**levels`` rows containing the current pixel,
reading the row above the band of every layer from a cache (:class:`BandContext`); (iii) the
vertical (``u``) stream at rows ``<= r`` depends only on rows ``< r``, so it is evaluated once
per row and reused for every pixel of the row; (iv) the horizontal (``ul``) stream at pixel
``(r, w)`` depends only on band rows ``<= r`` and columns ``<= w`` (given the ``u`` stream), so
it runs on the rows ``start..r`` of the band and the first ``w + 1`` columns, rounded up to a
multiple of ``2**levels``. Per pixel this costs on average about ``(band + 1) / (2 H)`` times
``(W + band) / (2 W)`` of the horizontal stream of a full pass. Both samplers consume the
generator in the same order, so under the same generator they return the same draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .layers import BandContext

if TYPE_CHECKING:
    from .network import PixelCNNPP

__all__ = ["cached_ancestral_sample", "naive_ancestral_sample"]


def _start(model: PixelCNNPP, sigma: Tensor) -> Tensor:
    if sigma.dim() != 1:
        raise ValueError(f"sigma must have shape (N,), got {tuple(sigma.shape)}")
    param = next(model.parameters())
    return torch.zeros(
        (sigma.shape[0], *model.event_shape), dtype=param.dtype, device=param.device
    )


def cached_ancestral_sample(
    model: PixelCNNPP, family: Any, sigma: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Exact ancestral draws ``(N, C, H, W)`` with the row-band cache.

    Args:
        model: the network.
        family: the per-dimension family (the distribution's).
        sigma: noise levels, shape ``(N,)``.
        generator: random generator.
    """
    x = _start(model, sigma)
    c, height, width = model.event_shape
    h = model.noise_features(sigma)
    band = 2**model.levels
    ctx = BandContext(model.heights, model.widths, band)
    for start in range(0, height, band):
        ctx.set_band(start)
        end = min(start + band, height)
        for r in range(start, end):
            ctx.stop = r + 1  # the band's rows below r cannot influence row r
            for w in range(width):
                ctx.reuse_u = w > 0  # the vertical stream is shared by the whole row
                # The horizontal stream only looks left: evaluate it on the columns up to w,
                # rounded up so that every resolution level keeps whole columns.
                ctx.cols = min(width, -(-(w + 1) // band) * band)
                out = model.network(x[:, :, start : r + 1], h, ctx)[:, :, r - start, w]
                for ch in range(c):
                    params = model.pixel_params(out, x[:, :, r, w], ch)
                    x[:, ch, r, w] = family.sample(params, sigma, generator)
        if end < height:  # refresh the caches with the band's final values
            ctx.reuse_u, ctx.stop, ctx.cols = False, None, None
            model.network(x[:, :, start:end], h, ctx)
    return x


def naive_ancestral_sample(
    model: PixelCNNPP,
    family: Any,
    sigma: Tensor,
    generator: torch.Generator | None = None,
    max_rows: int | None = None,
) -> Tensor:
    """Exact ancestral draws ``(N, C, H, W)`` by a full network pass per dimension.

    The reference for :func:`cached_ancestral_sample` (same draws under the same generator).
    ``max_rows`` stops after that many rows (the rest stay 0), for timing: the first rows
    then equal those of the full draw under the same generator.
    """
    x = _start(model, sigma)
    c, height, width = model.event_shape
    for r in range(height if max_rows is None else min(max_rows, height)):
        for w in range(width):
            for ch in range(c):
                params = model.conditional_params(x, sigma)[:, ch, r, w]
                x[:, ch, r, w] = family.sample(params, sigma, generator)
    return x
