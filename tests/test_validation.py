"""Bad input (DESIGN.md §2): each case raises the documented error type with a message that
names the argument (asserted with ``match=``); none silently returns NaN.

The generic cases (σ, event shape, NaN/inf data, dtype, device, σ shaped like x) also run over
every registry entry in ``test_properties.py::test_validation_errors``; this file covers the
constructors and the cases specific to one class.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from ncmle_prob.distributions import (
    NoiseConditionalAutoregressive,
    NoisyGaussian,
    NoisyGaussianMixture,
    get_family,
)
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior, bits_per_dim, ncmle_loss


def _made(family: str = "gaussian", **kw: object) -> MADE:
    opts = {"discretized_logistic_mixture": {"components": 2, "bins": 5}}.get(family, {})
    return MADE(2, hidden_features=8, num_blocks=1, family=family, **opts, **kw)


def _disc() -> MADE:
    return _made("discretized_logistic_mixture")


EYE1 = torch.eye(1)
NAN, INF = math.nan, math.inf

CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    # ---- σ: negative, NaN, inf, wrong type, anywhere it enters
    ("sigma<0 model()", lambda: _made()(-0.5), ValueError, r"sigma must be >= 0 .* got -0\.5"),
    ("sigma nan model()", lambda: _made()(NAN), ValueError, "sigma must be finite, got nan"),
    ("sigma inf at()", lambda: _made()().at(INF), ValueError, "sigma must be finite, got inf"),
    ("sigma<0 tensor", lambda: _made()(torch.tensor([0.1, -1.0])), ValueError,
     r"sigma must be >= 0 .*\[0\.1, -1\] \(shape \(2,\)\)"),
    ("sigma str", lambda: _made()("0.1"), TypeError, "sigma must be a float or a torch.Tensor"),
    ("sigma bool", lambda: _made()(True), TypeError, "sigma must be a float or a torch.Tensor"),
    ("sigma complex", lambda: _made()(torch.tensor([1j])), TypeError,
     "sigma must be a real tensor"),
    ("sigma<0 oracle", lambda: NoisyGaussian(torch.zeros(1), EYE1, sigma=-1.0), ValueError,
     "sigma must be >= 0"),
    ("sigma<0 bits_per_dim", lambda: bits_per_dim(_made()(), torch.zeros(3, 2), -1.0),
     ValueError, "sigma must be >= 0"),
    ("sigma batch mismatch",
     lambda: _made()().log_prob(torch.zeros(3, 2), torch.ones(4)), ValueError,
     r"sigma of shape \(4,\) does not broadcast against the batch dims \(3,\)"),
    ("bound sigma vs oracle batch",
     lambda: NoisyGaussian(torch.zeros(3, 1), EYE1, sigma=torch.ones(4)), ValueError,
     r"sigma has shape \(4,\), which does not broadcast against .* batch_shape \(3,\)"),
    # ---- σ shaped like x including its event dims (it broadcasts against batch dims only)
    ("sigma like x (N,1)", lambda: _made()().log_prob(torch.zeros(5, 2), torch.ones(5, 1)),
     ValueError, r"sigma has shape \(5, 1\), shaped like x \(5, 2\) including its event dims"),
    ("sigma like x (N,D)", lambda: _made()().log_prob(torch.zeros(2, 2), torch.ones(2, 2)),
     ValueError, r"sigma has shape \(2, 2\), shaped like x \(2, 2\)"),
    ("sigma like x score", lambda: _made()().score(torch.zeros(2, 2), torch.ones(2, 2)),
     ValueError, "shaped like x"),
    # ---- data: event shape, NaN/inf, dtype, device, type
    ("x event shape", lambda: _made()().log_prob(torch.zeros(4, 3)), ValueError,
     r"x has shape \(4, 3\) but the trailing dims must equal event_shape \(2,\)"),
    ("x scalar", lambda: _made()().log_prob(torch.tensor(0.0)), ValueError,
     r"x has shape \(\) but the trailing dims must equal event_shape"),
    ("x nan", lambda: _made()().log_prob(torch.tensor([[0.0, NAN]])), ValueError,
     r"x contains 1 NaN or infinite entries \(shape \(1, 2\)\)"),
    ("x inf score", lambda: _made()(0.1).score(torch.tensor([[INF, 0.0]])), ValueError,
     "x contains 1 NaN or infinite"),
    ("x inf denoise", lambda: _made()(0.1).denoise(torch.tensor([[-INF, 0.0]])), ValueError,
     "x contains 1 NaN or infinite"),
    ("x dtype", lambda: _made()().log_prob(torch.zeros(3, 2, dtype=torch.float64)),
     TypeError, r"x has dtype torch.float64 but the distribution computes in torch.float32"),
    ("x int dtype", lambda: _made()().log_prob(torch.zeros(3, 2, dtype=torch.long)),
     TypeError, "x has dtype torch.int64"),
    ("x float32 vs model.double()",
     lambda: _made().double()().log_prob(torch.zeros(3, 2)), TypeError,
     r"x has dtype torch.float32 but the distribution computes in torch.float64"),
    ("x device", lambda: _made()().log_prob(torch.zeros(3, 2, device="meta")), ValueError,
     "x is on device meta but the distribution is on cpu"),
    ("sigma device", lambda: _made()().log_prob(torch.zeros(3, 2),
                                                torch.ones(3, device="meta")),
     ValueError, "sigma is on device meta but the distribution is on cpu"),
    ("x list", lambda: _made()().log_prob([[0.0, 0.0]]), TypeError,
     "x must be a torch.Tensor, got list"),
    ("oracle x dtype",
     lambda: NoisyGaussian(torch.zeros(1), EYE1).log_prob(torch.zeros(1, dtype=torch.float64)),
     TypeError, "x has dtype torch.float64"),
    # ---- discretized family at σ = 0: data on the grid, no score
    ("off-grid at sigma 0", lambda: _disc()().log_prob(torch.full((3, 2), 0.1)), ValueError,
     r"x must lie on the grid of bins=5 levels in \[-1, 1\] where sigma == 0"),
    ("outside [-1,1] at sigma 0", lambda: _disc()().log_prob(torch.full((3, 2), 1.5)),
     ValueError, "x must lie on the grid of bins=5"),
    ("off-grid where sigma 0 only",
     lambda: _disc()().log_prob(torch.full((2, 2), 0.1), torch.tensor([0.0, 0.5])),
     ValueError, "x must lie on the grid"),
    ("score at sigma 0 discretized", lambda: _disc()().score(torch.zeros(3, 2)), ValueError,
     "score is undefined at sigma = 0 for a discretized family"),
    ("score where some sigma 0",
     lambda: _disc()().score(torch.zeros(2, 2), torch.tensor([0.0, 0.5])), ValueError,
     "score is undefined at sigma = 0"),
    # ---- families by name and options
    ("family name", lambda: get_family("laplace"), ValueError,
     r"family must be one of \['discretized_logistic_mixture', 'gaussian', .*got 'laplace'"),
    ("family type", lambda: get_family(3), ValueError, "family must be one of"),
    ("family option", lambda: get_family("gaussian", components=3), ValueError,
     r"family 'gaussian' does not take the options \['components'\]"),
    ("bins for continuous", lambda: get_family("logistic_mixture", bins=5), ValueError,
     r"family 'logistic_mixture' does not take the options \['bins'\]"),
    ("components 0", lambda: get_family("gaussian_mixture", components=0), ValueError,
     "components must be an integer >= 1, got 0"),
    ("components 2.5", lambda: get_family("logistic_mixture", components=2.5), ValueError,
     "components must be an integer >= 1, got 2.5"),
    ("components str", lambda: get_family("logistic_mixture", components="3"), ValueError,
     "components must be an integer >= 1, got '3'"),
    ("bins 1", lambda: get_family("discretized_logistic_mixture", bins=1), ValueError,
     "bins must be an integer >= 2, got 1"),
    ("bins str", lambda: get_family("discretized_logistic_mixture", bins="a"), ValueError,
     "bins must be an integer >= 2, got 'a'"),
    ("bins inf", lambda: get_family("discretized_logistic_mixture", bins=INF), ValueError,
     "bins must be an integer >= 2, got inf"),
    # ---- MADE arguments
    ("MADE features 0", lambda: MADE(0), ValueError, "features must be an integer >= 1, got 0"),
    ("MADE features 2.5", lambda: MADE(2.5), ValueError, "features must be an integer >= 1"),
    ("MADE features str", lambda: MADE("a"), ValueError, "features must be an integer >= 1"),
    ("MADE hidden 0", lambda: MADE(2, hidden_features=0), ValueError,
     "hidden_features must be an integer >= 1, got 0"),
    ("MADE num_blocks -1", lambda: MADE(2, num_blocks=-1), ValueError,
     "num_blocks must be an integer >= 0, got -1"),
    ("MADE noise_features 0", lambda: MADE(2, noise_features=0), ValueError,
     "noise_features must be an integer >= 1, got 0"),
    ("MADE activation", lambda: MADE(2, activation="swish"), ValueError,
     r"activation must be one of \['elu', .*got 'swish'"),
    ("MADE dropout 1", lambda: MADE(2, dropout=1.0), ValueError,
     r"dropout must be in \[0, 1\), got 1.0"),
    ("MADE dropout nan", lambda: MADE(2, dropout=NAN), ValueError, "dropout must be in"),
    ("MADE family", lambda: MADE(2, family="laplace"), ValueError, "family must be one of"),
    ("MADE components for gaussian", lambda: MADE(2, components=3), ValueError,
     "does not take the options"),
    ("MADE bins 1", lambda: MADE(2, family="discretized_logistic_mixture", bins=1),
     ValueError, "bins must be an integer >= 2"),
    # ---- NoiseLevelPrior arguments
    ("prior p_zero", lambda: NoiseLevelPrior(p_zero=1.5), ValueError,
     r"p_zero must be in \[0, 1\], got 1.5"),
    ("prior p_zero nan", lambda: NoiseLevelPrior(p_zero=NAN), ValueError, "p_zero must be in"),
    ("prior p_zero str", lambda: NoiseLevelPrior(p_zero="0.2"), TypeError,
     "p_zero must be a number, got str"),
    ("prior sigma_min 0", lambda: NoiseLevelPrior(sigma_min=0.0), ValueError,
     r"need 0 < sigma_min <= sigma_max .*sigma_min=0.0"),
    ("prior min > max", lambda: NoiseLevelPrior(sigma_min=2.0, sigma_max=1.0), ValueError,
     "sigma_min=2.0, sigma_max=1.0"),
    ("prior sigma_max inf", lambda: NoiseLevelPrior(sigma_max=INF), ValueError,
     "sigma_max=inf"),
    ("prior sigma_min str", lambda: NoiseLevelPrior(sigma_min="a"), TypeError,
     "sigma_min must be a number, got str"),
    ("prior kind", lambda: NoiseLevelPrior(kind="gamma"), ValueError,
     "kind must be 'log_uniform', 'uniform' or 'ladder', got 'gamma'"),
    ("prior empty ladder", lambda: NoiseLevelPrior(kind="ladder"), ValueError,
     "kind='ladder' needs a non-empty ladder"),
    ("prior ladder < 0", lambda: NoiseLevelPrior.from_ladder([0.1, -1.0]), ValueError,
     "ladder levels must be finite and >= 0"),
    ("prior ladder nan", lambda: NoiseLevelPrior.from_ladder([NAN]), ValueError,
     "ladder levels must be finite"),
    ("prior ladder str", lambda: NoiseLevelPrior(kind="ladder", ladder=("a",)), TypeError,
     "ladder must be a tuple of numbers"),
    ("prior fixed < 0", lambda: NoiseLevelPrior.fixed(-0.1), ValueError,
     "ladder levels must be finite and >= 0"),
    ("prior sample num", lambda: NoiseLevelPrior().sample(-1), ValueError,
     "num must be an integer >= 0, got -1"),
    # ---- ncmle_loss / bits_per_dim
    ("loss prior type", lambda: ncmle_loss(_made(), torch.zeros(4, 2), prior=0.5), TypeError,
     "prior must be a NoiseLevelPrior, got float"),
    ("loss x0 list", lambda: ncmle_loss(_made(), [[0.0, 0.0]]), TypeError,
     "x0 must be a torch.Tensor, got list"),
    ("loss x0 no batch", lambda: ncmle_loss(_made(), torch.zeros(2)), ValueError,
     r"x0 must have shape \(N, \*event_shape\)"),
    ("loss x0 nan", lambda: ncmle_loss(_made(), torch.full((4, 2), NAN)), ValueError,
     "x0 contains 8 NaN or infinite entries"),
    ("loss x0 shape", lambda: ncmle_loss(_made(), torch.zeros(4, 3)), ValueError,
     r"has shape \(4, 3\) but the trailing dims must equal event_shape \(2,\)"),
    ("loss model type", lambda: ncmle_loss("model", torch.zeros(4, 2)), TypeError,
     "model_or_dist must be a NoiseConditionalDistribution"),
    ("bits_per_dim bins", lambda: bits_per_dim(_made()(), torch.zeros(3, 2), bins=1),
     ValueError, "bins must be an integer >= 2, got 1"),
    # ---- oracles
    ("oracle loc scalar", lambda: NoisyGaussian(torch.tensor(0.0), EYE1), ValueError,
     r"loc must have shape \(..., D\), got \(\)"),
    ("oracle loc nan", lambda: NoisyGaussian(torch.tensor([NAN]), EYE1), ValueError,
     "loc contains 1 NaN"),
    ("oracle cov not square", lambda: NoisyGaussian(torch.zeros(2), torch.zeros(2, 3)),
     ValueError, r"covariance_matrix must have shape \(..., D, D\), got \(2, 3\)"),
    ("oracle cov vs loc", lambda: NoisyGaussian(torch.zeros(2), torch.eye(3)), ValueError,
     r"covariance_matrix has shape \(3, 3\) but loc has D = 2"),
    ("oracle cov dtype", lambda: NoisyGaussian(torch.zeros(2), torch.eye(2, dtype=torch.float64)),
     TypeError, "covariance_matrix has dtype torch.float64 but loc has torch.float32"),
    ("oracle cov asymmetric",
     lambda: NoisyGaussian(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]])),
     ValueError, "covariance_matrix must be symmetric"),
    ("oracle cov not PD",
     lambda: NoisyGaussian(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]])),
     ValueError, "covariance_matrix must be positive definite"),
    ("oracle cov nan", lambda: NoisyGaussian(torch.zeros(1), torch.tensor([[NAN]])),
     ValueError, "covariance_matrix contains 1 NaN"),
    ("oracle list", lambda: NoisyGaussian([0.0], EYE1), TypeError,
     "loc and covariance_matrix must be torch.Tensors"),
    ("mixture weights < 0",
     lambda: NoisyGaussianMixture(torch.tensor([-1.0, 2.0]), torch.zeros(2, 1),
                                  EYE1.expand(2, 1, 1)),
     ValueError, "weights must be non-negative with a positive sum"),
    ("mixture weights zero",
     lambda: NoisyGaussianMixture(torch.zeros(2), torch.zeros(2, 1), EYE1.expand(2, 1, 1)),
     ValueError, "weights must be non-negative with a positive sum"),
    ("mixture weights K",
     lambda: NoisyGaussianMixture(torch.ones(3), torch.zeros(2, 1), EYE1.expand(2, 1, 1)),
     ValueError, r"weights must have shape \(..., K\) with K = 2"),
    ("mixture covs K",
     lambda: NoisyGaussianMixture(torch.ones(2), torch.zeros(2, 1), EYE1.expand(3, 1, 1)),
     ValueError, r"covariance_matrices must have shape \(..., 2, 1, 1\), got \(3, 1, 1\)"),
    ("mixture locs", lambda: NoisyGaussianMixture(torch.ones(2), torch.zeros(2), EYE1),
     ValueError, r"locs must have shape \(..., K, D\)"),
    # ---- the AR distribution and expand
    ("conditioner", lambda: NoiseConditionalAutoregressive(torch.nn.Linear(2, 2),
                                                           get_family("gaussian")),
     TypeError, "conditioner must define event_shape and conditional_params"),
    ("family instance", lambda: NoiseConditionalAutoregressive(_made(), "gaussian"),
     TypeError, "family must be a ConditionalFamily, got str"),
    ("expand", lambda: _made()(torch.ones(3)).expand((2,)), ValueError,
     r"expand: batch_shape \(2,\) is not a broadcast of the current batch_shape \(3,\)"),
]


@pytest.mark.parametrize(("call", "error", "match"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(call: Callable[[], object], error: type[Exception],
                                        match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_cheap_checks_hold_without_validate_args() -> None:
    """Checks that cost no device work (a Python-number σ, shapes, dtypes, devices) do not
    depend on ``validate_args`` (a wrong shape would otherwise broadcast silently); scans (a
    tensor σ, NaN data) are the caller's business when they switch validation off, as in
    torch."""
    d = _made()(validate_args=False)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        d.log_prob(torch.zeros(3, 2), -1.0)
    with pytest.raises(ValueError, match="x has shape"):
        d.log_prob(torch.zeros(3, 1))
    with pytest.raises(TypeError, match="x has dtype"):
        d.log_prob(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="shaped like x"):
        d.log_prob(torch.zeros(3, 2), torch.ones(3, 1))
    # with validation (the default) the same NaN is a clear error, never a NaN result
    with pytest.raises(ValueError, match="x contains"):
        _made()(validate_args=True).log_prob(torch.tensor([[NAN, 0.0]]))


def test_valid_edge_cases_are_accepted_and_finite() -> None:
    """Near-misses of the rules above are fine: σ = 0 exactly, integral floats for integer
    options, a per-example σ of the batch shape, grid values computed in float32."""
    model = MADE(2.0, hidden_features=8.0, num_blocks=0, family="discretized_logistic_mixture",
                 components=2.0, bins=5)
    grid = torch.linspace(-1, 1, 5)[torch.tensor([[0, 4], [1, 3], [2, 2]])]
    lp = model().log_prob(grid, torch.tensor([0.0, 0.3, 0.0]))
    assert lp.shape == (3,) and bool(torch.isfinite(lp).all())
    assert NoiseLevelPrior(p_zero=1.0, sigma_min=0.0).sample(4).eq(0).all()
