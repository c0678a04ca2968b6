"""Checkpoints of old MADE layouts load with identical densities and a one-line warning (σ does
not reach their first dimension), and into the default layout with a clear error: the
nflows-based MADE (ncmle_prob 0.1) as ``MADE(layout="nflows")``, and the MADE before the σ fix
(hidden degrees over ``1..D-1``) as ``MADE(layout="no_sigma_units")``.

The old model is rebuilt here as it was: nflows' ``MADE`` with σ's embedding as context, its
hidden degrees spread evenly after construction, and an nflows ``MaskedLinear`` skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from nflows.transforms.made import MADE as NflowsMADE
from nflows.transforms.made import MaskedLinear as NflowsMaskedLinear
from torch import Tensor, nn

from ncmle_prob.distributions import get_family
from ncmle_prob.models import MADE
from ncmle_prob.models.made import is_legacy_state_dict
from ncmle_prob.training import OldLayoutWarning

F64 = torch.float64
ACT = {"elu": F.elu, "tanh": torch.tanh}


def _spread(net: NflowsMADE, features: int) -> None:
    """ncmle_prob 0.1's fix of nflows' cyclic hidden degrees (copied from its made.py)."""
    hidden = net.initial_layer.out_features
    degrees = torch.linspace(1, features - 1, hidden).round().long()
    previous = torch.arange(1, features + 1)
    for layer in net.modules():
        if not isinstance(layer, NflowsMaskedLinear) or layer is net.final_layer:
            continue
        layer.degrees.copy_(degrees)
        layer.mask.copy_((degrees[:, None] >= previous[None, :]).to(layer.mask.dtype))
        previous = degrees
    out = net.final_layer.degrees
    net.final_layer.mask.copy_((out[:, None] > degrees[None, :]).to(net.final_layer.mask))


class OldMADE(nn.Module):
    """The parameter layout and forward pass of ncmle_prob 0.1's MADE."""

    def __init__(self, features: int, hidden: int, num_blocks: int, family: str,
                 residual: bool, linear_skip: bool, activation: str, **options: int) -> None:
        super().__init__()
        self.family = get_family(family, **options)
        self.features = features
        ref = MADE(features, hidden, num_blocks, family, **options)  # for its embedding
        self.embedding = ref.embedding
        self.net = NflowsMADE(features, hidden, context_features=self.embedding.num_features,
                              num_blocks=num_blocks, output_multiplier=self.family.num_params,
                              use_residual_blocks=residual, activation=ACT[activation])
        _spread(self.net, features)
        self.skip = None
        if linear_skip:
            self.skip = NflowsMaskedLinear(torch.arange(1, features + 1), features, features,
                                           random_mask=False, is_output=True, bias=False)
            loc = torch.zeros(self.family.num_params)
            loc[self.family.location_params] = 1.0
            self.register_buffer("_loc_mask", loc, persistent=False)
        with torch.no_grad():  # nflows starts residual blocks near zero: make them count
            for p in self.net.parameters():
                p.add_(0.2 * torch.randn_like(p))

    def log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        out = self.net(x, self.embedding(sigma)).view(x.shape[0], self.features, -1)
        if self.skip is not None:
            out = out + self.skip(x).unsqueeze(-1) * self._loc_mask
        return self.family.log_prob(out, x, sigma[:, None]).sum(-1)


CASES = [
    dict(num_blocks=2, residual=True, linear_skip=False, family="gaussian", options={}),
    dict(num_blocks=1, residual=False, linear_skip=True, family="logistic_mixture",
         options={"components": 3}),
    dict(num_blocks=2, residual=True, linear_skip=True, family="gaussian_mixture",
         options={"components": 2}),
]


def _pair(case: dict, activation: str = "elu") -> tuple[OldMADE, dict]:
    torch.manual_seed(0)
    old = OldMADE(5, 12, case["num_blocks"], case["family"], case["residual"],
                  case["linear_skip"], activation, **case["options"]).double()
    config = dict(features=5, hidden_features=12, num_blocks=case["num_blocks"],
                  family=case["family"], residual=case["residual"],
                  linear_skip=case["linear_skip"], activation=activation, **case["options"])
    return old, config


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["family"])
def test_old_state_dict_loads_into_legacy_layout_with_identical_log_prob(case: dict) -> None:
    old, config = _pair(case, activation="tanh" if case["residual"] else "elu")
    state = old.state_dict()
    assert is_legacy_state_dict(state)
    new = MADE(**config, legacy_layout=True).double()
    new.load_state_dict(state)  # strict: every key converted, none missing
    assert new.config["layout"] == "nflows" and MADE(**new.config).legacy_layout
    x = torch.randn(64, 5, dtype=F64)
    sigma = torch.rand(64, dtype=F64) * torch.tensor([0.0, 1.0], dtype=F64).repeat(32)
    # Same parameters, same operations: the float64 results agree to rounding (~1e-15); a
    # wrongly mapped weight or a missing context term changes log_prob by O(0.1).
    torch.testing.assert_close(new(sigma).log_prob(x), old.log_prob(x, sigma),
                               rtol=0, atol=1e-10)
    xg = x.clone().requires_grad_(True)
    (g_old,) = torch.autograd.grad(old.log_prob(xg, sigma + 0.1).sum(), xg)
    torch.testing.assert_close(new(sigma + 0.1).score(x), g_old, rtol=0, atol=1e-10)
    # The input dict is untouched (load_state_dict converts a copy).
    assert is_legacy_state_dict(state)


def test_legacy_layout_cached_sampler_equals_generic_loop() -> None:
    old, config = _pair(CASES[2])
    model = MADE(**config, legacy_layout=True).double()
    model.load_state_dict(old.state_dict())
    sigma = torch.tensor([0.0, 0.4, 1.3], dtype=F64)
    fast = model.ancestral_sample(model.family, sigma, torch.Generator().manual_seed(3))
    slow = model(sigma)._ancestral_loop(sigma, torch.Generator().manual_seed(3))
    # Same generator stream, same arithmetic up to summation order (float64: ~1e-15).
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-9)


def test_old_state_dict_into_default_layout_says_how_to_convert() -> None:
    old, config = _pair(CASES[0])
    with pytest.raises(ValueError, match=r"nflows-based MADE .* layout='nflows'") as info:
        MADE(**config).double().load_state_dict(old.state_dict())
    # The message spells out the constructor call that loads it.
    assert "MADE(features=5, hidden_features=12, num_blocks=2" in str(info.value)


def test_old_state_dict_with_other_masks_is_refused() -> None:
    old, config = _pair(CASES[0])
    state = old.state_dict()
    state["net.initial_layer.mask"] = torch.ones_like(state["net.initial_layer.mask"])
    with pytest.raises(ValueError, match=r"net.initial_layer.mask.*cannot be converted"):
        MADE(**config, legacy_layout=True).double().load_state_dict(state)


def test_new_state_dicts_store_no_masks_and_round_trip() -> None:
    model = MADE(4, 8, linear_skip=True)
    state = model.state_dict()
    assert not is_legacy_state_dict(state)
    assert not [k for k in state if k.endswith((".mask", ".degrees"))]
    again = MADE(**model.config)
    again.load_state_dict(state)
    x = torch.randn(3, 4)
    torch.testing.assert_close(again(0.2).log_prob(x), model(0.2).log_prob(x), rtol=0, atol=0)


def test_old_checkpoint_file_loads_through_load_model(tmp_path) -> None:
    """A checkpoint file written by ncmle_prob 0.1 (nflows-era weights, a config without
    ``layout``) is rebuilt by ``load_model`` in the legacy layout with identical
    densities; ``check_compatible`` compares it with the converted weights."""
    from ncmle_prob.training.checkpoint import load_model, save_checkpoint

    case = CASES[1]
    old, config = _pair(case)
    path = save_checkpoint(tmp_path / "old.pt", MADE(**config).double(), step=7)
    payload = torch.load(path, weights_only=True)
    payload["model"] = old.state_dict()  # what 0.1 stored: masks and degrees included
    stored = json.loads(payload["model_config"])
    del stored["layout"]  # 0.1 wrote no layout
    payload["model_config"] = json.dumps(stored)
    torch.save(payload, path)
    with pytest.warns(OldLayoutWarning, match="layout 'nflows'.*does not reach dimension 1"):
        loaded = load_model(path).double()  # rebuilt in float32, the default dtype
    assert loaded.legacy_layout
    x = torch.randn(32, 5, dtype=F64)
    sigma = torch.full((32,), 0.3, dtype=F64)
    # Same weights and operations in float64: equal to rounding; a wrong mapping is O(0.1) off.
    torch.testing.assert_close(loaded(sigma).log_prob(x), old.log_prob(x, sigma),
                               rtol=0, atol=1e-10)
    # Into a default-layout model the file is refused with the conversion hint.
    from ncmle_prob.training.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="layout='nflows'"):
        load_model(path, MADE(**config).double())


DATA = Path(__file__).parent / "data"


def test_checkpoint_of_the_pre_fix_made_loads_bit_identically_and_warns_once() -> None:
    """``tests/data/made_no_sigma_units.pt`` was written by the MADE of commit 49b8ca8 (hidden
    degrees over ``1..D-1``, no layout in its config), with the log densities that code computed
    beside it. ``load_model`` rebuilds it as ``layout="no_sigma_units"`` and gives the same
    numbers bit for bit (``atol=0``: the same operations in the same order), warning once, in
    one line, that σ does not reach its first dimension."""
    import warnings

    from ncmle_prob.training.checkpoint import _warned, load_model

    ref = torch.load(DATA / "made_no_sigma_units_reference.pt", weights_only=True)
    _warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(DATA / "made_no_sigma_units.pt")
        load_model(DATA / "made_no_sigma_units.pt")  # the second load stays silent
    notes = [w for w in caught if issubclass(w.category, OldLayoutWarning)]
    assert len(notes) == 1, [str(w.message) for w in caught]
    message = str(notes[0].message)
    assert "\n" not in message and "does not reach dimension 1" in message
    assert model.layout == "no_sigma_units" and model.config["layout"] == "no_sigma_units"
    torch.testing.assert_close(model(ref["sigma"]).log_prob(ref["x"]), ref["log_prob"],
                               rtol=0, atol=0)
    # The file does not fit a default-layout model: the refusal names the layout.
    from ncmle_prob.training.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="layout='no_sigma_units' \\(model: 'default'\\)"):
        load_model(DATA / "made_no_sigma_units.pt", MADE(**{**model.config, "layout": "default"}))
