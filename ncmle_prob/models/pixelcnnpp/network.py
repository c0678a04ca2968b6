"""PixelCNN++ with noise-level conditioning: ``PixelCNNPP(...)(sigma)`` is a distribution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...distributions import get_family
from ...distributions.families import GaussianMixture, LogisticMixture
from ..base import AutoregressiveModel
from ..embedding import NoiseEmbedding
from .layers import (
    BandContext,
    DownRightShiftedConv2d,
    DownRightShiftedDeconv2d,
    DownShiftedConv2d,
    DownShiftedDeconv2d,
    GatedResnet,
    down_shift,
    right_shift,
)
from .sampling import cached_ancestral_sample, naive_ancestral_sample

__all__ = ["PixelCNNPP"]


def _levels(height: int, width: int, max_downsample: int) -> int:
    """Number of 2× down-samplings: while both sides are even and at least 8."""
    levels = 0
    while (
        levels < max_downsample and height % 2 == 0 and width % 2 == 0 and min(height, width) >= 8
    ):
        height, width, levels = height // 2, width // 2, levels + 1
    return levels


class PixelCNNPP(AutoregressiveModel):
    """A σ-conditioned PixelCNN++ (Salimans et al., 2017) for images of shape ``(C, H, W)``.

    Down-shifted (vertical) and down-right-shifted (horizontal) stacks of gated resnet blocks,
    short-cut connections from the up pass to the down pass, 2× down/up-sampling while the
    image is at least 8×8 and even-sized, dropout, and a per-pixel mixture head. The noise
    embedding :math:`e(\\sigma)` feeds every gated block (the conditional-PixelCNN ``h`` path).

    The autoregressive order is PixelCNN++'s: pixels in raster order, channels in order within
    a pixel. With the logistic or Gaussian mixture families and ``C > 1`` the means of channel
    ``c`` are shifted by learned coefficients times the earlier channels of the same pixel
    (PixelCNN++'s RGB coupling, per component):

    .. math::

        \\mu_{c,k}(x) = \\tilde\\mu_{c,k} + \\sum_{c' < c} \\tanh(\\alpha_{c c' k})\\, x_{c'},
        \\qquad
        p(x \\mid \\sigma) = \\prod_{(r, w)} \\prod_{c} p\\big(x_{c r w} \\mid x_{<(r,w)},
        x_{<c,\\,r w}, \\sigma\\big).

    Each channel has its own mixture weights, so every conditional is a one-dimensional family
    member and the usual machinery (exact ``log_prob``, autograd ``score``, samplers) applies.
    For ``C = 1`` the order is the flattened event order; for ``C > 1`` it is the raster order
    above (see :meth:`order`), which differs from the flattened ``(C, H, W)`` order.

    The published CIFAR-10 model is ``PixelCNNPP((3, 32, 32), filters=160, resnets=5,
    components=10, bins=256, dropout=0.5)``.

    Args:
        shape: event shape ``(C, H, W)``.
        filters: feature maps of every block.
        resnets: gated resnet blocks per stage (the down pass uses one more per stage below the
            coarsest, as in PixelCNN++).
        family: per-dimension family name; ``"discretized_logistic_mixture"`` for grid data.
        components: mixture components.
        bins: grid levels on [-1, 1] (discretized family).
        max_downsample: at most this many 2× down-samplings (2 in PixelCNN++).
        dropout: dropout probability in the gated blocks.
        noise_features: size of the σ embedding.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> model = PixelCNNPP((1, 4, 4), filters=8, resnets=1, components=2, bins=5).eval()
        >>> dist = model(0.0)
        >>> x = dist.sample((3,))
        >>> x.shape, dist.log_prob(x).shape
        (torch.Size([3, 1, 4, 4]), torch.Size([3]))
        >>> model(0.2).score(x).shape
        torch.Size([3, 1, 4, 4])
    """

    def __init__(
        self,
        shape: tuple[int, int, int] | list[int] | torch.Size,
        filters: int = 64,
        resnets: int = 2,
        family: str = "discretized_logistic_mixture",
        components: int | None = 5,
        bins: int | None = 256,
        max_downsample: int = 2,
        dropout: float = 0.0,
        noise_features: int = 17,
    ) -> None:
        super().__init__()
        shape = tuple(shape)
        if len(shape) != 3 or any(int(s) != s or s < 1 for s in shape):
            raise ValueError(f"shape must be (C, H, W) of positive integers, got {shape!r}")
        for name, value in (("filters", filters), ("resnets", resnets)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if int(max_downsample) != max_downsample or max_downsample < 0:
            raise ValueError(f"max_downsample must be an integer >= 0, got {max_downsample!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if family != "discretized_logistic_mixture":
            bins = None
        if family in ("gaussian",):
            components = None
        self.family = get_family(family, components=components, bins=bins)
        c, height, width = (int(s) for s in shape)
        self.event_shape = torch.Size([c, height, width])
        self.levels = _levels(height, width, int(max_downsample))
        self.heights = [height // 2**s for s in range(self.levels + 1)]
        self.widths = [width // 2**s for s in range(self.levels + 1)]
        self.coupled = c > 1 and isinstance(self.family, (LogisticMixture, GaussianMixture))
        k = getattr(self.family, "components", 1)
        self.num_coefficients = k * c * (c - 1) // 2 if self.coupled else 0
        nf, nr = int(filters), int(resnets)

        self.embedding = NoiseEmbedding(noise_features)
        self.noise_mlp = nn.Sequential(nn.Linear(self.embedding.num_features, nf), nn.SiLU())
        cin = c + 1  # the input gets a channel of ones so that padding is recognisable
        self.u_init = DownShiftedConv2d(cin, nf, (2, 3))
        self.ul_init_v = DownShiftedConv2d(cin, nf, (1, 3))
        self.ul_init_h = DownRightShiftedConv2d(cin, nf, (2, 1))

        def block(level: int, stream: str, skip: int) -> GatedResnet:
            conv = DownShiftedConv2d if stream == "u" else DownRightShiftedConv2d
            kernel = (2, 3) if stream == "u" else (2, 2)
            return GatedResnet(nf, conv, kernel, skip * nf, nf, dropout, level)

        self.up_u = nn.ModuleList()
        self.up_ul = nn.ModuleList()
        self.down_u = nn.ModuleList()
        self.down_ul = nn.ModuleList()
        for s in range(self.levels + 1):
            self.up_u.append(nn.ModuleList([block(s, "u", 0) for _ in range(nr)]))
            self.up_ul.append(nn.ModuleList([block(s, "ul", 1) for _ in range(nr)]))
            n_down = nr if s == self.levels else nr + 1
            self.down_u.append(nn.ModuleList([block(s, "u", 1) for _ in range(n_down)]))
            self.down_ul.append(nn.ModuleList([block(s, "ul", 2) for _ in range(n_down)]))
        self.downsize_u = nn.ModuleList(
            [DownShiftedConv2d(nf, nf, (2, 3), 2, s) for s in range(self.levels)]
        )
        self.downsize_ul = nn.ModuleList(
            [DownRightShiftedConv2d(nf, nf, (2, 2), 2, s) for s in range(self.levels)]
        )
        self.upsize_u = nn.ModuleList([DownShiftedDeconv2d(nf, nf) for _ in range(self.levels)])
        self.upsize_ul = nn.ModuleList(
            [DownRightShiftedDeconv2d(nf, nf) for _ in range(self.levels)]
        )
        self.num_outputs = c * self.family.num_params + self.num_coefficients
        self.nin_out = nn.Conv2d(nf, self.num_outputs, 1)
        self._config: dict[str, Any] = {
            "shape": [c, height, width],
            "filters": nf,
            "resnets": nr,
            **self.family.config(),
            "max_downsample": int(max_downsample),
            "dropout": float(dropout),
            "noise_features": int(noise_features),
        }

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``PixelCNNPP(**model.config)`` rebuilds it."""
        return dict(self._config)

    # ------------------------------------------------------------------ network
    def noise_features(self, sigma: Tensor) -> Tensor:
        """The ``h`` input of every gated block, shape ``(N, filters)``."""
        return self.noise_mlp(self.embedding(sigma))

    def network(self, x: Tensor, h: Tensor, ctx: BandContext | None = None) -> Tensor:
        """Raw per-pixel outputs ``(N, num_outputs, H, W)`` (the band's rows when ``ctx``).

        The output at pixel ``(r, w)`` depends on pixels strictly before it in raster order.
        """
        ones = torch.ones_like(x[:, :1])
        x_in = torch.cat([x, ones], dim=1)
        reuse = ctx is not None and ctx.reuse_u
        if ctx is not None and not reuse:
            ctx.u_values = []
        step = iter(ctx.u_values if reuse else ())  # type: ignore[union-attr]

        def vertical(fn: Callable[[], Tensor]) -> Tensor:
            # The u stream never sees the current row: reuse its band values when allowed.
            if reuse:
                return next(step)
            value = fn()
            if ctx is not None:
                ctx.u_values.append(value)
            return value

        def rows(t: Tensor, level: int) -> Tensor:
            # An up-sampled band has 2 rows per coarse row: keep the rows being evaluated.
            if ctx is None:
                return t
            a, b = ctx.rows(level)
            return t[:, :, : b - a]

        def left(t: Tensor, like: Tensor) -> Tensor:
            # The u stream is evaluated on all columns, the ul stream maybe on the first ones.
            return t[..., : like.shape[3]]

        u = vertical(lambda: down_shift(self.u_init(x_in, ctx), ctx, "u_init"))
        ul = down_shift(self.ul_init_v(x_in, ctx), ctx, "ul_init") + right_shift(
            self.ul_init_h(x_in, ctx)
        )
        if ctx is not None and ctx.cols is not None:
            ul = ul[..., : ctx.cols]
        us, uls = [u], [ul]
        for s in range(self.levels + 1):
            for bu, bul in zip(self.up_u[s], self.up_ul[s]):
                u = vertical(lambda bu=bu, u=u: bu(u, h, None, ctx))
                ul = bul(ul, h, left(u, ul), ctx)
                us.append(u)
                uls.append(ul)
            if s < self.levels:
                u = vertical(lambda s=s, u=u: self.downsize_u[s](u, ctx))
                ul = self.downsize_ul[s](ul, ctx)
                us.append(u)
                uls.append(ul)
        u, ul = us.pop(), uls.pop()
        for s in range(self.levels, -1, -1):
            for bu, bul in zip(self.down_u[s], self.down_ul[s]):
                skip = us.pop()
                u = vertical(lambda bu=bu, u=u, skip=skip: bu(u, h, skip, ctx))
                ul = bul(ul, h, torch.cat([left(u, ul), uls.pop()], dim=1), ctx)
            if s > 0:
                u = vertical(lambda s=s, u=u: rows(self.upsize_u[s - 1](u, ctx), s - 1))
                ul = rows(self.upsize_ul[s - 1](ul, ctx), s - 1)
        return self.nin_out(F.elu(ul))

    def pixel_params(self, out: Tensor, x: Tensor, channel: int | None = None) -> Tensor:
        """Family parameters from raw outputs, with the RGB coupling applied.

        Args:
            out: raw outputs ``(N, num_outputs, *spatial)`` (any trailing spatial dims).
            x: the data at the same positions, ``(N, C, *spatial)``.
            channel: return only this channel's parameters ``(N, *spatial, P)``.

        Returns:
            ``(N, C, *spatial, P)``, or ``(N, *spatial, P)`` for one channel.
        """
        c, p = self.event_shape[0], self.family.num_params
        n, spatial = out.shape[0], out.shape[2:]
        params = out[:, : c * p].reshape(n, c, p, *spatial).movedim(2, -1)
        if self.coupled:
            k = self.family.components  # type: ignore[attr-defined]
            coef = torch.tanh(out[:, c * p :].reshape(n, -1, k, *spatial).movedim(2, -1))
            shifts = [torch.zeros_like(params[:, 0, ..., :k])]
            j = 0
            for ch in range(1, c):
                shift = 0.0
                for prev in range(ch):
                    shift = shift + coef[:, j] * x[:, prev].unsqueeze(-1)
                    j += 1
                shifts.append(shift)  # type: ignore[arg-type]
            loc = params[..., k : 2 * k] + torch.stack(shifts, dim=1)
            params = torch.cat([params[..., :k], loc, params[..., 2 * k :]], dim=-1)
        return params if channel is None else params[:, channel]

    # ------------------------------------------------------------ conditioner API
    def conditional_params(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Family parameters ``(N, C, H, W, P)``; those of ``x[:, c, r, w]`` depend only on
        pixels before ``(r, w)`` in raster order and channels ``< c`` of pixel ``(r, w)``."""
        return self.pixel_params(self.network(x, self.noise_features(sigma)), x)

    def order(self) -> Tensor:
        """Flat indices (into the ``(C, H, W)`` event) in autoregressive order."""
        c, h, w = self.event_shape
        return torch.arange(c * h * w).reshape(c, h * w).t().reshape(-1)

    @torch.no_grad()
    def ancestral_sample(
        self, family: Any, sigma: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Exact ancestral draws ``(N, C, H, W)`` with the row-band cache (fast)."""
        return cached_ancestral_sample(self, family, sigma, generator)

    @torch.no_grad()
    def naive_ancestral_sample(
        self,
        family: Any,
        sigma: Tensor,
        generator: torch.Generator | None = None,
        max_rows: int | None = None,
    ) -> Tensor:
        """The same draws as :meth:`ancestral_sample` by full re-evaluation per dimension
        (``max_rows``: stop after that many rows, for timing)."""
        return naive_ancestral_sample(self, family, sigma, generator, max_rows)

    def extra_repr(self) -> str:
        return (
            f"shape={tuple(self.event_shape)}, levels={self.levels}, family={self.family!r}"
        )
