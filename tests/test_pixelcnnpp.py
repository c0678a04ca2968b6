"""PixelCNN++: autoregressive property, normalisation, score, cached vs naive sampling."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from ncmle_prob.models.pixelcnnpp import PixelCNNPP


def _model(shape, device, **kw) -> PixelCNNPP:
    opts = {"filters": 8, "resnets": 1, "components": 2, "bins": 5} | kw
    return PixelCNNPP(shape, **opts).to(device=device, dtype=torch.float64).eval()


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 4, 4), (1, 8, 8), (3, 8, 8)])
def test_autoregressive_property_by_gradients(shape, device) -> None:
    # The parameters of dimension i (raster order over pixels, channels within a pixel) must
    # have exactly zero gradient w.r.t. every dimension j >= i. Also checks that each output
    # does depend on *some* earlier dimension (a network that ignored its input would pass the
    # first half trivially). 8x8 exercises the down/up-sampling path (levels = 1).
    model = _model(shape, device)
    assert model.levels == (1 if shape[1] == 8 else 0)
    c, h, w = shape
    x = torch.randn(2, *shape, dtype=torch.float64, device=device).requires_grad_(True)
    sigma = torch.tensor([0.0, 0.5], dtype=torch.float64, device=device)
    params = model.conditional_params(x, sigma)
    assert params.shape == (2, c, h, w, model.family.num_params)
    order = model.order().tolist()
    rank = {flat: k for k, flat in enumerate(order)}
    for flat in order:
        ci, ri, wi = flat // (h * w), (flat // w) % h, flat % w
        (grad,) = torch.autograd.grad(params[:, ci, ri, wi].sum(), x, retain_graph=True)
        g = grad.abs().sum(0).reshape(-1)
        later = [j for j in range(c * h * w) if rank[j] >= rank[flat]]
        assert float(g[later].max()) == 0.0, f"dimension {flat} sees a later dimension"
        if rank[flat] > 0:
            earlier = [j for j in range(c * h * w) if rank[j] < rank[flat]]
            assert float(g[earlier].max()) > 0.0


def test_rgb_coupling_uses_earlier_channels_of_the_pixel(device) -> None:
    # Channel 2 of pixel (0, 0) is the 3rd dimension: it must depend on channels 0 and 1 of
    # that same pixel (the coupling), and channel 0 of pixel (0, 0) on nothing.
    model = _model((3, 4, 4), device)
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64, device=device).requires_grad_(True)
    params = model.conditional_params(x, torch.zeros(1, dtype=torch.float64, device=device))
    (g,) = torch.autograd.grad(params[0, 2, 0, 0].sum(), x)
    assert g[0, 0, 0, 0] != 0 and g[0, 1, 0, 0] != 0
    assert float(g.abs().sum() - g[0, :2, 0, 0].abs().sum()) == 0.0


def test_discretized_mass_sums_to_one_over_the_grid(device) -> None:
    # 1x2x2 image with 3 bins: 3**4 = 81 grid points; the masses must sum to 1. Tolerance
    # 1e-10 in float64: a sum of 81 terms each accurate to ~1e-15.
    model = _model((1, 2, 2), device, bins=3)
    levels = torch.linspace(-1, 1, 3, dtype=torch.float64, device=device)
    grid = torch.tensor(list(itertools.product(levels.tolist(), repeat=4)), device=device)
    x = grid.reshape(-1, 1, 2, 2).to(torch.float64)
    with torch.no_grad():
        total = model(0.0).log_prob(x).exp().sum()
    assert abs(float(total) - 1.0) < 1e-10


def test_density_integrates_to_one_at_positive_sigma(device) -> None:
    # 1x1x2 image at sigma = 0.3: trapezoid rule on [-10, 10]^2 with 301^2 nodes. An untrained
    # head has logistic scales ~1, so the tails beyond 10 carry ~1e-4 of the mass and the
    # rule's error (h = 0.067) is ~1e-4; |integral - 1| < 2e-3 still catches any missing
    # Jacobian or unnormalised conditional (those are off by O(1)).
    model = _model((1, 1, 2), device, bins=None, family="logistic_mixture")
    t = torch.linspace(-10, 10, 301, dtype=torch.float64, device=device)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    x = torch.stack([xx, yy], -1).reshape(-1, 1, 1, 2)
    with torch.no_grad():
        p = model(0.3).log_prob(x).exp().reshape(301, 301)
    integral = torch.trapezoid(torch.trapezoid(p, t, dim=1), t)
    assert abs(float(integral) - 1.0) < 2e-3


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 4, 4)])
def test_score_matches_finite_differences(shape, device) -> None:
    # Central differences with step 1e-5 in float64: truncation error ~1e-10 * |f'''|,
    # rounding ~1e-16/1e-5 = 1e-11; a relative tolerance of 1e-6 is far above both and far
    # below any real error (a missing cross term changes the score at O(1)).
    model = _model(shape, device)
    dist = model(0.4)
    x = 0.5 * torch.randn(2, *shape, dtype=torch.float64, device=device)
    score = dist.score(x)
    eps = 1e-5
    flat = x.reshape(2, -1)
    for j in range(0, flat.shape[1], 5):
        e = torch.zeros_like(flat)
        e[:, j] = eps
        up = dist.log_prob((flat + e).reshape(x.shape))
        down = dist.log_prob((flat - e).reshape(x.shape))
        fd = (up - down) / (2 * eps)
        torch.testing.assert_close(score.reshape(2, -1)[:, j], fd, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(dist.denoise(x), x + 0.16 * score)


# (1, 16, 16) has two down-sampling levels (band of 4 rows, columns cut to multiples of 4) and
# (3, 16, 8) one level with colour coupling: the band, column and refresh logic at every level.
@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 4, 4), (1, 8, 8), (1, 16, 16), (3, 16, 8)])
def test_cached_sampling_equals_naive(shape, device) -> None:
    # At sigma = 0 the draws are grid values: the cached sampler must return bit-identical
    # samples. At sigma > 0 the draws are continuous and the two samplers run the same
    # convolutions on differently sized tensors, which may change the last bit of a float64
    # sum; 1e-12 is ~1e4 ulps and far below any real difference (a wrong cache changes a
    # conditional at O(1)).
    model = _model(shape, device)
    for s, exact in ((0.0, True), (0.3, False)):
        sigma = torch.full((4,), s, dtype=torch.float64, device=device)
        fast = model.ancestral_sample(model.family, sigma, torch.Generator(device).manual_seed(3))
        slow = model.naive_ancestral_sample(
            model.family, sigma, torch.Generator(device).manual_seed(3)
        )
        if exact:
            assert torch.equal(fast, slow)
        else:
            torch.testing.assert_close(fast, slow, rtol=0, atol=1e-12)
    # The distribution's sample() uses the cached sampler.
    x = model(0.0).sample((4,), generator=torch.Generator(device).manual_seed(3))
    ref = model.ancestral_sample(
        model.family, torch.zeros(4, dtype=torch.float64, device=device),
        torch.Generator(device).manual_seed(3),
    )
    assert torch.equal(x, ref)


def test_samples_follow_the_model(device) -> None:
    # Goodness of fit on a 1x1x2 image with 3 bins: 9 outcomes, exact masses from log_prob;
    # 4000 cached draws, chi-square with 8 dof: P(chi2 > 26.1) = 0.001.
    model = _model((1, 1, 2), device, bins=3)
    levels = torch.linspace(-1, 1, 3, dtype=torch.float64, device=device)
    grid = torch.cartesian_prod(levels, levels).reshape(9, 1, 1, 2)
    probs = model(0.0).log_prob(grid).exp()
    x = model(0.0).sample((4000,), generator=torch.Generator(device).manual_seed(0))
    idx = ((x.reshape(-1, 2) + 1) / 1.0).round().long()
    counts = torch.bincount(idx[:, 0] * 3 + idx[:, 1], minlength=9).to(probs)
    chi2 = float(((counts - 4000 * probs.detach()) ** 2 / (4000 * probs.detach())).sum())
    assert chi2 < 26.1


def test_cifar10_config_is_constructible() -> None:
    model = PixelCNNPP((3, 32, 32), filters=160, resnets=5, components=10, bins=256, dropout=0.5)
    assert model.levels == 2
    n = sum(p.numel() for p in model.parameters())
    assert 40e6 < n < 70e6  # the published model has ~53M parameters
    assert model.num_outputs == 3 * 30 + 30  # 10 mixtures x (logit, mu, s) x 3 + 3 x 10 coefs


def test_config_roundtrip_and_state_dict(tmp_path, device) -> None:
    model = _model((1, 8, 8), device)
    config = json.loads(json.dumps(model.config))
    clone = PixelCNNPP(**config).to(device=device, dtype=torch.float64).eval()
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    clone.load_state_dict(torch.load(path, weights_only=True))
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, device=device)
    torch.testing.assert_close(clone(0.2).log_prob(x), model(0.2).log_prob(x))


def test_noise_conditioning_changes_the_output(device) -> None:
    model = _model((1, 4, 4), device)
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64, device=device)
    assert not torch.allclose(model(0.1).log_prob(x), model(0.9).log_prob(x))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shape"):
        PixelCNNPP((4, 4))
    with pytest.raises(ValueError, match="filters"):
        PixelCNNPP((1, 4, 4), filters=0)
    with pytest.raises(ValueError, match="dropout"):
        PixelCNNPP((1, 4, 4), dropout=1.0)
    model = PixelCNNPP((1, 4, 4), filters=4, resnets=1, bins=5)
    with pytest.raises(ValueError):
        model(0.0).log_prob(torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError):
        model(-1.0)


def test_training_step_reduces_loss(device) -> None:
    # A few Adam steps on a fixed batch must lower the NCMLE loss (catches a detached graph).
    from ncmle_prob.objectives import NoiseLevelPrior, ncmle_loss

    model = PixelCNNPP((1, 4, 4), filters=8, resnets=1, components=2, bins=5, dropout=0.1)
    model = model.to(device)
    x0 = (torch.randint(0, 5, (32, 1, 4, 4), device=device) / 2.0 - 1.0)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    prior = NoiseLevelPrior.mle()
    first = float(ncmle_loss(model, x0, prior).detach())
    for _ in range(30):
        opt.zero_grad()
        ncmle_loss(model, x0, prior).backward()
        opt.step()
    assert float(ncmle_loss(model, x0, prior).detach()) < first - 1.0
    assert math.isfinite(first)


def test_every_registered_sampler_runs(device) -> None:
    # Each registered sampler returns finite draws of the right shape on the grid (σ = 0
    # target, discretized family: the Langevin samplers finish with Tweedie + snapping). The
    # Pyro MCMC samplers (registered by ncmle_prob.infer; imported here so the list does not
    # depend on which tests ran before) need a density: at σ = 0 they must refuse with a clear
    # error, and at σ > 0 they must run.
    from ncmle_prob import infer, samplers  # noqa: F401

    model = _model((1, 4, 4), device)
    dist = model(0.0)
    levels = torch.linspace(-1, 1, 5, dtype=torch.float64, device=device)
    for name in samplers.available():
        spec = samplers.options(name)
        opts = {k: 3 for k in ("steps_per_level", "num_levels", "warmup_steps") if k in spec}
        g = torch.Generator(device).manual_seed(0)
        if name.startswith("pyro_"):
            with pytest.raises(ValueError, match="needs a density"):
                samplers.sample(dist, 3, name, generator=g, **opts)
            x = samplers.sample(model(0.2), 3, name, generator=g, **opts)
            assert x.shape == (3, 1, 4, 4) and bool(torch.isfinite(x).all()), name
            continue
        x = samplers.sample(dist, 3, name, generator=g, **opts)
        assert x.shape == (3, 1, 4, 4), name
        assert torch.isfinite(x).all(), name
        assert torch.isin(x, levels).all(), name


def test_generic_loop_follows_the_model_order_for_colour_images() -> None:
    # Colour images are sampled pixel by pixel with the channels inside each pixel, not in the
    # flat (C, H, W) order; the distribution's generic loop must follow model.order() and then
    # draw exactly what the cached sampler draws (same generator stream, float64).
    torch.manual_seed(0)
    model = PixelCNNPP((3, 4, 4), filters=8, resnets=1, bins=5, components=2).double()
    sigma = torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64)
    cached = model.ancestral_sample(model.family, sigma, torch.Generator().manual_seed(1))
    generic = model(sigma)._ancestral_loop(sigma, torch.Generator().manual_seed(1))
    torch.testing.assert_close(generic, cached, rtol=0, atol=1e-12)
