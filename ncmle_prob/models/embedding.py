"""The noise-level embedding shared by every noise-conditional network."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["NoiseEmbedding"]


class NoiseEmbedding(nn.Module):
    """A fixed, smooth embedding of the noise level σ ≥ 0.

    σ enters through a softened log scale that is smooth in σ, equals :math:`\\log\\sigma` for
    :math:`\\sigma \\gg \\sigma_\\text{floor}` and is well defined at σ = 0:

    .. math::

        u(\\sigma) = \\tfrac12 \\log(\\sigma^2 + \\sigma_\\text{floor}^2), \\qquad
        t = 2\\,\\frac{u - \\log\\sigma_\\text{floor}}{\\log\\sigma_\\text{max} -
        \\log\\sigma_\\text{floor}} - 1,

    and the features are :math:`[t, \\sin(\\pi k t), \\cos(\\pi k t)]_{k=1..K}`. There are no
    trainable parameters: the network's first layer learns what to do with the features.

    Args:
        num_features: output size ``1 + 2K`` (rounded up to odd).
        sigma_floor: noise level below which σ is indistinguishable from 0.
        sigma_max: noise level mapped to :math:`t = 1` (larger σ extrapolate smoothly).

    Example:
        >>> emb = NoiseEmbedding(9)
        >>> emb(torch.tensor([0.0, 1e-6, 0.5])).shape
        torch.Size([3, 9])
    """

    def __init__(
        self, num_features: int = 17, sigma_floor: float = 1e-3, sigma_max: float = 10.0
    ) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        if not 0 < sigma_floor < sigma_max:
            raise ValueError(
                f"need 0 < sigma_floor < sigma_max, got sigma_floor={sigma_floor}, "
                f"sigma_max={sigma_max}"
            )
        self.num_frequencies = num_features // 2
        self.num_features = 1 + 2 * self.num_frequencies
        self.sigma_floor = float(sigma_floor)
        self.sigma_max = float(sigma_max)
        freqs = math.pi * torch.arange(1, self.num_frequencies + 1, dtype=torch.float64)
        self.register_buffer("frequencies", freqs.float(), persistent=False)
        # [t, πk t] = a log(σ² + floor²) + c, with the affine constants folded per feature
        # (computed in float64): one fused multiply-add instead of five small ops per call.
        lo, hi = math.log(self.sigma_floor), math.log(self.sigma_max)
        a, c = 1.0 / (hi - lo), -2.0 * lo / (hi - lo) - 1.0
        ones = torch.ones(1, dtype=torch.float64)
        self.register_buffer("_scale", (a * torch.cat([ones, freqs])).float(), persistent=False)
        self.register_buffer("_shift", (c * torch.cat([ones, freqs])).float(), persistent=False)

    def forward(self, sigma: Tensor) -> Tensor:
        """Maps σ of shape ``(N,)`` to features of shape ``(N, num_features)``.

        One σ broadcast over the batch (a stride-0 ``(N,)`` tensor, as ``model(0.5)`` binds
        it) is embedded once and expanded. The angles are computed as their own contiguous
        ``(N, K)`` tensor (not a column slice of ``[t, angles]``): ``sin``/``cos`` then run one
        dense loop instead of N loops of K, about 4x faster at K = 8, with equal values.
        """
        if sigma.dim() == 1 and sigma.shape[0] > 1 and sigma.stride(0) == 0:
            return self.forward(sigma[:1]).expand(sigma.shape[0], -1)
        log_var = torch.log(sigma * sigma + self.sigma_floor**2).unsqueeze(-1)
        # [t, angles] = a log(σ² + floor²) + c, one fused multiply-add for each part.
        t = torch.addcmul(self._shift[:1], log_var, self._scale[:1])
        angles = torch.addcmul(self._shift[1:], log_var, self._scale[1:])
        return torch.cat([t, torch.sin(angles), torch.cos(angles)], dim=-1)

    def extra_repr(self) -> str:
        return (
            f"num_features={self.num_features}, sigma_floor={self.sigma_floor}, "
            f"sigma_max={self.sigma_max}"
        )
