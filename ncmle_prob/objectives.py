"""The NCMLE objective: the noise-level prior, the loss, and bits/dim.

NCMLE maximises a family of likelihoods of Gaussian-perturbed data,

.. math::

    \\mathcal L(\\theta) = \\mathbb E_{\\sigma \\sim \\pi}\\, \\mathbb E_{x_0 \\sim q}\\,
    \\mathbb E_{\\varepsilon \\sim \\mathcal N(0, I)}
    \\big[\\log p_\\theta(x_0 + \\sigma \\varepsilon \\mid \\sigma)\\big].

Each term is a normalised log-likelihood, so no per-σ weighting is needed: the optimum is
:math:`p_\\theta(\\cdot\\mid\\sigma) = q_\\sigma` for every σ in the support of π. Plain maximum
likelihood is the special case :math:`\\pi = \\delta_0` (:meth:`NoiseLevelPrior.mle`).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from .distributions import NoiseConditionalDistribution
from .distributions.validation import check_finite

__all__ = [
    "NoiseLevelPrior",
    "bin_width",
    "bits_per_dim",
    "log_prob_to_bits",
    "ncmle_loss",
    "noised_nll",
]

_Kind = Literal["log_uniform", "uniform", "ladder"]


@dataclass(frozen=True)
class NoiseLevelPrior:
    """The noise-level prior :math:`\\pi(\\sigma)` of NCMLE.

    .. math::

        \\pi = p_0\\, \\delta_0 + (1 - p_0)\\, \\pi_c,

    where :math:`\\pi_c` is log-uniform on :math:`[\\sigma_\\min, \\sigma_\\max]` (default),
    uniform on it, or uniform over a fixed ``ladder`` of levels. The defaults suit data scaled
    to [-1, 1]: a fifth of each batch is clean (the σ = 0 likelihood is what bits/dim reports)
    and the rest spans two decades of noise, from sub-bin perturbations of 8-bit data up to
    noise as large as the data's range.

    Args:
        p_zero: probability of σ = 0 exactly.
        sigma_min: lower end of the continuous part.
        sigma_max: upper end of the continuous part.
        kind: ``"log_uniform"``, ``"uniform"`` or ``"ladder"``.
        ladder: the levels of ``kind="ladder"``.

    Example:
        >>> prior = NoiseLevelPrior()
        >>> s = prior.sample(1000, generator=torch.Generator().manual_seed(0))
        >>> bool((s == 0).float().mean().sub(0.2).abs() < 0.05), float(s.max()) <= 1.0
        (True, True)
        >>> NoiseLevelPrior.mle().sample(3)
        tensor([0., 0., 0.])
    """

    p_zero: float = 0.2
    sigma_min: float = 0.01
    sigma_max: float = 1.0
    kind: _Kind = "log_uniform"
    ladder: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("p_zero", "sigma_min", "sigma_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not isinstance(self.ladder, (tuple, list)) or any(
            isinstance(s, bool) or not isinstance(s, (int, float)) for s in self.ladder
        ):
            raise TypeError(f"ladder must be a tuple of numbers, got {self.ladder!r}")
        if not (isinstance(self.p_zero, (int, float)) and 0.0 <= self.p_zero <= 1.0):
            raise ValueError(f"p_zero must be in [0, 1], got {self.p_zero!r}")
        if self.kind not in ("log_uniform", "uniform", "ladder"):
            raise ValueError(
                f"kind must be 'log_uniform', 'uniform' or 'ladder', got {self.kind!r}"
            )
        if self.kind == "ladder":
            if not self.ladder and self.p_zero < 1.0:
                raise ValueError("kind='ladder' needs a non-empty ladder of noise levels")
            if any(not math.isfinite(s) or s < 0 for s in self.ladder):
                raise ValueError(f"ladder levels must be finite and >= 0, got {self.ladder!r}")
        elif self.p_zero < 1.0:
            lo, hi = self.sigma_min, self.sigma_max
            if not (math.isfinite(lo) and math.isfinite(hi)) or not 0 < lo <= hi:
                raise ValueError(
                    f"need 0 < sigma_min <= sigma_max (finite), got sigma_min={lo!r}, "
                    f"sigma_max={hi!r}"
                )

    @classmethod
    def mle(cls) -> NoiseLevelPrior:
        """:math:`\\pi = \\delta_0`: plain maximum likelihood of clean data."""
        return cls(p_zero=1.0)

    @classmethod
    def fixed(cls, sigma: float) -> NoiseLevelPrior:
        """All mass at one noise level ``sigma``."""
        if sigma == 0:
            return cls.mle()
        return cls(p_zero=0.0, kind="ladder", ladder=(float(sigma),))

    @classmethod
    def from_ladder(cls, sigmas: list[float] | tuple[float, ...], p_zero: float = 0.0) -> (
        NoiseLevelPrior
    ):
        """Uniform over a fixed ladder of levels, plus ``p_zero`` at σ = 0."""
        return cls(p_zero=p_zero, kind="ladder", ladder=tuple(float(s) for s in sigmas))

    def sample(
        self,
        num: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draws ``num`` noise levels, shape ``(num,)``."""
        try:
            ok = operator.index(num) >= 0  # ints, numpy and 0-d integer tensors
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"num must be an integer >= 0, got {num!r}")
        u = torch.rand(num, dtype=dtype, device=device, generator=generator)
        v = torch.rand(num, dtype=dtype, device=device, generator=generator)
        if self.p_zero >= 1.0:  # the continuous part is unused (and unchecked): all clean
            return torch.zeros_like(u)
        if self.kind == "ladder" and self.ladder:
            levels = torch.tensor(self.ladder, dtype=dtype, device=device)
            cont = levels[(v * len(self.ladder)).long().clamp(max=len(self.ladder) - 1)]
        elif self.kind == "uniform":
            cont = self.sigma_min + (self.sigma_max - self.sigma_min) * v
        elif self.kind == "log_uniform":
            lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
            cont = torch.exp(lo + (hi - lo) * v)
        else:
            cont = torch.zeros_like(v)
        return torch.where(u < self.p_zero, torch.zeros_like(cont), cont)


def _as_distribution(model_or_dist: nn.Module | NoiseConditionalDistribution) -> (
    NoiseConditionalDistribution
):
    if isinstance(model_or_dist, NoiseConditionalDistribution):
        return model_or_dist
    if isinstance(model_or_dist, nn.Module):
        dist = model_or_dist()
        if isinstance(dist, NoiseConditionalDistribution):
            return dist
    raise TypeError(
        "model_or_dist must be a NoiseConditionalDistribution or a module whose call returns "
        f"one, got {type(model_or_dist).__name__}"
    )


def bin_width(bins: int) -> float:
    """Width :math:`\\Delta = 2/(\\text{bins}-1)` of one bin of the grid of ``bins`` levels on
    [-1, 1] (DESIGN.md §1); the one place the training code computes it.

    Raises:
        ValueError: ``bins`` is not an integer >= 2.

    Example:
        >>> bin_width(256) == 2 / 255, bin_width(17)
        (True, 0.125)
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, float)) or int(bins) != bins or (
        bins < 2
    ):
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    return 2.0 / (int(bins) - 1)


def log_prob_to_bits(
    log_prob: Tensor, *, dims: int, is_mass: Tensor | bool, bins: int | None
) -> Tensor:
    """Converts log-likelihoods (nats per example) to bits/dim, the convention of
    :func:`bits_per_dim`.

    .. math::

        \\text{bits/dim} = -\\frac{\\log P(x)}{D \\log 2}, \\qquad
        \\log P(x) = \\begin{cases} \\log p(x) & \\text{a log mass} \\\\
        \\log p(x) + D \\log \\Delta & \\text{a log density, bin width } \\Delta \\\\
        \\log p(x) & \\text{a log density, continuous data} \\end{cases}

    Args:
        log_prob: per-example ``log p(x | σ)``.
        dims: number of dimensions ``D`` of one example.
        is_mass: where ``log_prob`` is a log mass (``dist.is_mass(sigma)``), broadcastable
            against ``log_prob``.
        bins: grid levels of the data (bin width :func:`bin_width`), ``None`` for continuous
            data.

    Example:
        >>> lp = torch.tensor([-10.0, -10.0])
        >>> log_prob_to_bits(lp, dims=1, is_mass=torch.tensor([True, False]), bins=5)
        tensor([14.4270, 15.4270])
    """
    if bins is not None:
        in_bins = log_prob + dims * math.log(bin_width(bins))
        log_prob = torch.where(torch.as_tensor(is_mass, device=log_prob.device), log_prob,
                               in_bins)
    return -log_prob / (dims * math.log(2.0))


def noised_nll(
    model_or_dist: nn.Module | NoiseConditionalDistribution,
    x0: Tensor,
    sigma: Tensor,
    noise: Tensor | None,
    *,
    bins: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The NCMLE loss of a batch for *given* draws, and its bits/dim: the training fast path.

    Returns :math:`-\\frac1N \\sum_n \\log p_\\theta(x_{0,n} + \\sigma_n \\varepsilon_n
    \\mid \\sigma_n)` (nats per example, differentiable) and the mean bits/dim of the same
    log-likelihoods (:func:`log_prob_to_bits`, detached), from **one** network pass.

    σ is checked once, where it is bound (``model(sigma)``); the data are not re-checked
    (``validate_args=False``: no NaN or grid scan, no extra CPU–GPU synchronisation). It is
    meant for draws of a :class:`NoiseLevelPrior`, which are valid by construction, and data
    checked once before training; :func:`ncmle_loss` is the validated entry point.

    Args:
        model_or_dist: a model (called as ``model(sigma, validate_args=False)``) or a
            noise-conditional distribution (bound with ``at(sigma)``).
        x0: clean data ``(N, *event_shape)``.
        sigma: noise levels ``(N,)``, non-negative.
        noise: standard normal noise shaped like ``x0``, or ``None`` (no noise: every σ is 0).
        bins: grid levels for the bits/dim (default: the distribution's ``bins``).

    Example:
        >>> from ncmle_prob.models import MADE
        >>> _ = torch.manual_seed(0)
        >>> model = MADE(features=2, hidden_features=8)
        >>> loss, bpd = noised_nll(model, torch.zeros(4, 2), torch.full((4,), 0.5),
        ...                        torch.randn(4, 2))
        >>> loss.requires_grad, bpd.requires_grad, bpd.shape
        (True, False, torch.Size([]))
    """
    k = x0.dim() - 1
    x = x0 if noise is None else x0 + sigma.reshape(sigma.shape + (1,) * k) * noise
    if isinstance(model_or_dist, NoiseConditionalDistribution):
        dist = model_or_dist.at(sigma)
    else:
        dist = model_or_dist(sigma, validate_args=False)
        if not isinstance(dist, NoiseConditionalDistribution):
            raise TypeError(
                "model_or_dist must be a NoiseConditionalDistribution or a module whose call "
                f"returns one, got {type(model_or_dist).__name__}"
            )
    lp = dist.log_prob(x)
    with torch.no_grad():
        bits = log_prob_to_bits(
            lp.detach().float(), dims=math.prod(x0.shape[1:]), is_mass=dist.is_mass(),
            bins=bins if bins is not None else dist.bins,
        )
    return -lp.mean(), bits.mean()


def ncmle_loss(
    model_or_dist: nn.Module | NoiseConditionalDistribution,
    x0: Tensor,
    prior: NoiseLevelPrior | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean negative log-likelihood (nats per example) of a freshly noised batch.

    Draws one :math:`\\sigma_n \\sim \\pi` and one :math:`\\varepsilon_n \\sim \\mathcal N(0,
    I)` per example and returns :math:`-\\frac1N \\sum_n \\log p_\\theta(x_{0,n} + \\sigma_n
    \\varepsilon_n \\mid \\sigma_n)`, an unbiased estimate of the negated NCMLE objective.

    Args:
        model_or_dist: a model (called with no argument to get its distribution) or a
            noise-conditional distribution.
        x0: clean data, shape ``(N, *event_shape)``.
        prior: noise-level prior (default :class:`NoiseLevelPrior()`);
            ``NoiseLevelPrior.mle()`` gives plain maximum likelihood.
        generator: optional generator for the noise levels and the noise.

    Example:
        >>> from ncmle_prob.models import MADE
        >>> _ = torch.manual_seed(0)
        >>> model = MADE(features=2, hidden_features=16)
        >>> loss = ncmle_loss(model, torch.randn(8, 2))
        >>> loss.backward()
    """
    dist = _as_distribution(model_or_dist)
    prior = NoiseLevelPrior() if prior is None else prior
    if not isinstance(prior, NoiseLevelPrior):
        raise TypeError(f"prior must be a NoiseLevelPrior, got {type(prior).__name__}")
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"x0 must be a torch.Tensor, got {type(x0).__name__}")
    k = len(dist.event_shape)
    if x0.dim() < k + 1:
        raise ValueError(
            f"x0 must have shape (N, *event_shape) = (N, {', '.join(map(str, dist.event_shape))})"
            f", got {tuple(x0.shape)}"
        )
    check_finite("x0", x0)
    batch = x0.shape[: x0.dim() - k]
    sigma = prior.sample(
        math.prod(batch), dtype=x0.dtype, device=x0.device, generator=generator
    ).reshape(batch)
    noise = torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, generator=generator)
    x = x0 + sigma.reshape(batch + (1,) * k) * noise
    return -dist.log_prob(x, sigma).mean()


def bits_per_dim(
    dist: NoiseConditionalDistribution,
    x: Tensor,
    sigma: float | Tensor | None = None,
    *,
    bins: int | None = None,
) -> Tensor:
    """Bits per dimension of ``x`` under ``dist`` at noise level ``sigma``, per example.

    Conventions (DESIGN.md §1):

    * where ``log_prob`` is a log *mass* (a discretized family at σ = 0 on grid data) the
      result is :math:`-\\log_2 P(x) / D`, directly comparable with PixelCNN++'s bits/dim;
    * where it is a log *density* and the data have a bin width
      :math:`\\Delta = 2/(\\text{bins}-1)` (``bins`` from the argument or the distribution),
      the density is converted to the mass of a bin, :math:`P \\approx p\\,\\Delta^D`:
      :math:`-(\\log p(x) + D\\log\\Delta) / (D \\log 2)`. This keeps bits/dim non-negative in
      practice and comparable across σ (a noisy image's density is compared on the same
      8-bit scale as a clean one);
    * with no bin width (continuous data) it is :math:`-\\log_2 p(x) / D`, which can be
      negative for a peaked density.

    Args:
        dist: a noise-conditional distribution.
        x: data of shape ``(..., *event_shape)``.
        sigma: noise level(s); ``None`` uses the bound σ.
        bins: number of grid levels on [-1, 1] for the Δ conversion.

    Example:
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> d = NoisyGaussian(torch.zeros(1), torch.eye(1))
        >>> float(bits_per_dim(d, torch.zeros(1)))  # -log2 N(0; 0, 1)
        1.32574...
    """
    bins = bins if bins is not None else dist.bins
    if bins is not None:
        bin_width(bins)  # checks bins before any network pass
    bound = dist if sigma is None else dist.at(sigma)  # σ checked once, where it is bound
    lp = bound.log_prob(x)
    return log_prob_to_bits(lp, dims=math.prod(dist.event_shape), is_mass=bound.is_mass(),
                            bins=bins)
