"""NCMLE training of other libraries' flows (nflows with our base, zuko) and the adapters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from nflows.distributions import StandardNormal
from nflows.flows import Flow
from nflows.transforms import (
    CompositeTransform,
    MaskedAffineAutoregressiveTransform,
    ReversePermutation,
)
from torch.distributions import Distribution

from ncmle_prob.distributions import NoisyGaussian, NoisyGaussianMixture
from ncmle_prob.divergences import kl_divergence_grid
from ncmle_prob.flows import NflowsBase, NoiseConditionalFlow, SigmaEmbeddingNet
from ncmle_prob.models import MADE, NoiseEmbedding
from ncmle_prob.objectives import NoiseLevelPrior, ncmle_loss


def _oracle(device: torch.device) -> NoisyGaussianMixture:
    w = torch.tensor([0.5, 0.5], device=device)
    locs = torch.tensor([[-1.0, -0.5], [1.0, 0.5]], device=device)
    covs = torch.stack([torch.tensor([[0.1, 0.05], [0.05, 0.1]], device=device)] * 2)
    return NoisyGaussianMixture(w, locs, covs)


def _flow_model(device: torch.device) -> NoiseConditionalFlow:
    emb = SigmaEmbeddingNet(NoiseEmbedding(9))
    transform = CompositeTransform([
        MaskedAffineAutoregressiveTransform(2, 32, context_features=emb.num_features),
        ReversePermutation(2),
        MaskedAffineAutoregressiveTransform(2, 32, context_features=emb.num_features),
    ])
    base = NflowsBase(NoisyGaussian(torch.zeros(2, device=device), torch.eye(2, device=device)))
    return NoiseConditionalFlow(Flow(transform, base, emb), (2,)).to(device)


def _train(model: torch.nn.Module, data: torch.Tensor, prior: NoiseLevelPrior, steps: int):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator(device=data.device).manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(0, data.shape[0], (256,), device=data.device, generator=g)
        loss = ncmle_loss(model, data[idx], prior, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.mark.slow
def test_nflows_flow_on_our_base_trains_by_ncmle_and_beats_mle(device: torch.device) -> None:
    oracle = _oracle(device)
    data = oracle.sample((4096,), generator=torch.Generator(device=device).manual_seed(0))
    torch.manual_seed(0)
    ncmle = _train(_flow_model(device), data, NoiseLevelPrior(sigma_min=0.05), 700)
    torch.manual_seed(0)
    mle = _train(_flow_model(device), data, NoiseLevelPrior.mle(), 700)
    with torch.no_grad():
        kl = {
            name: {s: float(kl_divergence_grid(oracle, m(s), s, lo=-5, hi=5, n=200))
                   for s in (0.0, 0.5)}
            for name, m in (("ncmle", ncmle), ("mle", mle))
        }
    # Exact densities on both sides, grid KL (quadrature error << 0.01 at n=200 on [-5, 5]^2).
    # NCMLE learned q_0.5 (KL small); MLE never saw sigma > 0, so its sigma-conditional flow
    # extrapolates and its base alone, N(0, 1.25 I), is far from q_0.5 (KL ~ 0.3 nats).
    assert kl["ncmle"][0.5] < 0.05, kl
    assert kl["ncmle"][0.5] < 0.5 * kl["mle"][0.5], kl
    # and NCMLE still fits the clean data reasonably (bimodal, thin modes)
    assert kl["ncmle"][0.0] < 0.15, kl


@pytest.fixture
def zuko_module() -> Iterator[object]:
    """zuko, with torch's default argument validation restored afterwards: importing zuko
    turns it off globally, which would silently disable validation in later tests."""
    before = Distribution._validate_args
    try:
        yield pytest.importorskip("zuko")
    finally:
        Distribution.set_default_validate_args(before)


def test_zuko_flow_wrapper(device: torch.device, zuko_module: object) -> None:
    zuko: Any = zuko_module
    emb = NoiseEmbedding(9)
    flow = zuko.flows.MAF(features=2, context=emb.num_features, transforms=2,
                          hidden_features=(16, 16))
    bare = NoiseConditionalFlow(flow, (2,), emb, noise_affine=False).to(device)
    x = torch.randn(6, 2, device=device)
    sig = torch.rand(6, device=device)
    ref = flow(emb(sig)).log_prob(x)
    assert torch.allclose(bare().log_prob(x, sig), ref, atol=1e-6)
    # With the default NoiseAffine output map: the change of variables through it, exactly.
    model = NoiseConditionalFlow(flow, (2,), emb).to(device)
    shift, log_scale = model.affine(sig)
    ref = flow(emb(sig)).log_prob((x - shift) * torch.exp(-log_scale)) - log_scale.sum(-1)
    assert torch.allclose(model().log_prob(x, sig), ref, atol=1e-6)
    d = model(0.3)
    assert d.sample((4,)).shape == (4, 2) and d.score(x).shape == (6, 2)
    # NCMLE trains it: 150 steps reduce the exact KL to the oracle at sigma = 0.5
    oracle = _oracle(device)
    data = oracle.sample((2048,), generator=torch.Generator(device=device).manual_seed(0))
    with torch.no_grad():
        before = float(kl_divergence_grid(oracle, model(0.5), 0.5, lo=-5, hi=5, n=100))
    _train(model, data, NoiseLevelPrior(sigma_min=0.05), 150)
    with torch.no_grad():
        after = float(kl_divergence_grid(oracle, model(0.5), 0.5, lo=-5, hi=5, n=100))
    assert after < 0.5 * before, (before, after)


def test_adapters_shapes_generator_and_errors(device: torch.device) -> None:
    torch.manual_seed(0)
    made = MADE(features=2, hidden_features=8).to(device)
    base = NflowsBase(made)  # a model: its parameters belong to the nflows distribution
    assert sum(p.numel() for p in base.parameters()) == sum(p.numel() for p in made.parameters())
    ctx = torch.tensor([[0.0], [1.0], [2.0]], device=device)
    assert base.sample(5, context=ctx).shape == (3, 5, 2)
    assert base.sample(5).shape == (5, 2)
    x = torch.randn(3, 2, device=device)
    assert torch.allclose(base.log_prob(x, context=ctx), made().log_prob(x, ctx[:, 0]))
    flow = Flow(MaskedAffineAutoregressiveTransform(2, 8, context_features=9),
                StandardNormal([2]))
    model = NoiseConditionalFlow(flow, (2,), NoiseEmbedding(9)).to(device)
    g1 = torch.Generator(device=device).manual_seed(3)
    g2 = torch.Generator(device=device).manual_seed(3)
    assert torch.equal(model(0.2).sample((4,), generator=g1),
                       model(0.2).sample((4,), generator=g2))
    with pytest.raises(TypeError, match="flow"):
        NoiseConditionalFlow(torch.nn.Linear(2, 2), (2,))
    with pytest.raises(TypeError, match="source"):
        NflowsBase("not a distribution")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sigma"):
        model(-1.0)
    with pytest.raises(ValueError, match="context"):
        SigmaEmbeddingNet()(torch.zeros(3, 2))
