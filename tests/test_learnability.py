"""Every trainable model can *learn* the noisy family at every σ, in every dimension (issue 17).

Each model is trained by NCMLE (default :class:`NoiseLevelPrior`: p₀ = 0.2, log-uniform on
[0.01, 1]) on fresh draws of a closed-form oracle, then compared with the oracle at
σ ∈ {0, 0.1, 0.3, 1}: the exact KL(q_σ ‖ p_θ(·|σ)) by Monte Carlo with exact densities, and each
dimension's marginal mean and variance from 20 000 ancestral draws.

Tolerances, and why they hold:

* Monte Carlo: with 20 000 draws the KL's standard error is about 0.002 nats, a variance's
  relative standard error √(2/n) ≈ 1 %, a mean's 0.7 % of its standard deviation.
* What a short run leaves: ``benchmarks/bench_sigma_reach.py`` (2000 steps, 64 hidden units)
  measured KL ≤ 0.034 nats and variance errors ≤ 10 % for the fixed MADE, largest at σ = 1, the
  edge of the prior's range. The bounds are KL < 0.1 nats and 25 % on variances, 0.2 standard
  deviations on means.
* The old MADE fails them: in the same run its first dimension kept Var(x₁) = 0.45 at σ = 1
  against the truth 1.36 (67 % off) and KL = 0.52 nats (gaussian family), 0.37 (mixture).
  ``test_the_old_layout_fails_the_same_test`` keeps that negative control in the suite.
"""

from __future__ import annotations

import math

import pytest
import torch
from nflows.distributions import StandardNormal
from nflows.flows import Flow
from nflows.transforms import (
    CompositeTransform,
    MaskedAffineAutoregressiveTransform,
    ReversePermutation,
)

from ncmle_prob.distributions import NoisyGaussian, NoisyGaussianMixture
from ncmle_prob.flows import NflowsBase, NoiseConditionalFlow, SigmaEmbeddingNet
from ncmle_prob.models import MADE, NoiseEmbedding
from ncmle_prob.testing import fit_report, train_on_oracle

KL_MAX = 0.1
VAR_RTOL = 0.25
MEAN_ATOL_SD = 0.2
STEPS = 1500


def gaussian_3d() -> NoisyGaussian:
    """Clean variances 0.36, 0.25, 0.14, correlated (issue 17's oracle)."""
    std = torch.tensor([0.6, 0.5, 0.374])
    corr = torch.tensor([[1.0, 0.5, 0.2], [0.5, 1.0, 0.4], [0.2, 0.4, 1.0]])
    return NoisyGaussian(torch.tensor([0.3, -0.2, 0.1]), corr * std[:, None] * std[None, :])


def mixture_2d() -> NoisyGaussianMixture:
    """Three overlapping, differently shaped components."""
    return NoisyGaussianMixture(
        torch.tensor([0.5, 0.3, 0.2]),
        torch.tensor([[-1.0, 0.0], [0.8, 0.7], [0.3, -1.0]]),
        torch.tensor([[[0.2, 0.1], [0.1, 0.3]], [[0.1, -0.05], [-0.05, 0.1]],
                      [[0.3, 0.0], [0.0, 0.05]]]),
    )


def _made(features: int, family: str, layout: str = "default") -> MADE:
    extra = {"components": 4} if "mixture" in family else {}
    return MADE(features, 64, family=family, layout=layout, **extra)


def _nflows_maf(features: int) -> NoiseConditionalFlow:
    layers = []
    for _ in range(2):
        layers += [MaskedAffineAutoregressiveTransform(features, 32, context_features=9),
                   ReversePermutation(features)]
    flow = Flow(CompositeTransform(layers), StandardNormal([features]))
    return NoiseConditionalFlow(flow, (features,), NoiseEmbedding(9))


def _nflows_on_made(features: int) -> NoiseConditionalFlow:
    """The other route: an nflows MAF on our noise-conditional MADE as its base
    (``NflowsBase``), σ as the flow's context through ``SigmaEmbeddingNet``."""
    emb = SigmaEmbeddingNet(NoiseEmbedding(9))
    transform = MaskedAffineAutoregressiveTransform(features, 32,
                                                    context_features=emb.num_features)
    flow = Flow(transform, NflowsBase(_made(features, "gaussian")), emb)
    return NoiseConditionalFlow(flow, (features,))


MODELS = {
    "made-gaussian": lambda d: _made(d, "gaussian"),
    "made-gaussian_mixture": lambda d: _made(d, "gaussian_mixture"),
    "made-logistic_mixture": lambda d: _made(d, "logistic_mixture"),
    "nflows-maf": _nflows_maf,
    "nflows-maf-on-made": _nflows_on_made,
}
ORACLES = {"gaussian-3d": gaussian_3d, "mixture-2d": mixture_2d}


def _failures(model, oracle) -> list[str]:
    bad = []
    for r in fit_report(model, oracle):
        sd = r.true_var.sqrt()
        if not r.kl < KL_MAX:
            bad.append(f"sigma={r.sigma}: KL {r.kl:.3f} ± {r.kl_stderr:.3f} >= {KL_MAX}")
        for i in range(len(sd)):
            rel = abs(float(r.var[i] / r.true_var[i]) - 1)
            if not rel < VAR_RTOL:
                bad.append(f"sigma={r.sigma} dim {i}: Var {float(r.var[i]):.3f} vs "
                           f"{float(r.true_var[i]):.3f}")
            if not abs(float(r.mean[i] - r.true_mean[i])) < MEAN_ATOL_SD * float(sd[i]):
                bad.append(f"sigma={r.sigma} dim {i}: mean {float(r.mean[i]):.3f} vs "
                           f"{float(r.true_mean[i]):.3f}")
    return bad


#: Each model on the oracles its family can represent: a Gaussian conditional (or an affine
#: MAF) has no multimodal first marginal, so only the mixture families meet the mixture oracle.
CASES = [(m, "gaussian-3d") for m in MODELS] + [
    ("made-gaussian_mixture", "mixture-2d"), ("made-logistic_mixture", "mixture-2d")]


@pytest.mark.slow
@pytest.mark.parametrize("model_name,oracle_name", CASES)
def test_model_learns_the_noisy_family(model_name: str, oracle_name: str) -> None:
    oracle = ORACLES[oracle_name]()
    torch.manual_seed(0)
    model = MODELS[model_name](oracle.event_shape[0])
    train_on_oracle(model, oracle, steps=STEPS, seed=0)
    assert not _failures(model, oracle), _failures(model, oracle)


@pytest.mark.slow
def test_the_old_layout_fails_the_same_test() -> None:
    """Negative control: the MADE before the σ fix cannot follow Var(x₁) to σ = 1."""
    oracle = gaussian_3d()
    torch.manual_seed(0)
    model = _made(3, "gaussian", layout="no_sigma_units")
    train_on_oracle(model, oracle, steps=STEPS, seed=0)
    bad = _failures(model, oracle)
    assert any(b.startswith("sigma=1.0 dim 0: Var") for b in bad), bad
    assert any(b.startswith("sigma=1.0: KL") for b in bad), bad


# ---------------------------------------------------------------------------- PixelCNN++
class GridOracle:
    """A correlated law on the grid of a 1×2×2 image with 3 levels {-1, 0, 1}, and its noisy
    laws q_σ = Σ_g π_g N(g, σ² I): exact log masses at σ = 0, exact log densities (a
    log-sum-exp over the 81 grid points) for σ > 0, exact moments."""

    event_shape = torch.Size([1, 2, 2])

    def __init__(self) -> None:
        levels = torch.tensor([-1.0, 0.0, 1.0])
        self.points = torch.cartesian_prod(*[levels] * 4)  # (81, 4)
        prec = torch.tensor([[2.0, -1.2, -1.0, 0.3], [-1.2, 2.5, 0.4, -1.0],
                             [-1.0, 0.4, 2.2, -1.1], [0.3, -1.0, -1.1, 2.4]])
        centred = self.points - torch.tensor([0.2, -0.1, 0.0, 0.3])
        logits = -0.5 * ((centred @ prec) * centred).sum(-1)
        self.log_weights = logits - torch.logsumexp(logits, 0)
        w = self.log_weights.exp()
        self.mean = w @ self.points
        self.clean_var = w @ (self.points - self.mean) ** 2
        self.device = torch.device("cpu")
        self.sigma = 0.0

    def at(self, sigma: float) -> GridOracle:
        new = GridOracle.__new__(GridOracle)
        new.__dict__.update(self.__dict__, sigma=float(sigma))
        return new

    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None):
        n = shape[0]
        idx = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        x = self.points[idx] + self.sigma * torch.randn(n, 4, generator=generator)
        return x.reshape(n, 1, 2, 2)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, 1, 4)
        sq = ((flat - self.points) ** 2).sum(-1)
        s2 = self.sigma**2
        log_norm = 2 * math.log(2 * math.pi * s2)  # four dimensions: (d/2) log(2 pi s2)
        return torch.logsumexp(self.log_weights - 0.5 * sq / s2, -1) - log_norm


@pytest.mark.slow
def test_pixelcnnpp_learns_a_grid_oracle_at_every_sigma() -> None:
    """PixelCNN++ (8 filters, 1 resnet, 3 components, 3 levels) trained by NCMLE on a
    correlated 1×2×2 grid law. At σ = 0 the KL is exact (81 grid points, the model's log
    masses); at σ > 0 by Monte Carlo with the oracle's exact noisy density (20 000 draws,
    standard error < 0.01 nats). Per-pixel moments of 20 000 ancestral draws within 25 % (Var)
    and 0.2 standard deviations (mean): Monte Carlo ≈ 1 %, the rest is what a short run
    leaves."""
    from ncmle_prob.models import PixelCNNPP

    oracle = GridOracle()
    torch.manual_seed(0)
    model = PixelCNNPP((1, 2, 2), filters=8, resnets=1, components=3, bins=3)
    train_on_oracle(model, oracle, steps=STEPS, seed=0)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(1)
    bad = []
    with torch.no_grad():
        grid = oracle.points.reshape(-1, 1, 2, 2)
        p0 = model(0.0).log_prob(grid)
        kl0 = float((oracle.log_weights.exp() * (oracle.log_weights - p0)).sum())
        if not kl0 < KL_MAX:
            bad.append(f"sigma=0: KL {kl0:.3f}")
        for s in (0.0, 0.1, 0.3, 1.0):
            q = oracle.at(s)
            if s > 0:
                x = q.sample((20000,), generator=gen)
                kl = float((q.log_prob(x) - model(s).log_prob(x)).mean())
                if not kl < KL_MAX:
                    bad.append(f"sigma={s}: KL {kl:.3f}")
            draws = model(s).sample((20000,), generator=gen).reshape(-1, 4)
            var, true_var = draws.var(0), oracle.clean_var + s * s
            sd = true_var.sqrt()
            for i in range(4):
                if not abs(float(var[i] / true_var[i]) - 1) < VAR_RTOL:
                    bad.append(f"sigma={s} pixel {i}: Var {float(var[i]):.3f} vs "
                               f"{float(true_var[i]):.3f}")
                if not abs(float(draws[:, i].mean() - oracle.mean[i])) < MEAN_ATOL_SD * sd[i]:
                    bad.append(f"sigma={s} pixel {i}: mean {float(draws[:, i].mean()):.3f} vs "
                               f"{float(oracle.mean[i]):.3f}")
    assert not bad, bad
