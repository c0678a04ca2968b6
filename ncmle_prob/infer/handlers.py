"""``noise_level``: a Pyro effect handler that rebinds σ of every noise-conditional site."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch
from pyro.distributions import Independent, MaskedDistribution
from pyro.distributions.torch_distribution import ExpandedDistribution
from pyro.poutine.messenger import Messenger
from torch import Tensor

from ..distributions.base import NoiseConditionalDistribution
from ..distributions.validation import as_sigma

__all__ = ["noise_level", "rebind_sigma"]


def rebind_sigma(fn: Any, sigma: float | Tensor) -> Any:
    """Returns ``fn`` with every noise-conditional distribution inside bound to ``sigma``.

    Looks through Pyro's ``Independent`` (``.to_event``), ``MaskedDistribution`` (``.mask``)
    and ``ExpandedDistribution`` (``.expand``) wrappers; any other distribution is returned
    unchanged.
    """
    if isinstance(fn, NoiseConditionalDistribution):
        return fn.at(sigma)
    if isinstance(fn, Independent):
        inner = rebind_sigma(fn.base_dist, sigma)
        if inner is fn.base_dist:
            return fn
        return Independent(inner, fn.reinterpreted_batch_ndims)
    if isinstance(fn, MaskedDistribution):
        inner = rebind_sigma(fn.base_dist, sigma)
        return fn if inner is fn.base_dist else MaskedDistribution(inner, fn._mask)  # noqa: SLF001 (Pyro keeps no public mask)
    if isinstance(fn, ExpandedDistribution):
        inner = rebind_sigma(fn.base_dist, sigma)
        return fn if inner is fn.base_dist else inner.expand(fn.batch_shape)
    return fn


class noise_level(Messenger):  # noqa: N801 (Pyro handlers are lower case)
    """Rebinds the noise level of every noise-conditional ``pyro.sample`` site.

    Inside ``with noise_level(sigma):`` each site whose distribution is (or wraps) a
    :class:`~ncmle_prob.distributions.NoiseConditionalDistribution` samples from, or scores
    its value under, :math:`p(\\cdot \\mid \\sigma)` instead of the σ it was built with: the
    Pyro-native way to anneal a learned prior,

    .. math::

        p_\\sigma(x, y) = p_\\text{prior}(x \\mid \\sigma)\\, p(y \\mid x).

    Observed sites are rebound too (``obs=`` with a noise-conditional likelihood); restrict
    the handler with ``sites``. A scalar σ keeps every site's shape; a tensor σ adds to the
    sites' batch shapes like any distribution parameter.

    Args:
        sigma: the noise level (>= 0, finite).
        sites: optional names of the sites to rebind (default: all).

    Example:
        >>> import pyro
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> def model():
        ...     return pyro.sample("x", NoisyGaussian(torch.zeros(1), torch.eye(1)))
        >>> with pyro.poutine.trace() as tr, noise_level(2.0):
        ...     _ = model()
        >>> float(tr.trace.nodes["x"]["fn"].sigma)
        2.0
    """

    def __init__(self, sigma: float | Tensor, sites: Collection[str] | None = None) -> None:
        super().__init__()
        if not isinstance(sigma, Tensor):
            as_sigma(sigma, dtype=torch.get_default_dtype(), device=torch.device("cpu"))
        elif not bool(torch.isfinite(sigma).all()) or bool((sigma < 0).any()):
            raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
        if sites is not None and (isinstance(sites, str) or not isinstance(sites, Collection)):
            raise TypeError(f"sites must be a collection of site names, got {sites!r}")
        self.sigma = sigma
        self.sites = None if sites is None else frozenset(sites)

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if self.sites is not None and msg["name"] not in self.sites:
            return
        msg["fn"] = rebind_sigma(msg["fn"], self.sigma)
