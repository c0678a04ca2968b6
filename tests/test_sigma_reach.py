"""σ reaches every conditional (issue 17): the contract check, the models it passes and fails,
and the clear errors of bad σ embeddings.

``check_sigma_reach`` compares every dimension's conditional log density at σ = 0.2 and σ = 1
in float64; a dimension whose conditional ignores σ changes by exactly 0 (MADE's old layouts:
dimension 1's parameters are the output bias), while a σ-aware one changes by O(1e-2) or more
even at initialisation, so the 1e-7 threshold separates them by orders of magnitude.
"""

from __future__ import annotations

import pytest
import torch
from nflows.distributions import StandardNormal
from nflows.flows import Flow
from nflows.transforms import MaskedAffineAutoregressiveTransform
from registry import FAMILY_OPTIONS, seeded
from torch import Tensor, nn

from ncmle_prob.distributions import NoiseConditionalAutoregressive, get_family
from ncmle_prob.flows import NoiseConditionalFlow
from ncmle_prob.models import MADE, NoiseEmbedding
from ncmle_prob.models.masked import hidden_degrees
from ncmle_prob.testing import Example, check_distribution, check_sigma_reach, sigma_reach

#: The message for a first dimension that ignores σ (1-based name, flat index).
FIRST_FROZEN = r"the conditional law of dimension 1 \(index 0;"


def _made_example(family: str, layout: str, features: int = 3) -> Example:
    def make(dtype: torch.dtype, device: torch.device):
        model = seeded(0, lambda: MADE(features, 16, family=family, layout=layout,
                                       **FAMILY_OPTIONS[family]))
        return model.to(device=device, dtype=dtype)(0.3)

    return Example(f"made-{family}-{layout}", make, dim=features,
                   discrete_at_zero=family.startswith("discretized"))


@pytest.mark.parametrize("family", list(FAMILY_OPTIONS))
def test_default_made_passes_and_old_layouts_fail_naming_dimension_1(family: str, device) -> None:
    check_sigma_reach(_made_example(family, "default"), device)
    for layout in ("no_sigma_units", "nflows"):
        ex = _made_example(family, layout)
        with pytest.raises(AssertionError, match=FIRST_FROZEN):
            check_sigma_reach(ex, device)
        change, how = sigma_reach(ex.make(torch.float64, device))
        assert how == "exact" and float(change[0]) == 0.0 and bool((change[1:] > 1e-3).all())


def test_check_distribution_runs_it_and_names_the_check(device) -> None:
    ex = _made_example("gaussian", "no_sigma_units")
    with pytest.raises(AssertionError, match=r"^sigma_reach: sigma does not reach " + FIRST_FROZEN):
        check_distribution(ex.make, only=["sigma_reach"], device=device)
    assert check_distribution(_made_example("gaussian", "default").make,
                              only=["sigma_reach"], device=device) == ["sigma_reach"]


class _SigmaBlind(nn.Module):
    """A user's conditioner that never looks at σ (every dimension frozen)."""

    event_shape = torch.Size([3])

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]]))

    def conditional_params(self, x: Tensor, sigma: Tensor) -> Tensor:
        prefix = torch.cumsum(x, -1) - x  # sees x_<i only
        return self.w + 0.1 * prefix.unsqueeze(-1)


def test_a_user_model_without_sigma_dependence_fails_naming_every_dimension(device) -> None:
    def make(dtype: torch.dtype, device: torch.device):
        blind = _SigmaBlind().to(device=device, dtype=dtype)
        return NoiseConditionalAutoregressive(blind, get_family("gaussian"), 0.3)

    with pytest.raises(AssertionError, match=r"dimension 1 .*dimension 2 .*dimension 3 "):
        check_distribution(make, only=["sigma_reach"], device=device)


def _nflows_maf(noise_affine: bool) -> Example:
    def make(dtype: torch.dtype, device: torch.device):
        def build() -> NoiseConditionalFlow:
            flow = Flow(MaskedAffineAutoregressiveTransform(2, 8, context_features=5),
                        StandardNormal([2]))
            return NoiseConditionalFlow(flow, (2,), NoiseEmbedding(5), noise_affine=noise_affine)

        # nflows' StandardNormal samples in the default dtype: the flow stays float32.
        return seeded(0, build).to(device)(0.3)

    return Example(f"nflows-maf-affine={noise_affine}", make, dim=2)


def test_nflows_maf_ignores_sigma_in_dimension_0_and_the_noise_affine_fixes_it(device) -> None:
    """nflows' MADE gives the context only to hidden units of degree >= 1, so a bare MAF's
    first dimension is σ-blind; the quadrature check (float32 here, ~1e-6 error against the
    1e-4 threshold) sees it, and ``NoiseAffine`` (the default) moves every dimension."""
    with pytest.raises(AssertionError, match=r"dimension 1 \(index 0;.*quadrature"):
        check_sigma_reach(_nflows_maf(False), device)
    check_sigma_reach(_nflows_maf(True), device)


def test_hidden_degrees_include_sigma_only_units() -> None:
    deg = hidden_degrees(40, 8)
    assert int(deg.min()) == 0 and int(deg.max()) == 39
    assert bool((deg[1:] >= deg[:-1]).all())
    model = MADE(5, 20)
    first = model.net.initial_layer
    sigma_only = first.degrees == 0
    assert int(sigma_only.sum()) >= 2
    assert float(first.mask[sigma_only].abs().sum()) == 0.0  # they see no input at all
    # ... and they are all that dimension 1's outputs see.
    final = model.net.final_layer
    assert torch.equal(final.mask[: model.family.num_params].bool(),
                       sigma_only.expand(model.family.num_params, -1))


def test_bad_sigma_embeddings_get_clear_errors() -> None:
    model = MADE(3, 8)
    model.embedding = NoiseEmbedding(9)  # the network takes 17 features
    with pytest.raises(ValueError, match="noise embedding returns 9 features but this MADE"):
        model(0.3).log_prob(torch.zeros(3))

    def maf() -> Flow:
        return Flow(MaskedAffineAutoregressiveTransform(2, 8, context_features=5),
                    StandardNormal([2]))

    with pytest.raises(ValueError, match=r"context of 9 features .*context_features"):
        NoiseConditionalFlow(maf(), (2,), NoiseEmbedding(9))

    class LogSigma(nn.Module):
        def forward(self, sigma: Tensor) -> Tensor:
            return torch.log(sigma)[:, None].expand(-1, 5)

    with pytest.raises(ValueError, match=r"non-finite values at sigma = \[0.0\]"):
        NoiseConditionalFlow(maf(), (2,), LogSigma())
