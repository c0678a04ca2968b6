"""Ancestral sampling: exact draws from an autoregressive density, one dimension at a time.

.. math::

    x_1 \\sim p(x_1 \\mid \\sigma),\\quad x_2 \\sim p(x_2 \\mid x_1, \\sigma),\\quad \\dots,\\quad
    x_D \\sim p(x_D \\mid x_{<D}, \\sigma).

The draw is exact for the model: ``log_prob`` of the result is the density the samples
follow. It costs D sequential network calls (each batched over all samples), and because every
conditional sees inputs produced by the model itself, errors of the model compound along the
order (covariate shift); :mod:`~ncmle_prob.samplers.score_corrected` repairs that with the
exact score. For the oracles the draw is a closed-form Gaussian (mixture) sample.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from .engine import at_level
from .info import SampleInfo
from .option_types import option
from .protocol import Sampler
from .registry import register
from .tweedie import snap_to_grid

__all__ = ["Ancestral"]


@register("ancestral")
class Ancestral(Sampler):
    """Exact ancestral draws of ``dist`` at noise level ``sigma`` (default: its bound σ).

    With ``denoise=True`` the draws at σ > 0 are followed by a Tweedie step
    :math:`x + \\sigma^2\\nabla_x\\log p(x\\mid\\sigma)` (an estimate of the clean data).
    Ancestral sampling runs inside ``dist.sample``; a progress bar, if asked for, has one step.

    Args:
        sigma: noise level of the draw; ``None`` uses the distribution's bound σ (which may be
            a tensor over the batch).
        denoise: take a final Tweedie step (only where σ > 0).
        snap: round to a discretized family's grid after ``denoise`` (only if the
            distribution is discretized).

    Example:
        >>> from ncmle_prob import samplers
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> d = NoisyGaussian(torch.zeros(2), torch.eye(2))
        >>> g = torch.Generator().manual_seed(0)
        >>> samplers.sample(d, 4, "ancestral", sigma=0.5, generator=g).shape
        torch.Size([4, 2])
    """

    sigma: float | None = option(None, "noise level of the draw (default: the bound sigma)")
    denoise: bool = option(False, "finish with a Tweedie step E[x0 | x] (sigma > 0)")
    snap: bool = option(True, "round to the grid after denoise (discretized families)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sigma is not None and not self.sigma >= 0:
            raise ValueError(f"option 'sigma' must be >= 0, got {self.sigma!r}")

    def run(
        self,
        dist: NoiseConditionalDistribution,
        num_samples: int,
        *,
        generator: torch.Generator | None,
        progress: bool,
    ) -> tuple[Tensor, SampleInfo]:
        from tqdm.auto import tqdm

        target = dist if self.sigma is None else at_level(dist, self.sigma)
        with tqdm(total=1, desc=self.name, disable=not progress, leave=False) as bar:
            x = target.sample((num_samples,), generator=generator)
            bar.update(1)
        info = SampleInfo(self.name)
        if self.sigma is not None:
            info.start_sigma = float(self.sigma)
        elif target.sigma.numel() == 1 or bool((target.sigma == target.sigma.flatten()[0]).all()):
            info.start_sigma = float(target.sigma.flatten()[0])
        if self.denoise:
            sig = target.sigma
            if bool((sig > 0).all()):
                with torch.no_grad():
                    x = target.denoise(x).detach()
                info.denoised_at = info.start_sigma
                info.score_evals = 1
                if self.snap and dist.discrete_at_zero and dist.bins is not None:
                    x = snap_to_grid(x, dist.bins)
                    info.snapped = True
            elif bool((sig > 0).any()):
                raise ValueError(
                    "option 'denoise' needs sigma > 0 everywhere, but the distribution is bound "
                    "to a sigma with zeros; pass sigma= explicitly"
                )
        return x, info

