"""Exactness of flow composition: change of variables, normalisation, score, nflows parity."""

from __future__ import annotations

import math

import pytest
import torch
from nflows.flows import Flow
from nflows.transforms import (
    CompositeTransform,
    MaskedPiecewiseRationalQuadraticAutoregressiveTransform,
    PointwiseAffineTransform,
)
from pyro.distributions.transforms import LowerCholeskyAffine, Spline
from torch.distributions.transforms import AffineTransform, ComposeTransform

from ncmle_prob import samplers
from ncmle_prob.distributions import NoisyGaussian, NoisyGaussianMixture
from ncmle_prob.distributions.transformed import TransformedNoiseConditional
from ncmle_prob.flows import NflowsBase, NflowsTransform, SigmaEmbeddingNet
from ncmle_prob.models import MADE, NoiseEmbedding

DT = torch.float64


def _base(device: torch.device, sigma: float = 0.5) -> NoisyGaussianMixture:
    w = torch.tensor([0.3, 0.7], dtype=DT, device=device)
    locs = torch.tensor([[-1.0, 0.5], [1.0, -0.5]], dtype=DT, device=device)
    covs = torch.stack([torch.eye(2, dtype=DT, device=device) * 0.3] * 2)
    return NoisyGaussianMixture(w, locs, covs, sigma=sigma)


def _transforms(device: torch.device) -> list:
    torch.manual_seed(1)
    spline = Spline(2, count_bins=6, bound=3.0).to(device=device, dtype=DT)
    with torch.no_grad():
        for p in spline.parameters():
            p.normal_(0.0, 0.5)  # a visibly non-linear but monotone spline
    tril = torch.tensor([[1.5, 0.0], [0.7, 0.6]], dtype=DT, device=device)
    affine = LowerCholeskyAffine(torch.tensor([0.3, -0.2], dtype=DT, device=device), tril)
    return [spline, affine]


def _change_of_variables(base, transforms, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """log p_base(T^-1 x) + log|det dT^-1/dx| with the full Jacobian by autograd + slogdet."""
    inv = ComposeTransform(transforms).inv
    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: inv(v), xi)
        out.append(base.log_prob(inv(xi), sigma) + torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def test_log_prob_is_change_of_variables(device: torch.device) -> None:
    base, ts = _base(device), _transforms(device)
    d = TransformedNoiseConditional(base, ts)
    x = 2.0 * torch.randn(16, 2, dtype=DT, device=device)
    for sigma in (0.0, 0.5, 1.3):
        # float64 with exact Jacobians: agreement to 1e-6 is round-off level, any missing
        # log-det term (O(0.1-1) here) or wrong direction would fail
        ref = _change_of_variables(base, ts, x, sigma)
        assert torch.allclose(d.log_prob(x, sigma), ref, atol=1e-6, rtol=0)


def test_integrates_to_one_2d(device: torch.device) -> None:
    d = TransformedNoiseConditional(_base(device), _transforms(device))
    n, lo, hi = 500, -9.0, 9.0
    g = torch.linspace(lo, hi, n, dtype=DT, device=device)
    xx = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    h = (hi - lo) / (n - 1)
    for sigma in (0.0, 0.8):
        mass = d.log_prob(xx, sigma).detach().exp().sum() * h * h
        # Riemann sum on a 500^2 grid (h = 0.036) of a smooth density with negligible mass
        # outside [-9, 9]^2: error well below 1e-3; a missing Jacobian changes it by O(1)
        assert abs(float(mass) - 1.0) < 1e-3, float(mass)


def test_score_matches_autograd_and_finite_differences(device: torch.device) -> None:
    base = NoisyGaussian(torch.zeros(2, dtype=DT, device=device),
                         torch.eye(2, dtype=DT, device=device), sigma=0.4)
    A = torch.tensor([[2.0, 0.0], [0.5, 0.5]], dtype=DT, device=device)
    b = torch.tensor([1.0, -1.0], dtype=DT, device=device)
    d = TransformedNoiseConditional(base, LowerCholeskyAffine(b, A))
    x = torch.randn(8, 2, dtype=DT, device=device)
    # closed form: x = A z + b  =>  score_x = A^{-T} score_z(A^{-1}(x - b))
    z = torch.linalg.solve(A, (x - b).T).T
    ref = torch.linalg.solve(A.T, base.score(z).T).T
    assert torch.allclose(d.score(x), ref, atol=1e-10)
    # non-linear composition: autograd score vs central finite differences (float64, step 1e-5:
    # truncation ~1e-10, round-off ~1e-11 * |log p| / 1e-5 ~ 1e-9)
    d2 = TransformedNoiseConditional(_base(device), _transforms(device))
    eps = 1e-5
    fd = torch.stack([
        (d2.log_prob(x + eps * e) - d2.log_prob(x - eps * e)) / (2 * eps)
        for e in torch.eye(2, dtype=DT, device=device)
    ], -1)
    assert torch.allclose(d2.score(x), fd, atol=1e-6)


def test_nflows_and_torch_paths_agree(device: torch.device) -> None:
    base = _base(device)
    shift = torch.tensor([0.5, -1.0], dtype=DT, device=device)
    scale = torch.tensor([2.0, 0.5], dtype=DT, device=device)
    # nflows f(x) = shift + scale x maps data to noise; torch T = f^-1: z -> (z - shift)/scale
    via_nflows = TransformedNoiseConditional(
        base, NflowsTransform(PointwiseAffineTransform(shift, scale)))
    via_torch = TransformedNoiseConditional(base, AffineTransform(-shift / scale, 1.0 / scale))
    x = torch.randn(32, 2, dtype=DT, device=device)
    sig = torch.rand(32, dtype=DT, device=device)
    assert torch.allclose(via_nflows.log_prob(x, sig), via_torch.log_prob(x, sig), atol=1e-10)
    assert torch.allclose(via_nflows.score(x, sig), via_torch.score(x, sig), atol=1e-10)

    # a sigma-conditional spline flow: nflows Flow over NflowsBase == our composition
    emb = SigmaEmbeddingNet(NoiseEmbedding(7)).to(DT)
    spline = MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
        2, 16, context_features=emb.num_features, num_bins=5, tails="linear", tail_bound=4.0
    ).to(device=device, dtype=DT)
    with torch.no_grad():
        for p in spline.parameters():
            p.add_(0.1 * torch.randn_like(p))  # non-linear yet smooth enough for quadrature
    flow = Flow(CompositeTransform([spline]), NflowsBase(base), emb.to(device))
    ours = TransformedNoiseConditional(base, NflowsTransform(spline, embedding=emb))
    lp_flow = flow.log_prob(x, context=sig[:, None])
    assert torch.allclose(ours.log_prob(x, sig), lp_flow, atol=1e-10)
    # and the conditional composition is normalised at a fixed sigma
    n, lo, hi = 400, -8.0, 8.0
    g = torch.linspace(lo, hi, n, dtype=DT, device=device)
    xx = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    mass = ours.log_prob(xx, 0.7).detach().exp().sum() * ((hi - lo) / (n - 1)) ** 2
    assert abs(float(mass) - 1.0) < 1e-3, float(mass)  # Riemann sum, h = 0.04


def test_sampling_and_samplers(device: torch.device) -> None:
    base = NoisyGaussian(torch.zeros(2, dtype=DT, device=device),
                         torch.eye(2, dtype=DT, device=device), sigma=0.5)
    A = torch.tensor([[1.0, 0.0], [0.8, 0.6]], dtype=DT, device=device)
    b = torch.tensor([2.0, -1.0], dtype=DT, device=device)
    d = TransformedNoiseConditional(base, LowerCholeskyAffine(b, A))
    cov = 1.25 * A @ A.T  # law of A z + b, z ~ N(0, (1 + 0.5^2) I)
    g = torch.Generator(device=device).manual_seed(0)
    x = d.sample((20000,), generator=g)
    assert x.shape == (20000, 2)
    # 20000 exact draws: mean s.e. <= 0.012, covariance s.e. <= 0.02; 5 s.e. tolerances
    assert torch.allclose(x.mean(0), b, atol=0.06)
    assert torch.allclose(torch.cov(x.T), cov, atol=0.1)
    # the sampler registry works on the composition (score-based annealed Langevin)
    y = samplers.sample(d, 500, method="annealed_langevin", generator=g)
    assert y.shape == (500, 2) and bool(torch.isfinite(y).all())
    assert torch.allclose(y.mean(0), b, atol=0.25)  # 500 draws: s.e. ~0.05; 5 s.e.
    # binding sigma rebinds the base
    assert torch.allclose(d.at(1.0).sample((20000,), generator=g).var(0),
                          2.0 * (A @ A.T).diagonal(), rtol=0.1)
    e = d.expand((3,))
    assert e.batch_shape == (3,) and e.sample((5,)).shape == (5, 3, 2)


def test_composition_with_made_base_and_errors(device: torch.device) -> None:
    model = MADE(features=2, hidden_features=8).to(device)
    d = TransformedNoiseConditional(model(0.3), AffineTransform(1.0, 2.0))
    x = torch.randn(5, 2, device=device)
    ref = model(0.3).log_prob((x - 1) / 2) - 2 * math.log(2.0)
    assert torch.allclose(d.log_prob(x), ref, atol=1e-5)
    with pytest.raises(TypeError, match="base"):
        TransformedNoiseConditional(torch.distributions.Normal(0.0, 1.0), [])
    with pytest.raises(TypeError, match="transforms"):
        TransformedNoiseConditional(model(), [lambda v: v])
    disc = MADE(features=2, hidden_features=8, family="discretized_logistic_mixture",
                components=2, bins=16).to(device)
    with pytest.raises(ValueError, match="discretized"):
        TransformedNoiseConditional(disc(), AffineTransform(0.0, 1.0))
    with pytest.raises(ValueError, match="event_shape"):
        d.log_prob(torch.zeros(3, device=device))


def test_every_registered_sampler_runs_on_a_composition(device: torch.device) -> None:
    import ncmle_prob.infer  # noqa: F401  (registers the pyro_* samplers)

    model = MADE(features=2, hidden_features=8).to(device)
    d = TransformedNoiseConditional(model(0.3), AffineTransform(1.0, 2.0))
    for method in samplers.available():
        opts = {"warmup_steps": 30} if method.startswith("pyro_") else {}
        if method == "jacobi":  # fixed-point ancestral passes need per-dimension conditionals
            with pytest.raises(ValueError, match="needs an autoregressive distribution"):
                samplers.sample(d, 20, method=method)
            continue
        x = samplers.sample(d, 20, method=method,
                            generator=torch.Generator(device=device).manual_seed(0), **opts)
        assert x.shape == (20, 2) and bool(torch.isfinite(x).all()), method
