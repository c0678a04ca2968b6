"""PixelCNN++ building blocks: shifted convolutions, gated resnets, and row-band caching.

Every convolution here is *causal in raster order*: a down-shifted convolution sees only the
rows above (and the current row, for the horizontal stream), a down-right-shifted one also
only the columns to the left. Each layer can run in two modes:

* **full** (``ctx=None``): the usual convolution over the whole image;
* **band** (``ctx`` a :class:`BandContext`): the layer computes only the rows of the current
  *band* (a few rows around the pixel being sampled) and reads the one row above the band it
  needs from a per-layer cache of its input. Since no layer looks below the current row, the
  band's outputs equal the full network's outputs on those rows; this is what makes the cached
  ancestral sampler cost about ``band / H`` of a naive full pass per pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BandContext",
    "DownRightShiftedConv2d",
    "DownRightShiftedDeconv2d",
    "DownShiftedConv2d",
    "DownShiftedDeconv2d",
    "GatedResnet",
    "concat_elu",
    "down_shift",
    "right_shift",
]


def concat_elu(x: Tensor) -> Tensor:
    """PixelCNN++'s concatenated ELU, :math:`[\\mathrm{elu}(x), \\mathrm{elu}(-x)]` on channels."""
    return F.elu(torch.cat([x, -x], dim=1))


def right_shift(x: Tensor) -> Tensor:
    """Shifts ``(N, C, H, W)`` one column right, filling column 0 with zeros."""
    return F.pad(x, (1, 0))[..., :-1]


def down_shift(x: Tensor, ctx: BandContext | None = None, key: object = None, level: int = 0) -> (
    Tensor
):
    """Shifts ``(N, C, H, W)`` one row down, filling row 0 with zeros.

    In band mode the row above the band comes from the cache under ``key``.
    """
    if ctx is None:
        return F.pad(x, (0, 0, 1, 0))[:, :, :-1]
    a, b = ctx.rows(level)
    wx = x.shape[3]
    buf = ctx.buffer(key, x, level)
    buf[:, :, a:b, :wx] = x
    if a == 0:
        return F.pad(buf[:, :, : b - 1, :wx], (0, 0, 1, 0))
    return buf[:, :, a - 1 : b - 1, :wx]


class BandContext:
    """State of a band-wise (cached) evaluation of the network.

    Holds, for every layer that looks one row up, the full-size tensor of its input; rows
    above the current band are exact (computed when those rows were final), rows in the band
    are rewritten on each call. With :attr:`reuse_u` the vertical stream is not recomputed.

    Args:
        heights: image height at each resolution level (level 0 = full resolution).
        widths: image width at each level.
        band: band height at full resolution (``2 ** levels``, so every level's band is whole).
    """

    def __init__(self, heights: list[int], widths: list[int], band: int) -> None:
        self.heights = heights
        self.widths = widths
        self.band = band
        self.start = 0
        self._buffers: dict[object, Tensor] = {}
        #: The vertical (``u``) stream's band values, in call order, from the last pass with
        #: :attr:`reuse_u` false. The ``u`` stream at rows ``<= r`` depends only on rows
        #: ``< r``, so all pixels of row ``r`` can share one evaluation of it.
        self.u_values: list[Tensor] = []
        self.reuse_u = False
        #: Last full-resolution row (exclusive) to evaluate; ``None``: the band's end. No
        #: layer looks below the current row, so rows ``< stop`` are exact without the rest.
        self.stop: int | None = None
        #: Evaluate the horizontal (``ul``) stream on the first ``cols`` columns only
        #: (full resolution; a multiple of ``2 ** levels`` or the width); ``None``: all.
        #: Every ``ul`` layer looks only left, so its columns ``< cols`` stay exact.
        self.cols: int | None = None

    def set_band(self, start: int) -> None:
        """Moves the band to full-resolution rows ``[start, start + band)``."""
        if start % self.band:
            raise ValueError(f"start must be a multiple of {self.band}, got {start}")
        self.start = start
        self.stop = None
        self.cols = None

    def rows(self, level: int) -> tuple[int, int]:
        """Row range ``[a, b)`` of the band at resolution ``level``."""
        stride = 2**level
        end = min(self.start + self.band, self.heights[0])
        if self.stop is not None:
            end = min(end, self.stop)
        return self.start // stride, min(-(-end // stride), self.heights[level])

    def buffer(self, key: object, like: Tensor, level: int) -> Tensor:
        """The cached full-size input for ``key`` (zeros on first use)."""
        buf = self._buffers.get(key)
        if buf is None:
            shape = (like.shape[0], like.shape[1], self.heights[level], self.widths[level])
            buf = like.new_zeros(shape)
            self._buffers[key] = buf
        return buf


class _ShiftedConv(nn.Conv2d):
    """A convolution whose window lies on and above the current row (see subclasses)."""

    #: (left, right) column padding.
    _cols: tuple[int, int]

    def __init__(
        self, in_ch: int, out_ch: int, kernel: tuple[int, int], stride: int, level: int
    ) -> None:
        super().__init__(in_ch, out_ch, kernel, stride=stride)
        self.level = level

    def forward(self, x: Tensor, ctx: BandContext | None = None) -> Tensor:  # type: ignore[override]
        kh = self.kernel_size[0]
        if ctx is None:
            return super().forward(F.pad(x, (*self._cols, kh - 1, 0)))
        if kh == 1:
            return super().forward(F.pad(x, (*self._cols, 0, 0)))
        a, b = ctx.rows(self.level)
        wx = x.shape[3]  # the band may also be cropped to its first columns
        buf = ctx.buffer(self, x, self.level)
        buf[:, :, a:b, :wx] = x
        if self.stride[0] == 2:
            # Output rows [a/2, b2) need input rows [a - 1, 2 b2 - 1).
            b2 = ctx.rows(self.level + 1)[1]
            b = 2 * b2 - 1
        if a == 0:
            inp = F.pad(buf[:, :, :b, :wx], (*self._cols, 1, 0))
        else:
            inp = F.pad(buf[:, :, a - 1 : b, :wx], (*self._cols, 0, 0))
        return super().forward(inp)


class DownShiftedConv2d(_ShiftedConv):
    """Convolution over the rows above and the current row, centred on the column.

    The output at row ``r`` sees input rows ``r - kh + 1 .. r``; combine with
    :func:`down_shift` to see strictly earlier rows.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel: ``(kh, kw)`` with ``kh`` in {1, 2} and ``kw`` odd.
        stride: 1, or 2 to halve the resolution.
        level: resolution level of the input (for band mode).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: tuple[int, int] = (2, 3),
        stride: int = 1,
        level: int = 0,
    ) -> None:
        super().__init__(in_ch, out_ch, kernel, stride, level)
        half = (kernel[1] - 1) // 2
        self._cols = (half, half)


class DownRightShiftedConv2d(_ShiftedConv):
    """Convolution over the rows above and the columns to the left (inclusive).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel: ``(kh, kw)`` with ``kh`` in {1, 2}.
        stride: 1, or 2 to halve the resolution.
        level: resolution level of the input (for band mode).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: tuple[int, int] = (2, 2),
        stride: int = 1,
        level: int = 0,
    ) -> None:
        super().__init__(in_ch, out_ch, kernel, stride, level)
        self._cols = (kernel[1] - 1, 0)


class _ShiftedDeconv(nn.ConvTranspose2d):
    """A stride-2 transposed convolution doubling the resolution, cropped to stay causal.

    Kernel height 2 with stride 2 makes output rows ``2j, 2j+1`` depend on input row ``j``
    only, so a band of input rows maps to a band of output rows without any cache.
    """

    _crop: tuple[int, int]

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int]) -> None:
        super().__init__(in_ch, out_ch, kernel, stride=2, output_padding=1)

    def forward(self, x: Tensor, ctx: BandContext | None = None) -> Tensor:  # type: ignore[override]
        out = super().forward(x)
        h, w = 2 * x.shape[2], 2 * x.shape[3]
        return out[:, :, :h, self._crop[0] : self._crop[0] + w]


class DownShiftedDeconv2d(_ShiftedDeconv):
    """Up-sampling partner of :class:`DownShiftedConv2d` (kernel ``(2, 3)``)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(in_ch, out_ch, (2, 3))
        self._crop = (1, 0)


class DownRightShiftedDeconv2d(_ShiftedDeconv):
    """Up-sampling partner of :class:`DownRightShiftedConv2d` (kernel ``(2, 2)``)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(in_ch, out_ch, (2, 2))
        self._crop = (0, 0)


class GatedResnet(nn.Module):
    """PixelCNN++'s gated residual block with a noise-level (``h``) path.

    .. math::

        c &= W_2 * \\mathrm{drop}(\\mathrm{celu}(W_1 * \\mathrm{celu}(x) + V\\,
        \\mathrm{celu}(a))) + U h, \\qquad [c_a, c_b] = c,\\\\
        y &= x + c_a \\odot \\operatorname{sigmoid}(c_b),

    where ``celu`` is :func:`concat_elu`, ``*`` a shifted convolution, ``a`` an optional
    short-cut input (1×1 convolution ``V``) and ``h`` the noise features (conditional
    PixelCNN: a per-channel bias from σ, added in every block).

    Args:
        channels: feature maps.
        conv: :class:`DownShiftedConv2d` or :class:`DownRightShiftedConv2d`.
        kernel: the convolution's kernel.
        skip_channels: channels of the short-cut input ``a`` (0 for none).
        cond_features: size of ``h``.
        dropout: dropout probability (training only; never inside band evaluation).
        level: resolution level (for band mode).

    Example:
        >>> block = GatedResnet(4, DownShiftedConv2d, (2, 3), cond_features=3)
        >>> block(torch.randn(2, 4, 5, 5), torch.randn(2, 3)).shape
        torch.Size([2, 4, 5, 5])
    """

    def __init__(
        self,
        channels: int,
        conv: type[_ShiftedConv],
        kernel: tuple[int, int],
        skip_channels: int = 0,
        cond_features: int = 0,
        dropout: float = 0.0,
        level: int = 0,
    ) -> None:
        super().__init__()
        self.conv_input = conv(2 * channels, channels, kernel, 1, level)
        self.nin_skip = nn.Conv2d(2 * skip_channels, channels, 1) if skip_channels else None
        self.conv_out = conv(2 * channels, 2 * channels, kernel, 1, level)
        self.cond = nn.Linear(cond_features, 2 * channels) if cond_features else None
        self.dropout = float(dropout)

    def forward(
        self,
        x: Tensor,
        h: Tensor | None = None,
        a: Tensor | None = None,
        ctx: BandContext | None = None,
    ) -> Tensor:
        c = self.conv_input(concat_elu(x), ctx)
        if self.nin_skip is not None:
            if a is None:
                raise ValueError("this block has a short-cut input: a must be given")
            c = c + self.nin_skip(concat_elu(a))
        c = concat_elu(c)
        if self.dropout > 0 and ctx is None:
            c = F.dropout(c, self.dropout, self.training)
        c = self.conv_out(c, ctx)
        if self.cond is not None:
            if h is None:
                raise ValueError("this block is noise-conditional: h must be given")
            c = c + self.cond(h)[:, :, None, None]
        c_a, c_b = c.chunk(2, dim=1)
        return x + c_a * torch.sigmoid(c_b)
