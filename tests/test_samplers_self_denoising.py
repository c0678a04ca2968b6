"""The self-denoising sampler (TarFlow's noisy ancestral + Tweedie, iTARFlow's K steps): exact
identities, the probability-flow limit on closed-form oracles, options, presets and the CLI."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from ncmle_prob import samplers
from ncmle_prob.distributions import NoisyGaussian, NoisyGaussianMixture
from ncmle_prob.samplers import tweedie_denoise
from ncmle_prob.samplers.self_denoising import self_denoising_ladder

DT = torch.float64


def _gaussian(dim: int = 3, var: float = 0.2) -> NoisyGaussian:
    a = torch.randn(dim, dim, generator=torch.Generator().manual_seed(0), dtype=DT)
    cov = var * (0.5 * torch.eye(dim, dtype=DT) + 0.5 * a @ a.T / dim)
    return NoisyGaussian(torch.linspace(-0.5, 0.5, dim, dtype=DT), cov)


def _mixture() -> NoisyGaussianMixture:
    w = torch.tensor([0.5, 0.3, 0.2], dtype=DT)
    locs = torch.tensor([[-0.6, -0.3], [0.6, -0.3], [0.0, 0.6]], dtype=DT)
    cov = torch.tensor([[0.02, 0.005], [0.005, 0.01]], dtype=DT).expand(3, 2, 2)
    return NoisyGaussianMixture(w, locs, cov)


@pytest.mark.parametrize("sigma_start", [0.1, 0.3, 0.7])
def test_one_step_is_tweedie_exactly(sigma_start: float) -> None:
    d = _mixture()
    x = samplers.sample(d, 64, "self_denoising", steps=1, sigma_start=sigma_start,
                        generator=torch.Generator().manual_seed(3))
    start = d.at(sigma_start).sample((64,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, tweedie_denoise(d, start, sigma_start))
    y = samplers.sample(d, 64, "tarflow", sigma_start=sigma_start,
                        generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, y)  # the preset is the same sampler


def test_one_step_is_the_closed_form_posterior_mean_and_shrinks() -> None:
    """On N(mu, Sigma) one step returns mu + Sigma (Sigma + s^2 I)^-1 (x - mu): its covariance
    Sigma (Sigma + s^2 I)^-1 Sigma is smaller than Sigma (TarFlow over-smooths)."""
    d = _gaussian()
    s = 0.3
    x, info = samplers.sample(d, 8, "tarflow", generator=torch.Generator().manual_seed(1),
                              return_info=True)
    start = d.at(s).sample((8,), generator=torch.Generator().manual_seed(1))
    cov = d.clean_covariance
    k = cov @ torch.linalg.inv(cov + s * s * torch.eye(3, dtype=DT))
    expected = d.loc + (start - d.loc) @ k.T
    assert torch.allclose(x, expected, atol=1e-10)
    assert info.sigmas == (0.3, 0.0) and info.score_evals == 1 and info.denoised_at == 0.3
    assert info.corrector is None and info.langevin_time == 0.0


@pytest.mark.parametrize("dist_name", ["gaussian", pytest.param("mixture", marks=pytest.mark.slow)])
def test_many_steps_carry_noisy_draws_to_the_clean_law(dist_name: str) -> None:
    """The DDIM steps integrate the probability-flow ODE: with K = 200 steps from σ = 0.5,
    q_σ draws reach q_0. n = 20000 against n exact draws: the standard error of a difference
    of means is sqrt(2v/n) <= 0.006, of a relative difference of variances sqrt(4/n) = 1.4 %;
    the first-order error of K = 200 geometric steps (ratio 0.969) shrinks the variance by
    about 1 % on the Gaussian (measured with n = 2e5: -0.9 to -1.1 %). Tolerances: means
    0.015 (2.5 SE), variances 5 % relative (bias + 2.8 SE), classification frequencies 0.015
    from those of exact draws (SE of a difference <= 0.005). The one-step (Tweedie) variance
    is visibly smaller (< 0.9 of the truth), the control that the check has power."""
    d = _gaussian() if dist_name == "gaussian" else _mixture()
    n = 20000
    g = torch.Generator().manual_seed(7)
    x = samplers.sample(d, n, "self_denoising", steps=200, sigma_start=0.5, sigma_end=1e-3,
                        generator=g)
    ref = d.sample((n,), generator=torch.Generator().manual_seed(8))
    assert (x.mean(0) - ref.mean(0)).abs().max() < 0.015
    rel = (x.var(0) / ref.var(0) - 1).abs().max()
    assert rel < 0.05, rel
    one = samplers.sample(d, n, "tarflow", sigma_start=0.5, generator=g)
    assert float((one.var(0) / ref.var(0)).max()) < 0.9
    if dist_name == "mixture":
        logp = torch.stack([d.component(k).log_prob(x) for k in range(3)], -1)
        comp = (logp + d.weights.log()).argmax(-1)  # the clean law's most likely component
        freq = torch.bincount(comp, minlength=3).to(DT) / n
        ref_logp = torch.stack([d.component(k).log_prob(ref) for k in range(3)], -1)
        ref_freq = torch.bincount((ref_logp + d.weights.log()).argmax(-1), minlength=3) / n
        assert (freq - ref_freq.to(DT)).abs().max() < 0.015, (freq, ref_freq)


def test_ladder_options_and_info() -> None:
    assert self_denoising_ladder(0.3, 1, 0.01) == [0.3, 0.0]
    lad = self_denoising_ladder(0.3, 10, 0.01)
    assert len(lad) == 11 and lad[0] == 0.3 and lad[-1] == 0.0
    assert math.isclose(lad[-2], 0.01) and all(a > b for a, b in itertools.pairwise(lad))
    d = _gaussian()
    x, info = samplers.sample(d, 5, "itarflow", return_info=True)
    assert info.score_evals == 10 and len(info.sigmas) == 11 and info.predictor == "ddim"
    assert info.start_sigma == 0.3 and x.shape == (5, 3)
    # a target above 0: K + 1 geometric levels down to the target, no Tweedie to 0
    _, info = samplers.sample(d, 5, "self_denoising", steps=2, sigma=0.1, return_info=True)
    assert info.sigmas[-1] == 0.1 and info.score_evals == 2 and info.denoised_at is None
    # a target at or above sigma_start: drawn directly
    _, info = samplers.sample(d.at(0.5), 5, "self_denoising", return_info=True)
    assert info.sigmas == (0.5,) and info.score_evals == 0
    assert samplers.options("self_denoising")["steps"][1] == 10
    assert samplers.options("tarflow")["steps"][1] == 1


@pytest.mark.parametrize(
    ("opts", "error", "match"),
    [
        ({"steps": 0}, ValueError, "'steps' must be an integer >= 1"),
        ({"steps": 2.5}, TypeError, "option 'steps' of sampler 'self_denoising' must be an int"),
        ({"sigma_start": -0.1}, ValueError, "'sigma_start' must be finite and > 0"),
        ({"sigma_start": math.inf}, ValueError, "'sigma_start' must be finite and > 0"),
        ({"sigma_end": 0.0}, ValueError, "'sigma_end' must be finite and > 0"),
        ({"sigma_end": 0.5, "steps": 3}, ValueError, "'sigma_end' .* must be below"),
        ({"sigma": -1.0}, ValueError, "'sigma' must be finite and >= 0"),
        ({"initial": "gibbs"}, ValueError, "must be one of"),
        ({"corrector": "mala"}, TypeError, "has no option"),
    ],
)
def test_bad_options_are_clear_errors(opts: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        samplers.sample(_gaussian(), 4, "self_denoising", **opts)


def test_on_a_model_jacobi_start_snapping_and_batches() -> None:
    from ncmle_prob.models import MADE

    torch.manual_seed(0)
    m = MADE(4, hidden_features=16, family="discretized_logistic_mixture", components=2, bins=5)
    d = m()
    a = samplers.sample(d, 6, "self_denoising", steps=3,
                        generator=torch.Generator().manual_seed(0))
    b = samplers.sample(d, 6, "self_denoising", steps=3, initial="jacobi",
                        generator=torch.Generator().manual_seed(0))
    levels = torch.linspace(-1, 1, 5)
    assert torch.isin(a, levels).all() and torch.isin(b, levels).all()
    c, info = samplers.sample(d, 7, "self_denoising", steps=2, batch_size=3, return_info=True)
    assert c.shape == (7, 4) and info.batches == 3 and info.score_evals == 6 and info.snapped


@pytest.mark.slow  # trains a toy checkpoint: ~15 s
def test_cli_sample_with_self_denoising(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ncmle_prob.cli import main

    out = tmp_path / "toy"
    assert main(["train", "--data", "gaussian_mixture", "--steps", "10", "--hidden", "16",
                 "--batch-size", "64", "--quiet", "--out", str(out)]) == 0
    ckpt = str(out / "last.pt")
    for method, opts in (("self_denoising", ["steps=3", "sigma_start=0.2", "initial=jacobi"]),
                         ("tarflow", []), ("itarflow", ["sigma_end=0.02"])):
        png = tmp_path / f"{method}.png"
        argv = ["sample", ckpt, "-n", "20", "--method", method, "--out", str(png)]
        for o in opts:
            argv += ["--option", o]
        assert main(argv) == 0, method
        assert png.read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()
    rc = main(["sample", ckpt, "-n", "4", "--method", "self_denoising", "--option", "steps=0",
               "--out", str(tmp_path / "bad.png")])
    assert rc == 2 and "steps" in capsys.readouterr().err
