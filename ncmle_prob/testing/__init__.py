"""Generic checks of the noise-conditional contract, for the library's own distributions and
for yours (as :mod:`pyro.distributions.testing` is for Pyro's).

Three lines run the full contract on a model of your own::

    from ncmle_prob.testing import check_distribution
    make = lambda dtype, device: MyModel(...).to(device=device, dtype=dtype)(sigma=0.3)
    check_distribution(make)

or, in a pytest suite, one test per check::

    @pytest.mark.parametrize("name", checks_for(example))
    def test_contract(name):
        CHECKS[name](example, torch.device("cpu"))

Nothing here imports pytest; SciPy is imported only by the goodness-of-fit check.
"""

from .contracts import (
    check_expand_subclass,
    check_infer_shapes,
    check_jit_trace,
    check_positive_transform,
    check_predictive_shapes,
    check_serialization,
    check_sigma_binding,
    check_support_constraint,
)
from .learnability import SIGMAS, FitReport, fit_report, train_on_oracle
from .properties import (
    GOF_ALPHA,
    NN_ALPHA,
    check_at,
    check_denoise,
    check_expand,
    check_float64,
    check_goodness_of_fit,
    check_normalisation,
    check_per_example_sigma,
    check_score,
    check_score_finite_differences,
    check_shapes,
    check_validation,
    gof_pvalues,
)
from .reach import check_sigma_reach, sigma_reach
from .spec import Example, Factory, raises
from .suite import CHECKS, KINDS, check_distribution, checks_for, checks_of_kind

__all__ = [
    "CHECKS",
    "GOF_ALPHA",
    "KINDS",
    "NN_ALPHA",
    "SIGMAS",
    "Example",
    "Factory",
    "FitReport",
    "check_at",
    "check_denoise",
    "check_distribution",
    "check_expand",
    "check_expand_subclass",
    "check_float64",
    "check_goodness_of_fit",
    "check_infer_shapes",
    "check_jit_trace",
    "check_normalisation",
    "check_per_example_sigma",
    "check_positive_transform",
    "check_predictive_shapes",
    "check_score",
    "check_score_finite_differences",
    "check_serialization",
    "check_shapes",
    "check_sigma_binding",
    "check_sigma_reach",
    "check_support_constraint",
    "check_validation",
    "checks_for",
    "checks_of_kind",
    "fit_report",
    "gof_pvalues",
    "raises",
    "sigma_reach",
    "train_on_oracle",
]
