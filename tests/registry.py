"""THE registry of example noise-conditional distributions that generic property tests run over.

Every entry of :data:`EXAMPLES` is run through every check of :mod:`ncmle_prob.testing`:
the properties of ``tests/test_properties.py`` (shapes, ``expand``, ``at``, ``score`` vs
autograd and finite differences, ``denoise``, normalisation by numerical integration, goodness
of fit of samples, float64, validation) and the contracts of ``tests/test_contracts.py``
(class-level support, ``infer_shapes``, ``expand`` of a subclass, ``jit.trace``, serialisation,
``Predictive``, the σ contract, a positive transform).

Adding an entry is a three-line job at the end of this file (the generic tests read
:data:`EXAMPLES` when they are collected): write a factory that takes ``(dtype, device)`` and
returns a fresh, deterministic distribution (build networks under :func:`seeded`), e.g.::

    EXAMPLES.append(Example(
        "pixelcnn-1x2x2-sigma0.3", lambda dtype, device: seeded(0, lambda: PixelCNNPP(...))
        .to(device=device, dtype=dtype)(sigma=0.3), dim=4, discrete_at_zero=True))

Fields say which generic checks apply (see :class:`Example`): numerical integration runs where
``dim <= 2`` (its box comes from samples, or from ``span`` when the sampler is not exact) and
goodness of fit where also ``exact_sampler``; ``skip`` opts out of named checks (give the reason
in a comment next to the entry). Bind σ to a *tensor* (e.g. ``torch.tensor([0.0, 0.3, 1.0])``)
to run every check at several noise levels at once: σ then contributes to ``batch_shape``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from ncmle_prob.distributions import (
    NoiseConditionalDistribution,
    NoisyGaussian,
    NoisyGaussianMixture,
)
from ncmle_prob.models import MADE
from ncmle_prob.testing import CHECKS as _CHECKS
from ncmle_prob.testing import Example

__all__ = ["CHECKS", "EXAMPLES", "Example", "by_id", "seeded"]

T = TypeVar("T")

#: Names of the generic checks an entry can opt out of through ``Example.skip``.
CHECKS = frozenset(_CHECKS)


def seeded(seed: int, build: Callable[[], T]) -> T:
    """Calls ``build()`` under a fixed torch seed without disturbing the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _sigma(values: float | list[float], dtype: torch.dtype, device: torch.device) -> object:
    if isinstance(values, list):
        return torch.tensor(values, dtype=dtype, device=device)
    return values


# ---------------------------------------------------------------------------- oracles
def _oracle_gaussian(dim: int, sigma: float | list[float], batch_loc: bool = False) -> Callable[
    [torch.dtype, torch.device], NoiseConditionalDistribution
]:
    def make(dtype: torch.dtype, device: torch.device) -> NoiseConditionalDistribution:
        kw = {"dtype": dtype, "device": device}
        if dim == 1:
            loc, cov = torch.tensor([0.3], **kw), torch.tensor([[0.5]], **kw)
        else:
            loc = torch.tensor([0.5, -0.3], **kw)
            cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], **kw)
        if batch_loc:  # a parameter batch of 2 locations: batch_shape (2,)
            loc = torch.stack([loc, -loc])
        return NoisyGaussian(loc, cov, sigma=_sigma(sigma, dtype, device))

    return make


def _oracle_mixture(dim: int, sigma: float | list[float]) -> Callable[
    [torch.dtype, torch.device], NoiseConditionalDistribution
]:
    def make(dtype: torch.dtype, device: torch.device) -> NoiseConditionalDistribution:
        kw = {"dtype": dtype, "device": device}
        weights = torch.tensor([0.5, 0.3, 0.2], **kw)
        if dim == 1:
            locs = torch.tensor([[-1.5], [0.5], [2.0]], **kw)
            covs = torch.tensor([[[0.1]], [[0.3]], [[0.05]]], **kw)
        else:
            locs = torch.tensor([[-1.5, 0.0], [1.0, 1.0], [0.5, -1.5]], **kw)
            covs = torch.tensor(
                [[[0.2, 0.1], [0.1, 0.3]], [[0.1, -0.05], [-0.05, 0.1]], [[0.3, 0.0], [0.0, 0.05]]],
                **kw,
            )
        return NoisyGaussianMixture(weights, locs, covs, sigma=_sigma(sigma, dtype, device))

    return make


# ---------------------------------------------------------------------------- MADE models
#: Family options of the MADE entries (small bins keep the σ = 0 grid enumerable in 2-D).
FAMILY_OPTIONS: dict[str, dict[str, int]] = {
    "gaussian": {},
    "gaussian_mixture": {"components": 3},
    "logistic_mixture": {"components": 3},
    "discretized_logistic_mixture": {"components": 3, "bins": 5},
}


def made_model(features: int, family: str, seed: int = 0, gain: float = 0.5) -> MADE:
    """A small randomly initialised MADE (float32, CPU) with tempered output weights.

    The output layer and the skip connection are scaled by ``gain`` so that conditional scales
    stay within about ``e^{±1.5}`` over the bulk of the data: random, clearly non-Gaussian and
    x- and σ-dependent, yet resolvable by a modest integration grid.
    """

    def build() -> MADE:
        model = MADE(features, hidden_features=16, num_blocks=1, family=family,
                     linear_skip=True, **FAMILY_OPTIONS[family])
        with torch.no_grad():
            model.net.final_layer.weight.mul_(gain)
            model.net.final_layer.bias.mul_(gain)
            model.skip.weight.mul_(gain)
        return model

    return seeded(seed, build)


def _made(features: int, family: str, sigma: float | list[float], seed: int = 0) -> Callable[
    [torch.dtype, torch.device], NoiseConditionalDistribution
]:
    def make(dtype: torch.dtype, device: torch.device) -> NoiseConditionalDistribution:
        model = made_model(features, family, seed).to(device=device, dtype=dtype)
        return model(_sigma(sigma, dtype, device))

    return make


EXAMPLES: list[Example] = [
    Example("oracle-gaussian-1d", _oracle_gaussian(1, [0.0, 0.5, 1.5]), dim=1),
    Example("oracle-gaussian-2d", _oracle_gaussian(2, [0.0, 0.3, 1.0]), dim=2),
    Example("oracle-gaussian-2d-batchloc", _oracle_gaussian(2, 0.4, batch_loc=True), dim=2),
    Example("oracle-mixture-1d", _oracle_mixture(1, [0.0, 0.2, 0.8]), dim=1),
    Example("oracle-mixture-2d", _oracle_mixture(2, [0.0, 0.3, 1.0]), dim=2),
]

for _family in FAMILY_OPTIONS:
    _disc = _family == "discretized_logistic_mixture"
    EXAMPLES += [
        # several σ at once (σ bound to a tensor: batch_shape (3,)), including σ = 0
        Example(f"made-{_family}-1d-sigma[0,.3,1]", _made(1, _family, [0.0, 0.3, 1.0], seed=1),
                dim=1, discrete_at_zero=_disc),
        Example(f"made-{_family}-2d-sigma[0,.1,.6]", _made(2, _family, [0.0, 0.1, 0.6]),
                dim=2, discrete_at_zero=_disc),
        # a scalar σ; 3 dims for the shape checks (too many for integration by a grid)
        Example(f"made-{_family}-3d-sigma.4", _made(3, _family, 0.4, seed=2), dim=3,
                discrete_at_zero=_disc),
    ]
EXAMPLES.append(
    Example("made-discretized_logistic_mixture-2d-sigma0",
            _made(2, "discretized_logistic_mixture", 0.0, seed=3), dim=2, discrete_at_zero=True)
)


def by_id(ids: list[str] | None = None) -> list[Example]:
    """Entries with the given ids (all when ``None``), for ``pytest.mark.parametrize``."""
    return [e for e in EXAMPLES if ids is None or e.id in ids]


# Flow compositions: a noise-conditional base pushed through torch/Pyro transforms (change of
# variables with the noise in the base space): mixture oracles through a spline (1-D) and a
# correlating affine map (2-D), with exact samplers, and an affine map over a MADE.
def _composed_oracle(dim: int, sigma: list[float]) -> Callable[
    [torch.dtype, torch.device], NoiseConditionalDistribution
]:
    from pyro.distributions.transforms import LowerCholeskyAffine, Spline

    from ncmle_prob.distributions import TransformedNoiseConditional

    def make(dtype: torch.dtype, device: torch.device) -> NoiseConditionalDistribution:
        base = _oracle_mixture(dim, sigma)(dtype, device)
        if dim == 1:
            # A random rational-quadratic spline (Pyro's; identity outside [-3, 3]): curved
            # but unbounded, with log-slopes within about ±2 so the generic grid resolves it.
            flow = [seeded(5, lambda: Spline(1, count_bins=6, bound=3.0)).to(device, dtype)]
        else:
            # A full (correlating) affine map: the grid resolves it exactly in 2-D, where a
            # spline's sharp slope changes need a finer grid than the generic test uses.
            tril = torch.tensor([[1.2, 0.0], [0.7, 0.5]], dtype=dtype, device=device)
            flow = [LowerCholeskyAffine(torch.full((dim,), 0.3, dtype=dtype, device=device),
                                        tril)]
        return TransformedNoiseConditional(base, flow)

    return make


def _composed_made(sigma: float) -> Callable[
    [torch.dtype, torch.device], NoiseConditionalDistribution
]:
    from torch.distributions import transforms as T

    from ncmle_prob.distributions import TransformedNoiseConditional

    def make(dtype: torch.dtype, device: torch.device) -> NoiseConditionalDistribution:
        base = _made(2, "logistic_mixture", sigma, seed=4)(dtype, device)
        scale = torch.tensor([1.5, 0.5], dtype=dtype, device=device)
        return TransformedNoiseConditional(base, T.AffineTransform(0.1, scale, event_dim=1))

    return make


EXAMPLES += [
    # jit_trace: torch.jit.trace cannot script Pyro's Spline, an nn.Module whose `sign`
    # property raises NotImplementedError when the tracer probes its attributes (torch 2.x).
    Example("composed-oracle-mixture-1d-spline", _composed_oracle(1, [0.0, 0.3, 1.0]), dim=1,
            skip=frozenset({"jit_trace"})),
    Example("composed-oracle-mixture-2d-affine", _composed_oracle(2, [0.2, 0.6]), dim=2),
    Example("composed-made-2d-affine", _composed_made(0.3), dim=2),
]


# NCMLE for other libraries' flows: an nflows MAF whose context is σ's embedding, on a
# noise-conditional base (NflowsBase) that carries σ too, through NoiseConditionalFlow's
# NoiseAffine output map (σ reaches every dimension: check "sigma_reach").
def _nflows_flow(sigma: list[float]) -> Callable[
    [torch.dtype, torch.device], NoiseConditionalDistribution
]:
    def make(dtype: torch.dtype, device: torch.device) -> NoiseConditionalDistribution:
        from nflows.flows import Flow
        from nflows.transforms import MaskedAffineAutoregressiveTransform

        from ncmle_prob.flows import NflowsBase, NoiseConditionalFlow, SigmaEmbeddingNet
        from ncmle_prob.models import NoiseEmbedding

        def build() -> NoiseConditionalFlow:
            emb = SigmaEmbeddingNet(NoiseEmbedding(9))
            kw = {"dtype": dtype, "device": device}  # a parameter-free base: built in place
            base = NflowsBase(NoisyGaussian(torch.zeros(2, **kw), torch.eye(2, **kw)))
            transform = MaskedAffineAutoregressiveTransform(2, 8, context_features=emb.num_features)
            return NoiseConditionalFlow(Flow(transform, base, emb), (2,))

        model = seeded(6, build).to(device=device, dtype=dtype)
        return model(_sigma(sigma, dtype, device))

    return make


EXAMPLES.append(Example("flow-nflows-maf-2d", _nflows_flow([0.0, 0.3, 1.0]), dim=2))
