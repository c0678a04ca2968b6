r"""Per-dimension conditional families of autoregressive models.

A family turns the raw network output for one dimension, a vector of ``num_params`` numbers,
into a one-dimensional density :math:`p(x_i \mid x_{<i}, \sigma)`. Families are plain
objects (no parameters of their own), chosen by name in the models through :func:`get_family`.

References:
    Autoregressive Generative Modeling with Noise Conditional Maximum Likelihood Estimation
    (the seed paper: the same conditionals, with σ as an extra input of the network).

    M. Germain, K. Gregor, I. Murray and H. Larochelle. MADE: Masked Autoencoder for
    Distribution Estimation. ICML 2015 (one network pass gives every conditional's
    parameters).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch
from torch import Tensor

from ..._registry import NamedRegistry
from ..validation import check_positive_int

__all__ = [
    "ConditionalFamily",
    "check_int",
    "family_names",
    "get_family",
    "register_family",
]

#: Log-scale clamp of every family (PixelCNN++'s lower bound; the upper keeps exp finite).
LOG_SCALE_MIN = -7.0
LOG_SCALE_MAX = 7.0

def _check_family(name: str, cls: object) -> object:
    if not (isinstance(cls, type) and issubclass(cls, ConditionalFamily)):
        raise TypeError(f"family {name!r} must be a ConditionalFamily subclass, got {cls!r}")
    return cls


#: The families, by name (kind ``"family"`` of :mod:`ncmle_prob._registry`).
FAMILIES = NamedRegistry("family", _check_family)


class ConditionalFamily(abc.ABC):
    """A parametric family of 1-D conditionals.

    ``params`` has shape ``(..., num_params)`` and ``x``/``sigma`` broadcast against
    ``params.shape[:-1]``; :meth:`log_prob` returns the elementwise log density (or log mass
    where :attr:`discrete_at_zero` and σ = 0).
    """

    name: ClassVar[str]
    #: Whether the family is a log mass on a grid at σ = 0.
    discrete_at_zero: ClassVar[bool] = False
    bins: int | None = None

    @property
    @abc.abstractmethod
    def num_params(self) -> int:
        """Number of raw network outputs per dimension."""

    @property
    def location_params(self) -> slice:
        """Indices (into the last dim of ``params``) of the location parameters.

        Models with a direct linear autoregressive connection (``MADE(linear_skip=True)``)
        add it to these entries: a shift of every component's location by the same linear
        function of :math:`x_{<i}`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not declare location_params")

    @abc.abstractmethod
    def log_prob(self, params: Tensor, x: Tensor, sigma: Tensor) -> Tensor:
        """Elementwise log density of ``x`` under the conditionals given by ``params``."""

    def sample(
        self, params: Tensor, sigma: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """One draw per conditional, shape ``params.shape[:-1]``:
        ``transform(params, draw_noise(params.shape[:-1], params, generator), sigma)``.

        A family that cannot split its draw into noise and a transform overrides this (it
        then works everywhere except the ``jacobi`` sampler).
        """
        return self.transform(params, self.draw_noise(params.shape[:-1], params, generator),
                              sigma)

    @property
    def noise_size(self) -> int:
        """Random numbers per draw (the last dim of :meth:`draw_noise`)."""
        raise NotImplementedError(
            f"family {type(self).__name__} does not split its draw into noise and a transform "
            f"(noise_size, draw_noise, transform), which the jacobi sampler needs")

    def draw_noise(
        self, shape: torch.Size, like: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""The randomness of :meth:`sample` for draws of ``shape``: a tensor
        ``(*shape, noise_size)`` with ``like``'s dtype and device, consuming ``generator``
        exactly as :meth:`sample` does. The draw is then the deterministic
        :math:`x = g(\theta, u, \sigma)` of :meth:`transform` (what makes the fixed-point
        ``jacobi`` sampler reproduce ancestral draws)."""
        raise NotImplementedError(self.noise_size)

    def transform(self, params: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
        """The draw from its noise: shape ``params.shape[:-1]``; deterministic."""
        raise NotImplementedError(self.noise_size)

    def config(self) -> dict[str, object]:
        """A JSON-able description from which :func:`get_family` rebuilds the family."""
        return {"family": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "family")
        return f"{type(self).__name__}({args})"


def check_int(name: str, value: object, minimum: int) -> int:
    """Returns ``value`` as an ``int``; :class:`ValueError` naming ``name`` unless it is an
    integral number ``>= minimum``.

    Kept for the callers outside this package; new code uses
    :func:`ncmle_prob.distributions.validation.check_positive_int`, which this calls.
    """
    return check_positive_int(name, value, minimum=minimum)


class MixtureFamily(ConditionalFamily):
    r"""A mixture of ``components`` location-scale densities,
    :math:`p(x_i) = \sum_k \pi_k\, s_k^{-1} f\big((x_i - \mu_k)/s_k\big)`.

    ``params = (logits[K], mu[K], log s[K])``, ``log s`` clamped to [-7, 7]. Subclasses give
    the standard density :math:`f` (:meth:`_component_log_pdf`) and a standard draw
    (:meth:`_standard_draw`).
    """

    def __init__(self, components: int = 5) -> None:
        self.components = check_positive_int("components", components)

    @property
    def num_params(self) -> int:
        return 3 * self.components

    @property
    def location_params(self) -> slice:
        return slice(self.components, 2 * self.components)

    def config(self) -> dict[str, object]:
        return {"family": self.name, "components": self.components}

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log weights, locations, clamped log scales), each ``(..., K)``."""
        logits, loc, log_scale = params.split(self.components, dim=-1)
        return torch.log_softmax(logits, -1), loc, log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)

    @abc.abstractmethod
    def _component_log_pdf(self, x: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
        """Elementwise log density of the components at ``x``."""

    @abc.abstractmethod
    def _standard_draw(
        self, shape: torch.Size, like: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        """Draws of the standard (location 0, scale 1) component law."""

    def log_prob(self, params: Tensor, x: Tensor, sigma: Tensor) -> Tensor:
        log_w, loc, log_scale = self._split(params)
        comp = self._component_log_pdf(x.unsqueeze(-1), loc, log_scale)
        return torch.logsumexp(log_w + comp, dim=-1)

    @property
    def noise_size(self) -> int:
        """K Gumbel perturbations :math:`-\\log(-\\log u)` (the Gumbel-max choice of the
        component, from K uniforms) and one standard draw."""
        return self.components + 1

    def draw_noise(
        self, shape: torch.Size, like: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        shape = torch.Size(shape)
        u = uniform(shape + (self.components,), like, generator, torch.finfo(like.dtype).tiny)
        z = self._standard_draw(shape, like, generator)
        # The Gumbel perturbations -log(-log u) are stored instead of u: the jacobi sampler
        # applies the transform once per pass to the same noise, and the logs are then taken
        # once (log_w + g equals the former log_w - log(-log u) bit for bit).
        return torch.cat([torch.log(-torch.log(u)).neg_(), z.unsqueeze(-1)], dim=-1)

    def transform(self, params: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
        r"""Component :math:`k = \arg\max_j (\log\pi_j + g_j)` with the Gumbel noise
        :math:`g_j = -\log(-\log u_j)` of :meth:`draw_noise` (Gumbel-max), then
        :math:`\mu_k + s_k z`."""
        log_w, loc, log_scale = self._split(params)
        g, z = noise[..., : self.components], noise[..., self.components]
        k = torch.argmax(log_w + g, dim=-1).unsqueeze(-1)
        mu = loc.gather(-1, k).squeeze(-1)
        s = torch.exp(log_scale.gather(-1, k).squeeze(-1))
        return mu + s * z


def register_family(cls: type[ConditionalFamily]) -> type[ConditionalFamily]:
    """Class decorator adding a family to the by-name registry under its ``name``.

    Raises:
        ValueError: the name is taken or not an identifier.
        TypeError: ``cls`` is not a :class:`ConditionalFamily` subclass.
    """
    return FAMILIES.add(getattr(cls, "name", None), cls)  # type: ignore[arg-type]


def family_names() -> list[str]:
    """Names accepted by :func:`get_family`."""
    return FAMILIES.names()


def get_family(
    family: str | ConditionalFamily, *, components: int | None = None, bins: int | None = None
) -> ConditionalFamily:
    """Builds a family from its name (or returns a family instance unchanged).

    Args:
        family: one of :func:`family_names`.
        components: number of mixture components (mixture families only).
        bins: number of grid levels on [-1, 1] (``"discretized_logistic_mixture"`` only).

    Raises:
        ValueError: unknown name, or an option the family does not take.

    Example:
        >>> get_family("logistic_mixture", components=3)
        LogisticMixture(components=3)
    """
    if isinstance(family, ConditionalFamily):
        return family
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {family_names()}, got {family!r}")
    kwargs: dict[str, int] = {}
    if components is not None:
        kwargs["components"] = components
    if bins is not None:
        kwargs["bins"] = bins
    try:
        return FAMILIES.get(family)(**kwargs)
    except TypeError:
        raise ValueError(
            f"family {family!r} does not take the options {sorted(kwargs)}"
        ) from None


def uniform(
    shape: torch.Size, like: Tensor, generator: torch.Generator | None, eps: float
) -> Tensor:
    """Uniform draws on ``(eps, 1 - eps)`` with ``like``'s dtype and device."""
    u = torch.rand(shape, dtype=like.dtype, device=like.device, generator=generator)
    return u.clamp(eps, 1.0 - eps)


def pick_component(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    """Draws a component index per row of ``logits`` (Gumbel-max), shape ``logits.shape[:-1]``."""
    u = uniform(logits.shape, logits, generator, torch.finfo(logits.dtype).tiny)
    return torch.argmax(logits - torch.log(-torch.log(u)), dim=-1)
