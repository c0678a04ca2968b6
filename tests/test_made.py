"""MADE-specific properties: the autoregressive masks, the spread hidden degrees, the optional
linear skip connection and the cached ancestral sampler."""

from __future__ import annotations

import pytest
import torch

from ncmle_prob.models import MADE

F64 = torch.float64
FAMILIES = [
    ("gaussian", {}),
    ("gaussian_mixture", {"components": 3}),
    ("logistic_mixture", {"components": 3}),
    ("discretized_logistic_mixture", {"components": 3, "bins": 7}),
]


def _jacobian_pattern(model: MADE, d: int) -> torch.Tensor:
    """|d params_i / d x_j| summed over the parameters of i, shape (D, D)."""
    x = torch.randn(1, d, dtype=F64)
    sigma = torch.full((1,), 0.3, dtype=F64)
    jac = torch.autograd.functional.jacobian(
        lambda z: model.conditional_params(z, sigma).sum(-1), x
    )
    return jac.reshape(d, d).abs()


@pytest.mark.parametrize("linear_skip", [True, False])
@pytest.mark.parametrize("residual", [True, False])
def test_outputs_see_exactly_their_predecessors(residual: bool, linear_skip: bool) -> None:
    # D = 40 > hidden = 8: with nflows' default degrees (1..8 cyclic) outputs past 9 could not
    # see inputs past 8; spread degrees must let every output i see every input j < i.
    d = 40
    model = MADE(d, hidden_features=8, residual=residual, linear_skip=linear_skip,
                 num_blocks=2).double()
    with torch.no_grad():  # nflows initialises residual blocks near zero; make paths visible
        for p in model.net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    jac = _jacobian_pattern(model, d)
    upper = torch.ones(d, d, dtype=torch.bool).triu()
    assert float(jac[upper].max()) == 0.0  # never depends on x_j for j >= i (exactly)
    lower = ~upper
    if linear_skip:
        # The skip alone connects every pair j < i (random weights: non-zero almost surely).
        assert bool((jac[lower] > 0).all())
    else:
        # Through the hidden layers output i (1-based) sees exactly the inputs j <= r(i), where
        # r(i) is the largest hidden degree below i. Spread degrees make r(40) = 39, where
        # nflows' cyclic degrees 1..8 would stop at 8.
        degrees = model.net.initial_layer.degrees
        reach = torch.tensor([int(degrees[degrees < i].max()) if bool((degrees < i).any())
                              else 0 for i in range(1, d + 1)])
        expected = torch.arange(1, d + 1)[None, :] <= reach[:, None]
        assert torch.equal(jac > 0, expected)
        assert int(reach[-1]) == d - 1


@pytest.mark.parametrize("family,options", FAMILIES)
@pytest.mark.parametrize("residual,num_blocks", [(True, 2), (False, 1), (True, 0)])
@pytest.mark.parametrize("linear_skip", [True, False])
def test_cached_sampler_equals_generic_loop(
    family: str, options: dict, residual: bool, num_blocks: int, linear_skip: bool
) -> None:
    model = MADE(6, hidden_features=12, num_blocks=num_blocks, family=family, residual=residual,
                 linear_skip=linear_skip, **options).double()
    sigma = torch.tensor([0.0, 0.4, 0.0, 1.3], dtype=F64)
    dist = model(sigma)
    fast = model.ancestral_sample(model.family, sigma, torch.Generator().manual_seed(3))
    slow = dist._ancestral_loop(sigma, torch.Generator().manual_seed(3))
    # Same generator stream and the same arithmetic up to summation order: float64 rounding
    # differences are ~1e-15 relative; 1e-9 is far below any real discrepancy (a wrong row or
    # a missed input shifts draws by O(0.1)).
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-9)
    # And the public path uses the cached sampler.
    torch.testing.assert_close(
        dist.sample(generator=torch.Generator().manual_seed(3)), slow, rtol=0, atol=1e-9
    )


def test_linear_skip_is_in_config_and_rebuilds() -> None:
    model = MADE(3, hidden_features=8, linear_skip=False)
    assert model.skip is None and model.config["linear_skip"] is False
    rebuilt = MADE(**model.config)
    assert rebuilt.skip is None
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(4, 3)
    torch.testing.assert_close(rebuilt(0.2).log_prob(x), model(0.2).log_prob(x))


@pytest.mark.parametrize("linear_skip", [False, True])
def test_fast_paths_equal_the_plain_products(linear_skip: bool) -> None:
    """The (parameter, dimension) output order and the split hidden products (H >= 256)
    change no number beyond float rounding, and leave the state dict's keys as they were."""
    from ncmle_prob.models.masked import SPLIT_MIN_WIDTH

    torch.manual_seed(0)
    model = MADE(5, hidden_features=SPLIT_MIN_WIDTH, family="logistic_mixture", components=3,
                 linear_skip=linear_skip).double()
    assert model.net.split is not None
    assert "_param_order" not in model.state_dict()
    for p in model.parameters():  # non-trivial weights everywhere (the blocks start near 0)
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(7, 5, dtype=torch.float64)
    s = torch.rand(7, dtype=torch.float64)
    fast = model.conditional_params(x, s)
    split, model.net.split = model.net.split, None
    h = model.net(x, model.embedding(s)).view(7, 5, -1)  # the interleaved output, one product
    model.net.split = split
    if linear_skip:
        h = h + model.skip(x).unsqueeze(-1) * model._loc_mask
    torch.testing.assert_close(fast, h, rtol=1e-12, atol=1e-12)
    model.eval()
    with torch.no_grad():  # the cached output weights give the same numbers
        torch.testing.assert_close(model.conditional_params(x, s), fast.detach(), rtol=0, atol=0)


def test_old_layouts_keep_one_product_per_layer() -> None:
    for layout in ("no_sigma_units", "nflows"):
        assert MADE(4, hidden_features=512, layout=layout).net.split is None
    assert MADE(4, hidden_features=64).net.split is None


def test_embedding_of_one_broadcast_sigma_equals_the_per_row_embedding() -> None:
    """A stride-0 σ is embedded once and expanded: same values, same gradient."""
    model = MADE(3, hidden_features=8)
    s = torch.tensor(0.3, requires_grad=True)
    shared = model.embedding(s.expand(5))
    rows = model.embedding(s.detach().repeat(5).requires_grad_(True))
    torch.testing.assert_close(shared, rows, rtol=0, atol=0)
    (g,) = torch.autograd.grad(shared.square().sum(), s)
    v = s.detach().repeat(5).requires_grad_(True)
    (gv,) = torch.autograd.grad(model.embedding(v).square().sum(), v)
    torch.testing.assert_close(g, gv.sum())
