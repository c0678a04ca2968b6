"""Contracts that generic torch and Pyro code relies on, over the whole example registry, and
the regression tests of issue 11's five fixes.

The registry-wide checks live in :mod:`ncmle_prob.testing.contracts` (so users run them on
their own models); this file runs them over ``tests/registry.py`` and adds the checks that need
a known posterior, a memory profile or a count of device synchronisations.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from unittest import mock

import pyro
import pyro.distributions as pdist
import pytest
import torch
from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from pyro.infer.autoguide import AutoDiagonalNormal, AutoNormal
from registry import EXAMPLES, Example, made_model
from torch.distributions import constraints
from torch.distributions.transforms import ExpTransform
from torch.profiler import ProfilerActivity, profile

from ncmle_prob.distributions import (
    NoiseConditionalAutoregressive,
    NoisyGaussian,
    NoisyGaussianMixture,
    TransformedNoiseConditional,
)
from ncmle_prob.testing import CHECKS, checks_for, checks_of_kind

#: The contract checks, read from the suite's registry (the property checks run in
#: tests/test_properties.py; together they are every check of CHECKS).
CONTRACTS = checks_of_kind("contract")
CASES = [(ex, name) for ex in EXAMPLES for name in checks_for(ex, CONTRACTS)]


pytestmark = pytest.mark.usefixtures("fresh_pyro")


@pytest.mark.parametrize("ex,name", CASES, ids=[f"{name}-{ex.id}" for ex, name in CASES])
def test_contract(ex: Example, name: str, device) -> None:
    CHECKS[name](ex, device)


def test_every_contract_runs_on_nearly_every_entry() -> None:
    """Skips are explicit and rare (each has its reason next to the entry in the registry)."""
    skipped = {(ex.id, name) for ex in EXAMPLES for name in CONTRACTS if name in ex.skip}
    assert skipped == {("composed-oracle-mixture-1d-spline", "jit_trace")}
    assert len(CASES) == len(EXAMPLES) * len(CONTRACTS) - len(skipped)


# ---------------------------------------------------------------------------- fix 2
@pytest.mark.parametrize("cls", [NoisyGaussian, NoisyGaussianMixture,
                                 NoiseConditionalAutoregressive, TransformedNoiseConditional])
def test_class_support_is_a_constraint_and_infer_shapes_is_pyros_answer(cls: type) -> None:
    assert isinstance(cls.support, constraints.Constraint)
    if cls is NoisyGaussian:
        assert cls.infer_shapes(loc=(3, 2), covariance_matrix=(2, 2), sigma=(4, 1)) == (
            torch.Size([4, 3]), torch.Size([2]))
    elif cls is NoisyGaussianMixture:
        assert cls.infer_shapes(weights=(5, 3), locs=(3, 2), covariance_matrices=(3, 2, 2)) \
            == (torch.Size([5]), torch.Size([2]))
    else:
        with pytest.raises(NotImplementedError):
            cls.infer_shapes(sigma=())


# ---------------------------------------------------------------------------- fix 1
MU = torch.tensor([0.2, -0.5])
CLEAN_VAR = torch.tensor([0.3, 0.5])
SIGMA, TAU, N_OBS = 0.4, 0.5, 10


def _lognormal_problem(device: torch.device):  # type: ignore[no-untyped-def]
    """x = exp(z), z ~ N(μ, diag(c) + σ² I) (a NoisyGaussian pushed through ExpTransform),
    observed through y_i ~ N(log x, τ² I): the posterior of z = log x is Gaussian with
    precision 1/v + n/τ² and mean (μ/v + Σ y_i/τ²) / precision, per coordinate."""
    mu, c = MU.to(device), CLEAN_VAR.to(device)
    prior = TransformedNoiseConditional(NoisyGaussian(mu, torch.diag(c), sigma=SIGMA),
                                        ExpTransform())
    g = torch.Generator(device).manual_seed(0)
    z_true = torch.tensor([0.5, -0.2], device=device)
    y = z_true + TAU * torch.randn(N_OBS, 2, generator=g, device=device)
    v = c + SIGMA**2
    precision = 1 / v + N_OBS / TAU**2
    post_mean = (mu / v + y.sum(0) / TAU**2) / precision
    post_sd = precision.rsqrt()

    def model(obs: torch.Tensor) -> None:
        x = pyro.sample("x", prior)
        with pyro.plate("obs", obs.shape[0]):
            pyro.sample("y", pdist.Normal(torch.log(x), TAU).to_event(1), obs=obs)

    return model, y, post_mean, post_sd


@pytest.mark.slow
@pytest.mark.parametrize("guide_cls", [AutoNormal, AutoDiagonalNormal])
def test_autoguide_on_a_positive_prior_recovers_the_posterior(guide_cls: type, device) -> None:
    """SVI with an autoguide on a prior pushed through ExpTransform trains without NaN (the
    guide samples the positive support through biject_to) and recovers the exact posterior,
    which the mean-field guide can represent exactly (diagonal covariances)."""
    model, y, post_mean, post_sd = _lognormal_problem(device)
    guide = guide_cls(model)
    # 16 vectorised particles (the prior is then expanded by Pyro's particle plate) and a
    # learning rate decayed tenfold over 300 steps: ~0.002 from the exact mean in a run by hand.
    steps = 300
    optim = pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.1 ** (1 / steps)})
    elbo = Trace_ELBO(num_particles=16, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(model, guide, optim, elbo)
    for _ in range(steps):
        loss = svi.step(y)
        assert torch.isfinite(torch.tensor(loss))
    z = torch.log(guide.median()["x"])
    # The posterior sd is ~0.15; 0.03 (a fifth of it, 15 times the error seen) catches a wrong
    # support or likelihood, which moves the mean by O(1) or produces NaN.
    torch.testing.assert_close(z, post_mean, rtol=0, atol=0.03)
    # The guide's ±1 sd quantiles, mapped back by log (ExpTransform is monotone): 10 % of the
    # exact sd (the run by hand is within 2 %).
    lo, hi = guide.quantiles([0.5 - 0.3413, 0.5 + 0.3413])["x"]
    torch.testing.assert_close((torch.log(hi) - torch.log(lo)) / 2, post_sd, rtol=0.1, atol=0)


@pytest.mark.slow
def test_nuts_on_a_positive_prior_recovers_the_posterior(device) -> None:
    """NUTS on the same problem samples x > 0 only and recovers the posterior of log x."""
    model, y, post_mean, post_sd = _lognormal_problem(device)
    mcmc = MCMC(NUTS(model), num_samples=300, warmup_steps=150, disable_progbar=True)
    mcmc.run(y)
    # NUTS moves in the unconstrained space of biject_to(support): every real maps to x > 0
    # (with the reals as support it was the identity, and negative proposals made log x NaN).
    to_x = mcmc.kernel.transforms["x"].inv  # kernel.transforms map x to the reals
    assert bool((to_x(torch.tensor([-5.0, 5.0], device=device)) > 0).all())
    x = mcmc.get_samples()["x"]
    assert bool((x > 0).all())
    z = torch.log(x)
    # Monte Carlo error of the mean ~ sd / sqrt(ESS) with ESS >= ~120 for NUTS on this
    # Gaussian-in-log-space posterior: 0.014; 0.06 is 4 such errors (a real support or
    # likelihood error is O(1)). The sd within 20 % (its MC error is ~7 %).
    torch.testing.assert_close(z.mean(0), post_mean, rtol=0, atol=0.06)
    torch.testing.assert_close(z.std(0), post_sd, rtol=0.2, atol=0)


# ---------------------------------------------------------------------------- fix 5
def _largest_allocation(fn) -> int:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    return max((e.cpu_memory_usage for e in prof.events()), default=0)


@pytest.mark.parametrize("which", ["gaussian", "mixture"])
def test_oracle_batched_solves_do_not_copy_the_factor_per_point(which: str) -> None:
    """log_prob, score and sample of N points never allocate one D x D factor per point
    (N * D * D numbers; the batched triangular solves of the old code did)."""
    n, d, k = 400, 40, 3
    a = torch.randn(d, d, dtype=torch.float64)
    cov = a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)
    if which == "gaussian":
        dist = NoisyGaussian(torch.zeros(d, dtype=torch.float64), cov, sigma=0.3)
        per_point = n * d * d * 8
    else:
        dist = NoisyGaussianMixture(torch.ones(k, dtype=torch.float64),
                                    torch.randn(k, d, dtype=torch.float64),
                                    cov.expand(k, d, d).clone(), sigma=0.3)
        per_point = n * k * d * d * 8
    x = dist.sample((n,))
    s = 0.1 + torch.rand(n, dtype=torch.float64)
    for fn in (lambda: dist.log_prob(x), lambda: dist.log_prob(x, s), lambda: dist.score(x),
               lambda: dist.score(x, s), lambda: dist.sample((n,))):
        # What is needed is O(N * K * D) numbers; a copied factor is D = 40 times more.
        assert _largest_allocation(fn) < per_point / 10


# ---------------------------------------------------------------------------- σ contract
@contextlib.contextmanager
def count_syncs(host_side: tuple[str, ...] = ()) -> Iterator[dict[str, int]]:
    """Counts tensor-to-Python conversions (bool, item, tolist): each one is a device-to-host
    synchronisation on CUDA. Conversions called from a file whose path contains one of
    ``host_side`` are not counted: they read tensors that live on the host even when the model
    is on CUDA (e.g. Adam's step counter, a CPU tensor unless ``capturable=True``)."""
    import sys

    count = {"n": 0}
    originals = {name: getattr(torch.Tensor, name) for name in ("__bool__", "item", "tolist")}

    def wrap(name: str):  # type: ignore[no-untyped-def]
        def f(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
            count["n"] += not any(part in caller for part in host_side)
            return originals[name](self, *args, **kwargs)
        return f

    with contextlib.ExitStack() as stack:
        for name in originals:
            stack.enter_context(mock.patch.object(torch.Tensor, name, wrap(name)))
        yield count


@contextlib.contextmanager
def count_sigma_checks() -> Iterator[dict[str, int]]:
    """Counts σ value checks (:func:`~ncmle_prob.distributions.validation.as_sigma` calls that
    validate), split into those on tensors (a device synchronisation each on CUDA) and on
    Python numbers (free)."""
    from ncmle_prob.distributions import base

    count = {"n": 0, "tensor": 0}
    real = base.as_sigma

    def counting(sigma, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("validate", True):
            count["n"] += 1
            count["tensor"] += isinstance(sigma, torch.Tensor)
        return real(sigma, *args, **kwargs)

    with mock.patch.object(base, "as_sigma", counting):
        yield count


@pytest.mark.parametrize(("method", "before"), [("score_corrected_ancestral", 13),
                                                  ("annealed_langevin", 22)])
def test_a_sampler_run_checks_sigma_where_it_enters(method: str, before: int) -> None:
    # Issue 21: a default run bound σ level by level (13 and 22 checks, all but the first on
    # tensors: one device synchronisation each on CUDA); the ladder is now bound once.
    from ncmle_prob import samplers

    model = made_model(3, "logistic_mixture")
    with count_sigma_checks() as c:
        samplers.sample(model(), 16, method=method,
                        generator=torch.Generator().manual_seed(0))
    assert c["n"] <= 2 < before  # model() and the ladder: Python numbers, no sync
    assert c["tensor"] == 0


def test_one_training_step_synchronises_once() -> None:
    # Trainer.step's docstring: the only host-device synchronisation is the finiteness check
    # of the loss and gradient norm (σ is bound with validate_args=False: no σ scan).
    from ncmle_prob.training import FitConfig, Trainer
    from ncmle_prob.training.distributed import setup

    x = torch.randn(64, 3)
    trainer = Trainer(made_model(3, "logistic_mixture"), x,
                      FitConfig(steps=2, batch_size=16, progress=False), setup("cpu"))
    trainer.step(x[:16])  # warm-up (lazy set-up)
    with count_syncs(host_side=("torch/optim/",)) as c, count_sigma_checks() as s:
        trainer.step(x[:16])
    assert s["n"] == 0
    assert c["n"] == 1


def test_sigma_is_validated_once_where_it_enters() -> None:
    model = made_model(2, "logistic_mixture")
    s = torch.tensor([0.1, 0.5, 0.9])
    with count_syncs() as c:
        d = model(s)
    assert c["n"] == 1  # as_sigma's one reduction (torch's arg check is not repeated)
    with count_syncs() as c:
        d.at(s)
    assert c["n"] == 1
    x = d.sample((4,))
    quiet = model(s, validate_args=False)
    with count_syncs() as c:
        quiet.log_prob(x, s)
        quiet.at(s)
        model(s, validate_args=False)
    assert c["n"] == 0  # validate_args=False: no σ scan, as in torch
    with count_syncs() as c:
        d.log_prob(x, s)
    assert c["n"] == 2  # σ and the finiteness of x
    with count_syncs() as c:
        d.log_prob_and_score(x, validate=False)
    assert c["n"] == 0
    flow = TransformedNoiseConditional(NoisyGaussian(torch.zeros(2), torch.eye(2)),
                                       ExpTransform())
    with count_syncs() as c:
        bound = flow.at(s)
    assert c["n"] == 1  # the base is rebound with the validated tensor
    y = bound.sample((4,))
    quiet_flow = TransformedNoiseConditional(NoisyGaussian(torch.zeros(2), torch.eye(2)),
                                             ExpTransform(), validate_args=False)
    with count_syncs() as c:
        quiet_flow.log_prob(y, s)
    assert c["n"] == 0  # the base's log density is called without re-validating σ
