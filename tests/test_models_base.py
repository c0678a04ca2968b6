"""The model base classes, the conditioner contract the AR distribution calls, and the masked
network's weight cache."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from ncmle_prob.distributions import (
    AutoregressiveConditioner,
    NoiseConditionalAutoregressive,
    get_family,
)
from ncmle_prob.flows import NoiseConditionalFlow
from ncmle_prob.models import (
    MADE,
    AutoregressiveModel,
    MaskedLinear,
    NoiseConditionalModel,
    PixelCNNPP,
)
from ncmle_prob.models.masked import spread_degrees

F64 = torch.float64


class ReversedAR(AutoregressiveModel):
    """x_i | x_{>i} ~ N(0.5 * x_{i+1}, 1) in the reversed order D-1, ..., 0 (x_{D} := 0)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.event_shape = torch.Size([d])
        self.family = get_family("gaussian")
        self.scale = nn.Parameter(torch.zeros((), dtype=F64))  # log-scale 0: unit variance

    def conditional_params(self, x: Tensor, sigma: Tensor) -> Tensor:
        nxt = torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], dim=1)
        return torch.stack([0.5 * nxt, self.scale.expand_as(x)], dim=-1)

    def order(self) -> Tensor:
        return torch.arange(self.event_shape[0] - 1, -1, -1)


def test_every_model_is_a_noise_conditional_model() -> None:
    made = MADE(3, 8)
    pix = PixelCNNPP((1, 4, 4), filters=4, resnets=1, components=2, bins=5)
    assert isinstance(made, AutoregressiveModel) and isinstance(pix, AutoregressiveModel)
    assert isinstance(made, AutoregressiveConditioner)
    assert isinstance(made(0.1), NoiseConditionalAutoregressive)
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import MaskedAffineAutoregressiveTransform

    from ncmle_prob.models import NoiseEmbedding

    flow = Flow(MaskedAffineAutoregressiveTransform(2, 8, context_features=5),
                StandardNormal([2]))
    wrapped = NoiseConditionalFlow(flow, (2,), NoiseEmbedding(5))
    assert isinstance(wrapped, NoiseConditionalModel)
    assert wrapped.config is None  # a third-party flow is not rebuildable from JSON
    assert MADE(**made.config).config == made.config
    assert PixelCNNPP(**pix.config).config == pix.config


def test_abstract_models_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError, match="abstract"):
        AutoregressiveModel()  # type: ignore[abstract]


def test_custom_order_drives_the_generic_loop() -> None:
    # Sampling in the reversed order is exact: x_{D-1} ~ N(0, 1), x_i ~ N(0.5 x_{i+1}, 1), so
    # Var(x_0) = 1 + 0.25 + 0.0625 = 1.3125 at D = 3. The natural order 0..D-1 would read
    # x_{i+1} before drawing it (still 0) and give Var = 1 for every coordinate.
    model = ReversedAR(3)
    x = model(0.0).sample((40000,), generator=torch.Generator().manual_seed(0))
    var = x.var(0)
    expected = torch.tensor([1.3125, 1.25, 1.0], dtype=F64)
    # Monte Carlo: the variance estimate has sd ~ var * sqrt(2 / n) <= 0.01; 0.05 is 5 sd.
    torch.testing.assert_close(var, expected, rtol=0, atol=0.05)
    # and log_prob is the exact Gaussian AR density
    x = torch.randn(5, 3, dtype=F64)
    nxt = torch.cat([x[:, 1:], torch.zeros(5, 1, dtype=F64)], 1)
    ref = torch.distributions.Normal(0.5 * nxt, 1.0).log_prob(x).sum(-1)
    torch.testing.assert_close(model().log_prob(x), ref, rtol=0, atol=1e-12)


def test_plain_modules_get_the_defaults_and_hooks_must_be_declared() -> None:
    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.event_shape = torch.Size([2])
            self.w = nn.Parameter(torch.zeros(()))

        def conditional_params(self, x: Tensor, sigma: Tensor) -> Tensor:
            return torch.zeros(*x.shape, 2) + self.w

    dist = NoiseConditionalAutoregressive(Plain(), get_family("gaussian"))
    assert dist.sample((3,)).shape == (3, 2)  # the generic loop in the natural order

    class WithHook(Plain):
        def order(self) -> Tensor:
            return torch.tensor([1, 0])

    with pytest.raises(TypeError, match="defines order but does not derive from"):
        NoiseConditionalAutoregressive(WithHook(), get_family("gaussian"))


def test_spread_degrees_reach_every_predecessor() -> None:
    deg = spread_degrees(40, 8)
    assert int(deg.min()) == 1 and int(deg.max()) == 39
    assert bool((deg[1:] >= deg[:-1]).all())
    assert torch.equal(spread_degrees(1, 3), torch.zeros(3, dtype=torch.long))


def test_masked_weight_cache_is_used_only_when_safe_and_follows_the_weights() -> None:
    torch.manual_seed(0)
    layer = MaskedLinear(torch.arange(1, 5), torch.arange(1, 5), strict=False)
    x = torch.randn(3, 4)
    layer.eval()
    with torch.no_grad():
        first = layer.masked_weight()
        assert layer.masked_weight() is first  # cached in eval under no_grad
        layer.weight.mul_(2.0)  # an in-place change bumps the version counter
        second = layer.masked_weight()
        assert second is not first
        torch.testing.assert_close(second, 2.0 * first)
        torch.testing.assert_close(layer(x), x @ second.t() + layer.bias)
    # With autograd the product is recomputed, so gradients reach the weight (eval mode too)
    # and respect the mask.
    layer(x).sum().backward()
    assert layer.weight.grad is not None
    assert bool((layer.weight.grad[layer.mask == 0] == 0).all())
    assert bool((layer.weight.grad[layer.mask == 1] != 0).all())
    # In training mode nothing is cached.
    layer.train()
    with torch.no_grad():
        assert layer.masked_weight() is not layer.masked_weight()
    # Frozen weights: cached, and the score w.r.t. the input still works.
    layer.eval().requires_grad_(False)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(layer(xg).sum(), xg)
    torch.testing.assert_close(g, layer.masked_weight().sum(0).expand(3, 4))
    with torch.inference_mode():  # no inference tensor may end up in the cache
        layer(x)
    (g2,) = torch.autograd.grad(layer(xg).sum(), xg)
    torch.testing.assert_close(g2, g)


def test_made_eval_no_grad_equals_training_forward() -> None:
    torch.manual_seed(1)
    model = MADE(6, 16, family="logistic_mixture", components=2, linear_skip=True)
    x, s = torch.randn(7, 6), torch.rand(7)
    ref = model(s).log_prob(x).detach()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(s).log_prob(x), ref, rtol=0, atol=0)
        with torch.no_grad():
            model.net.final_layer.weight.mul_(0.5)  # the cache must notice
        changed = model(s).log_prob(x)
    model.train()
    torch.testing.assert_close(changed, model(s).log_prob(x).detach(), rtol=0, atol=0)
    assert not torch.allclose(changed, ref)
