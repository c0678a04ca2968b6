"""``jacobi``: the ancestral draws by parallel fixed-point iteration.

Exactness: with the same seed the draws equal ``ancestral``'s to 1e-5 (the issue's bound;
the two paths evaluate the same network with a different float summation order, about 1e-7
apart, and on grid data the rounding to a bin absorbs that). A wrong noise order, a wrong
transform or a stop before the fixed point gives differences of order one.
"""

from __future__ import annotations

import pytest
import torch

from ncmle_prob import samplers
from ncmle_prob.distributions import NoisyGaussian
from ncmle_prob.models import MADE, PixelCNNPP

ATOL = 1e-5


def _both(dist, n: int = 16, seed: int = 3, **opts):
    x, info = samplers.sample(dist, n, "jacobi", generator=torch.Generator().manual_seed(seed),
                              return_info=True, **opts)
    y = samplers.sample(dist, n, "ancestral", generator=torch.Generator().manual_seed(seed))
    return x, y, info


MADE_CASES = [
    ("gaussian", None, 0.0), ("gaussian_mixture", None, 0.3), ("logistic_mixture", None, 0.0),
    ("logistic_mixture", None, 0.5), ("discretized_logistic_mixture", 9, 0.0),
    ("discretized_logistic_mixture", 9, 0.2),
]


@pytest.mark.parametrize(("family", "bins", "sigma"), MADE_CASES)
@pytest.mark.parametrize("block_size", [None, 3])
def test_made_jacobi_equals_ancestral(family: str, bins: int | None, sigma: float,
                                      block_size: int | None) -> None:
    torch.manual_seed(0)
    kw = {"components": 3} if "mixture" in family else {}
    if bins:
        kw["bins"] = bins
    model = MADE(8, hidden_features=32, family=family, **kw)
    x, y, info = _both(model(sigma), block_size=block_size)
    assert x.shape == y.shape == (16, 8)
    assert float((x - y).abs().max()) <= ATOL
    assert info.iterations is not None and 1 <= info.iterations <= 8


def test_made_with_batch_sigma_and_the_sigma_option() -> None:
    torch.manual_seed(0)
    model = MADE(5, hidden_features=16, family="logistic_mixture", components=2)
    d = model().at(torch.tensor([0.0, 0.4]))
    x, y, _ = _both(d, n=6)
    assert x.shape == (6, 2, 5) and float((x - y).abs().max()) <= ATOL
    x, info = samplers.sample(model(), 6, "jacobi", sigma=0.4, return_info=True,
                              generator=torch.Generator().manual_seed(1))
    y = samplers.sample(model(), 6, "ancestral", sigma=0.4,
                        generator=torch.Generator().manual_seed(1))
    assert float((x - y).abs().max()) <= ATOL and info.start_sigma == 0.4


@pytest.mark.parametrize(("family", "shape", "sigma"), [
    ("discretized_logistic_mixture", (1, 4, 4), 0.0),
    ("discretized_logistic_mixture", (3, 4, 4), 0.0),  # RGB coupling, channel order
    ("logistic_mixture", (1, 4, 4), 0.3),
    ("discretized_logistic_mixture", (1, 4, 4), 0.1),
])
@pytest.mark.parametrize("block_size", [None, 5])
def test_pixelcnn_jacobi_equals_ancestral(family: str, shape: tuple[int, int, int],
                                          sigma: float, block_size: int | None) -> None:
    torch.manual_seed(0)
    model = PixelCNNPP(shape, filters=8, resnets=1, family=family, components=2, bins=17)
    x, y, info = _both(model(sigma), n=5, block_size=block_size)
    assert float((x - y).abs().max()) <= ATOL
    d = shape[0] * shape[1] * shape[2]
    assert 1 <= info.iterations <= d


def test_tracks_the_converged_prefix_and_stops_early() -> None:
    """A model whose conditionals ignore x (all weights zero): the first pass makes every
    dimension final, the second changes nothing and stops: 2 passes, not D = 6."""
    torch.manual_seed(0)
    model = MADE(6, hidden_features=8, family="gaussian")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    _, _, info = _both(model(0.0))
    assert info.iterations == 2


def test_bad_input_is_a_clear_error() -> None:
    d = NoisyGaussian(torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="needs an autoregressive distribution"):
        samplers.sample(d, 2, "jacobi")
    with pytest.raises(ValueError, match=r"block_size.*>= 1"):
        samplers.get("jacobi", block_size=0)
    with pytest.raises(ValueError, match="'tol'"):
        samplers.get("jacobi", tol=-1.0)


def test_score_corrected_can_start_with_jacobi() -> None:
    torch.manual_seed(0)
    d = MADE(4, hidden_features=16, family="logistic_mixture", components=2)()
    opts = {"num_levels": 2, "steps_per_level": 2}
    x, info = samplers.sample(d, 8, "score_corrected_ancestral", initial="jacobi",
                              generator=torch.Generator().manual_seed(5), return_info=True,
                              **opts)
    y = samplers.sample(d, 8, "score_corrected_ancestral",
                        generator=torch.Generator().manual_seed(5), **opts)
    assert info.iterations is not None and 1 <= info.iterations <= 4
    # the same initial draws and generator stream, so the same corrected draws (up to
    # float rounding amplified by a few accept/reject steps: 1e-4)
    assert float((x - y).abs().max()) <= 1e-4
