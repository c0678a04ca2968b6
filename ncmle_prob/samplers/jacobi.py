r"""Exact parallel ancestral sampling: the ancestral draw as a fixed point (Jacobi iteration).

Ancestral sampling draws :math:`x_i = g_i(x_{<i}, u_i)` one dimension after another, where
:math:`u_i` is the randomness of dimension :math:`i` (for a mixture: the Gumbel-max uniforms
of the component and one standard draw) and :math:`g_i` the family's deterministic transform
with the parameters the network computes from :math:`x_{<i}` and σ. With all the noise
:math:`u` drawn up front, exactly as ancestral sampling consumes the generator
(:meth:`~ncmle_prob.distributions.NoiseConditionalAutoregressive.ancestral_noise`), the
ancestral draw is the unique fixed point of

.. math::

    x \mapsto g(x, u), \qquad g(x, u)_i = g_i(x_{<i}, u_i),

which one network pass evaluates for all dimensions at once
(:meth:`~ncmle_prob.distributions.NoiseConditionalAutoregressive.ancestral_map`). **Jacobi**
iteration :math:`x^{(t+1)} = g(x^{(t)}, u)` from :math:`x^{(0)} = 0` fixes at least one more
dimension per pass, so it reaches the ancestral draw in at most D passes, and usually far
fewer where a dimension depends weakly on the ones before it (Song et al., ICML 2021).

The iteration tracks the converged prefix exactly: if the first dimension (in the
autoregressive order) whose value changed in a pass is the :math:`j`-th not yet final, the
:math:`j` before it and it itself are final (their inputs did not change), and the next pass
skips them in its test; it stops when a pass changes nothing (``tol`` = 0) or the prefix
covers every dimension. With ``block_size`` = b it is **Gauss–Seidel–Jacobi**: blocks of b
dimensions in order, each solved by Jacobi passes (at most b each) before the next, a
trade between passes and work per pass. Same seed, same draws as ``ancestral`` (up to float
rounding of the two network evaluations); :class:`~ncmle_prob.samplers.SampleInfo` reports
the passes in ``iterations``.

References:
    Y. Song, C. Meng, R. Liao and S. Ermon. Accelerating Feedforward Computation via Parallel
    Nonlinear Equation Solving. ICML 2021.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..distributions import NoiseConditionalAutoregressive, NoiseConditionalDistribution
from .engine import at_level
from .info import SampleInfo
from .option_types import option
from .protocol import Sampler
from .registry import register

__all__ = ["Jacobi", "fixed_point_draw"]


def fixed_point_draw(
    dist: NoiseConditionalAutoregressive,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    block_size: int | None = None,
    tol: float = 0.0,
) -> tuple[Tensor, int]:
    """``(draws, passes)``: the ancestral draws of ``dist`` by (Gauss–Seidel–)Jacobi
    fixed-point iteration (see the module docstring).

    Example:
        >>> from ncmle_prob.models import MADE
        >>> _ = torch.manual_seed(0)
        >>> d = MADE(5, hidden_features=16, family="logistic_mixture", components=3)()
        >>> x, passes = fixed_point_draw(d, 8, generator=torch.Generator().manual_seed(2))
        >>> y = d.sample((8,), torch.Generator().manual_seed(2))
        >>> bool((x - y).abs().max() < 1e-5), passes <= 5
        (True, True)
    """
    with torch.no_grad():
        u = dist.ancestral_noise((num_samples,), generator)
        shape = torch.Size((num_samples, *dist.batch_shape))
        n, d = math.prod(shape), dist.num_dims
        x = torch.zeros((*shape, *dist.event_shape), dtype=dist.dtype, device=dist.device)
        flat = x.view(n, d)
        order = dist.ancestral_order().to(dist.device)
        size = d if block_size is None else block_size
        passes = 0
        for b0 in range(0, d, size):
            block = order[b0 : b0 + size]
            done = 0  # block[:done] are final
            while done < block.numel():
                new = dist.ancestral_map(x, u).view(n, d)
                passes += 1
                cols = block[done:]
                change = (new[:, cols] - flat[:, cols]).abs().amax(dim=0)
                flat[:, cols] = new[:, cols]
                moved = torch.nonzero(change > tol)
                if moved.numel() == 0:
                    break
                done += int(moved[0, 0]) + 1
    return x, passes


@register("jacobi")
class Jacobi(Sampler):
    """Ancestral draws by parallel fixed-point iteration: the draws of ``ancestral`` with the
    same seed, in at most D (usually far fewer) network passes over all dimensions.

    Needs an autoregressive model (MADE, PixelCNN++ or any
    :class:`~ncmle_prob.distributions.NoiseConditionalAutoregressive`) whose family splits
    its draw into noise and a transform (every built-in family, continuous and discretized,
    at any σ).

    Args:
        sigma: noise level of the draw; ``None`` uses the distribution's bound σ.
        block_size: Gauss–Seidel–Jacobi blocks of this many dimensions in the autoregressive
            order; ``None``: plain Jacobi on all D dimensions.
        tol: a pass that changes no value by more than ``tol`` ends the iteration (0: exact
            fixed point; a positive value trades exactness for passes).

    Example:
        >>> from ncmle_prob import samplers
        >>> from ncmle_prob.models import PixelCNNPP
        >>> _ = torch.manual_seed(0)
        >>> d = PixelCNNPP((1, 4, 4), filters=4, resnets=1, bins=5, components=2)()
        >>> x, info = samplers.sample(d, 3, "jacobi", return_info=True,
        ...                           generator=torch.Generator().manual_seed(0))
        >>> y = samplers.sample(d, 3, "ancestral", generator=torch.Generator().manual_seed(0))
        >>> bool(torch.equal(x, y)), 1 <= info.iterations <= 16
        (True, True)
    """

    sigma: float | None = option(None, "noise level of the draw (default: the bound sigma)")
    block_size: int | None = option(
        None, "Gauss-Seidel-Jacobi: blocks of this many dimensions solved in turn "
        "(default: Jacobi on all dimensions at once)")
    tol: float = option(0.0, "stop when a pass changes no value by more than tol (0: exact)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"option 'sigma' must be finite and >= 0, got {self.sigma!r}")
        if self.block_size is not None and self.block_size < 1:
            raise ValueError(f"option 'block_size' must be >= 1 or None, got {self.block_size!r}")
        if not (math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"option 'tol' must be finite and >= 0, got {self.tol!r}")

    def run(
        self,
        dist: NoiseConditionalDistribution,
        num_samples: int,
        *,
        generator: torch.Generator | None,
        progress: bool,
    ) -> tuple[Tensor, SampleInfo]:
        if not isinstance(dist, NoiseConditionalAutoregressive):
            raise ValueError(
                f"sampler 'jacobi' needs an autoregressive distribution "
                f"(NoiseConditionalAutoregressive, e.g. a MADE or PixelCNN++ model), got "
                f"{type(dist).__name__}; use 'ancestral'")
        target = dist if self.sigma is None else at_level(dist, self.sigma)
        x, passes = fixed_point_draw(target, num_samples, generator=generator,
                                     block_size=self.block_size, tol=self.tol)
        info = SampleInfo(self.name, iterations=passes)
        if self.sigma is not None:
            info.start_sigma = float(self.sigma)
        return x, info
