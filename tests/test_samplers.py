"""Sampler registry and samplers: contract, shapes, reproducibility, and correctness on the
closed-form oracles (where the truth is known)."""

from __future__ import annotations

import math

import pytest
import torch
from registry import EXAMPLES, Example

from ncmle_prob import samplers
from ncmle_prob.distributions import NoisyGaussian, NoisyGaussianMixture
from ncmle_prob.divergences import energy_distance
from ncmle_prob.samplers import SamplerDivergenceError, schedules

METHODS = ("ancestral", "annealed_langevin", "score_corrected_ancestral")
ALL = (*METHODS, "pyro_langevin", "pyro_mala")
#: Cheap options for contract tests (shapes, devices, reproducibility), not for quality.
FAST = {
    "ancestral": {},
    "annealed_langevin": {"num_levels": 2, "steps_per_level": 2},
    "score_corrected_ancestral": {"num_levels": 2, "steps_per_level": 2},
}


def _gaussian(device: torch.device, sigma: float = 0.5) -> NoisyGaussian:
    loc = torch.tensor([1.0, -0.5], device=device)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], device=device)
    return NoisyGaussian(loc, cov, sigma=sigma)


def _mixture(device: torch.device, sigma: float = 0.0) -> NoisyGaussianMixture:
    """Three unequal, well separated modes (weights 0.5 / 0.3 / 0.2) in [-1, 1]²."""
    w = torch.tensor([0.5, 0.3, 0.2], device=device)
    locs = torch.tensor([[-0.6, -0.3], [0.6, -0.3], [0.0, 0.6]], device=device)
    cov = torch.tensor([[0.02, 0.005], [0.005, 0.01]], device=device).expand(3, 2, 2)
    return NoisyGaussianMixture(w, locs, cov, sigma=sigma)


def _gen(device: torch.device, seed: int = 0) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


# ------------------------------------------------------------------------------ registry
def test_builtins_are_registered() -> None:
    assert set(ALL) <= set(samplers.available())
    assert samplers.available() == sorted(samplers.available())


@pytest.mark.slow  # a fresh interpreter importing torch and pyro: ~5 s
def test_pyro_samplers_are_registered_without_an_import_side_effect() -> None:
    """All five names are listed whether or not ``ncmle_prob.infer`` was imported, and
    ``get`` imports the Pyro-backed implementation by name (in a fresh interpreter, so the
    result does not depend on which tests ran before)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from ncmle_prob import samplers\n"
        "before = samplers.available()\n"
        "assert 'ncmle_prob.infer.mcmc_samplers' not in sys.modules\n"
        "s = samplers.get('pyro_mala', warmup_steps=5)\n"
        "assert 'ncmle_prob.infer.mcmc_samplers' in sys.modules\n"
        "import ncmle_prob.infer\n"
        "after = samplers.available()\n"
        "print(before == after, len(after), s.name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", str(len(samplers.available())), "pyro_mala"]
    assert set(ALL) <= set(samplers.available())


def test_unknown_sampler_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown sampler 'nope'.*annealed_langevin"):
        samplers.get("nope")
    with pytest.raises(ValueError, match="available samplers"):
        samplers.sample(_gaussian(torch.device("cpu")), 2, method="nope")


def test_duplicate_registration_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        samplers.register("ancestral")(lambda dist, n, *, generator=None, progress=False: None)
    with pytest.raises(ValueError, match="identifier"):
        samplers.register("bad name")


def test_options_are_typed_for_a_cli() -> None:
    opts = samplers.options("annealed_langevin")
    assert opts["sigma_max"] == (float, 1.0, opts["sigma_max"][2])
    assert opts["num_levels"][0] is int and opts["metropolis"][0] is bool
    assert opts["corrector"][:2] == (str, "mala") and opts["predictor"][1] == "reverse_diffusion"
    assert "technique4" in opts["step_rule"][2]
    # the annealing options are declared once and shared
    shared = set(samplers.options("annealed_langevin")) & set(
        samplers.options("score_corrected_ancestral"))
    assert {"predictor", "corrector", "step_rule", "snr", "target_accept", "grid_steps"} <= shared
    assert opts["step_size"][:2] == (float, None)  # float | None -> float for the parser
    assert opts["init"][0] is str and "uniform" in opts["init"][2]  # Literal choices in help
    for name in METHODS:
        for key, (tp, _, text) in samplers.options(name).items():
            assert tp in (int, float, bool, str), (name, key)
            assert text, f"option {key!r} of {name!r} has no help text"


def test_bad_options_name_the_option() -> None:
    with pytest.raises(TypeError, match=r"no option.*'steps'.*steps_per_level"):
        samplers.get("annealed_langevin", steps=3)
    with pytest.raises(TypeError, match=r"'num_levels'.*must be an int"):
        samplers.get("annealed_langevin", num_levels=2.5)
    with pytest.raises(ValueError, match=r"'init'.*one of"):
        samplers.get("annealed_langevin", init="zeros")
    with pytest.raises(ValueError, match=r"'sigma_max'.*> 0"):
        samplers.get("annealed_langevin", sigma_max=-1.0)
    with pytest.raises(ValueError, match="'steps_per_level' must be >= 1"):
        samplers.get("score_corrected_ancestral", steps_per_level=0)
    with pytest.raises(ValueError, match=r"unknown corrector 'hmc'.*'langevin', 'mala'"):
        samplers.get("annealed_langevin", corrector="hmc")
    with pytest.raises(ValueError, match=r"unknown predictor 'euler'.*probability_flow"):
        samplers.get("score_corrected_ancestral", predictor="euler")
    with pytest.raises(ValueError, match="'target_accept' must be in"):
        samplers.get("annealed_langevin", target_accept=1.5)
    with pytest.raises(ValueError, match="step_rule='fixed' needs option 'step_size'"):
        samplers.get("annealed_langevin", step_rule="fixed")
    d = _gaussian(torch.device("cpu"), sigma=0.0)
    with pytest.raises(ValueError, match=r"'sigma_start'.*must exceed 'sigma_min'"):
        samplers.sample(d, 2, "score_corrected_ancestral", sigma_start=0.005, sigma_min=0.01)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        samplers.sample(d, 0)
    with pytest.raises(TypeError, match="num_samples must be an int"):
        samplers.sample(d, 2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dist must be a NoiseConditionalDistribution"):
        samplers.sample(torch.distributions.Normal(0.0, 1.0), 2)  # type: ignore[arg-type]


def test_user_sampler_in_five_lines(device: torch.device) -> None:
    @samplers.register("test_shifted")
    def shifted(dist, num_samples, *, generator=None, progress=False, shift: float = 1.0):
        """Ancestral draws plus a constant.

        Args:
            shift: added to every coordinate.
        """
        return dist.sample((num_samples,), generator=generator) + shift

    try:
        assert "test_shifted" in samplers.available()
        opts = samplers.options("test_shifted")
        assert opts.pop("batch_size")[:2] == (int, None)  # every sampler has it (issue 19)
        assert opts == {"shift": (float, 1.0, "added to every coordinate.")}
        d = _gaussian(device)
        x = samplers.sample(d, 5, "test_shifted", generator=_gen(device), shift=2)
        y = samplers.sample(d, 5, "ancestral", generator=_gen(device))
        torch.testing.assert_close(x, y + 2.0)  # options are passed, the generator is used
    finally:
        samplers.unregister("test_shifted")
    assert "test_shifted" not in samplers.available()


def test_a_sampler_returning_garbage_is_caught(device: torch.device) -> None:
    @samplers.register("test_broken")
    def broken(dist, num_samples, *, generator=None, progress=False):
        return torch.full((num_samples, 3), math.nan, device=dist.device)

    try:
        with pytest.raises(RuntimeError, match="shape"):
            samplers.sample(_gaussian(device), 4, "test_broken")
    finally:
        samplers.unregister("test_broken")


# ------------------------------------------------------------------------ contract on EXAMPLES
def _contract_cases() -> list[tuple[Example, str]]:
    return [(ex, m) for ex in EXAMPLES for m in METHODS]


@pytest.mark.parametrize(
    ("example", "method"), _contract_cases(), ids=[f"{e.id}-{m}" for e, m in _contract_cases()]
)
def test_shapes_devices_dtypes_and_reproducibility(
    example: Example, method: str, device: torch.device
) -> None:
    dist = example.make(torch.float32, device)
    opts = dict(FAST[method])
    varying = dist.sigma.numel() > 1 and not bool((dist.sigma == dist.sigma.flatten()[0]).all())
    if method != "ancestral" and varying:
        # One Langevin target per call: a distribution bound to several σ needs sigma=.
        with pytest.raises(ValueError, match=r"several noise levels.*sigma="):
            samplers.sample(dist, 3, method, **opts)
        opts["sigma"] = 0.0 if example.discrete_at_zero else 0.2
    x = samplers.sample(dist, 3, method, generator=_gen(device, 1), **opts)
    assert x.shape == (3, *dist.batch_shape, *dist.event_shape)
    assert x.device.type == device.type and x.dtype == dist.dtype
    assert bool(torch.isfinite(x).all())
    again = samplers.sample(dist, 3, method, generator=_gen(device, 1), **opts)
    torch.testing.assert_close(x, again, rtol=0, atol=0)  # same generator: same samples
    other = samplers.sample(dist, 3, method, generator=_gen(device, 2), **opts)
    assert not torch.equal(x, other)
    if example.discrete_at_zero and method != "ancestral" and opts.get("sigma") == 0.0:
        assert bool(dist.at(0.0).support.check(x).all())  # snapped onto the grid


def test_float64_and_progress_bar(device: torch.device, capsys: pytest.CaptureFixture) -> None:
    d = NoisyGaussian(torch.zeros(2, dtype=torch.float64, device=device),
                      torch.eye(2, dtype=torch.float64, device=device))
    x = samplers.sample(d, 4, "annealed_langevin", progress=True, **FAST["annealed_langevin"])
    assert x.dtype == torch.float64


# ------------------------------------------------------------------- Gaussian oracle, fixed σ
@pytest.mark.parametrize("metropolis", [False, True], ids=["ula", "mala"])
def test_langevin_at_fixed_sigma_matches_gaussian_moments(
    metropolis: bool, device: torch.device
) -> None:
    """N(μ, Σ + σ²I) at σ = 0.5: eigenvalues of the covariance c ∈ {0.54, 1.76}."""
    d = _gaussian(device, sigma=0.5)
    n = 3000
    alpha, steps = (0.1, 300) if metropolis else (0.02, 600)
    x, info = samplers.sample(
        d, n, "annealed_langevin", num_levels=1, steps_per_level=steps, step_size=alpha,
        corrector="mala" if metropolis else "langevin", generator=_gen(device),
        return_info=True,
    )
    cov = d.covariance_matrix
    # The n chains are independent, one draw each. Mean: sd sqrt(c_ii/n) <= 0.021, 4 sd = 0.085.
    # The chains start at N(0, σ²I) and relax at rate >= α/c_max per step: the start is
    # forgotten up to (1 - α/1.76)^steps < 1e-3 of the initial offset |μ| ≈ 1.1 (ULA; MALA
    # accepts most moves and forgets faster).
    torch.testing.assert_close(x.mean(0), d.mean, atol=0.085, rtol=0)
    # Covariance entries: sd sqrt((c_ii c_jj + c_ij²)/n) <= 0.032; compare within 4 sd. ULA's
    # bias is known exactly (stationary c / (1 - α/2c) per eigenvalue c) and put into the
    # expectation; a wrong step (a missing √2 halves the covariance, a sign error diverges, an
    # α-scaled noise shrinks it) is off by > 0.3.
    emp = torch.cov(x.T)
    if not metropolis:
        evals, evecs = torch.linalg.eigh(cov)
        cov = evecs @ torch.diag(evals / (1 - alpha / (2 * evals))) @ evecs.T
    diag = torch.diagonal(cov)
    sd = ((diag[:, None] * diag[None, :] + cov**2) / n).sqrt()
    assert bool(((emp - cov).abs() < 4 * sd).all()), (emp, cov)
    if metropolis:
        rates = info.acceptance_rates
        assert rates is not None and len(rates) == 1
        # α = 0.1 vs the smallest variance 0.54: MALA accepts most but not all proposals.
        assert 0.5 < rates[0] < 0.999, rates
    else:
        assert info.acceptance_rates is None


def test_mala_is_exact_where_ula_is_biased(device: torch.device) -> None:
    """At a step α = 0.8 σ² on N(0, σ²): ULA's stationary variance is v/(1 - α/2v) = 1.67 v,
    MALA's is v. The difference is 6x the Monte-Carlo sd of the variance, so this fails if the
    Metropolis correction is missing or wrong."""
    d = NoisyGaussian(torch.zeros(1, device=device), 1e-4 * torch.ones(1, 1, device=device),
                      sigma=1.0)
    v = 1.0 + 1e-4
    opts = {"num_levels": 1, "steps_per_level": 200, "step_size": 0.8}
    ula = samplers.sample(d, 2000, "annealed_langevin", corrector="langevin",
                          generator=_gen(device), **opts)
    mala = samplers.sample(d, 2000, "annealed_langevin", corrector="mala",
                           generator=_gen(device), **opts)
    sd = v * math.sqrt(2 / 2000)  # 0.032
    assert abs(float(mala.var()) - v) < 4 * sd
    assert abs(float(ula.var()) - v / (1 - 0.8 / 2)) < 4 * sd * 1.67


# ------------------------------------------------------------------- mixture oracle, annealed
@pytest.mark.parametrize("metropolis", [False, True], ids=["ula", "mala"])
def test_annealed_langevin_recovers_mixture_weights(
    metropolis: bool, device: torch.device
) -> None:
    d = _mixture(device, sigma=0.05)
    n = 1000
    x, info = samplers.sample(
        d, n, "annealed_langevin", num_levels=8, steps_per_level=40,
        corrector="mala" if metropolis else "langevin", generator=_gen(device),
        return_info=True,
    )
    exact = d.sample((n,), generator=_gen(device, 7))
    weights = torch.bincount(torch.cdist(x, d.locs).argmin(1), minlength=3).float() / n
    # Multinomial sd <= 0.016 at n = 1000, plus a known annealing bias: the modes stop
    # exchanging mass once σ is small against their separation, so the weights freeze at the
    # basin masses of a mid-ladder level (a few percent off; 0.461-0.499 for the 0.5 mode over
    # seeds). 0.07 covers both; a sampler ignoring the weights would give 1/3 each (0.17 off).
    torch.testing.assert_close(weights, d.weights, atol=0.07, rtol=0)
    # Energy distance to exact draws: ~2e-4 for two exact samples of this size and ~3e-3 for
    # the annealing bias above; a sampler that misses the noise (σ = 0 draws) or a mode gives
    # > 2e-2, so 1e-2 separates them.
    ed = float(energy_distance(x, exact))
    assert ed < 1e-2, ed
    if metropolis:
        # the adapt rule aims every level at 0.574 (the mean includes its first steps)
        assert info.acceptance_rates is not None
        assert all(0.45 < a < 0.7 for a in info.acceptance_rates), info.acceptance_rates


def test_energy_distance_threshold_detects_a_wrong_sampler(device: torch.device) -> None:
    """The 1e-2 threshold above is not vacuous: clean draws instead of σ = 0.05 draws, or
    equal weights, exceed it."""
    d = _mixture(device, sigma=0.05)
    exact = d.sample((1000,), generator=_gen(device, 7))
    uniform = NoisyGaussianMixture(torch.ones(3, device=device), d.locs, d.clean_covariances,
                                   sigma=0.05).sample((1000,), generator=_gen(device, 3))
    assert float(energy_distance(uniform, exact)) > 1e-2


# ------------------------------------------------------------------ score-corrected ancestral
def test_score_correction_fixes_a_wrong_start(device: torch.device) -> None:
    """Start from draws of a mis-specified mixture (modes shifted by 0.25 and twice too wide,
    wrong weights) and correct them with the exact score of the target: the energy distance
    to exact target draws falls by a large factor."""
    d = _mixture(device, sigma=0.0)
    wrong = NoisyGaussianMixture(
        torch.tensor([0.2, 0.3, 0.5], device=device), d.locs + 0.25, 4 * d.clean_covariances,
    ).sample((1000,), generator=_gen(device, 3))
    exact = d.sample((1000,), generator=_gen(device, 4))
    sampler = samplers.get("score_corrected_ancestral", sigma_start=0.5, num_levels=6,
                           steps_per_level=40)
    fixed = sampler.refine(d, wrong, generator=_gen(device, 5))
    before, after = float(energy_distance(wrong, exact)), float(energy_distance(fixed, exact))
    # before ≈ 0.15; after ≈ 3e-3 (the annealing bias of the weights, see above): a factor
    # of 10 would already be "large", and a no-op correction gives 1.
    assert after < before / 10, (before, after)
    # a continuous target at sigma = 0 has a score there: the ladder ends at 0, no Tweedie
    # (behaviour change of the predictor-corrector engine: it used to stop at sigma_min)
    assert sampler.info is not None and sampler.info.sigmas[-1] == 0.0
    assert sampler.info.denoised_at is None


def test_tweedie_final_step_is_the_posterior_mean(device: torch.device) -> None:
    """With zero Langevin moves (a tiny step), the output is E[x0 | x] at the last level
    (an explicit ``sigma_min`` ends the ladder there and denoises)."""
    d = _gaussian(device, sigma=0.0)
    s = samplers.get("score_corrected_ancestral", sigma_start=0.3, num_levels=1,
                     steps_per_level=1, step_size=1e-12, sigma_min=0.01)
    x = d.at(0.01).sample((50,), generator=_gen(device))
    out = s.refine(d, x, generator=_gen(device))
    c = d.covariance_matrix + 1e-4 * torch.eye(2, device=device)
    expected = x - 1e-4 * torch.linalg.solve(c, (x - d.mean).T).T
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------ divergence, grids
def test_divergent_step_size_raises_never_nan(device: torch.device) -> None:
    d = _gaussian(device, sigma=0.0)
    with pytest.raises(SamplerDivergenceError, match="step_size"):
        samplers.sample(d, 10, "annealed_langevin", step_size=10.0, num_levels=3,
                        steps_per_level=50, corrector="langevin")
    # MALA rejects instead of diverging at the same step.
    x = samplers.sample(d, 10, "annealed_langevin", step_size=10.0, num_levels=3,
                        steps_per_level=50, corrector="mala", generator=_gen(device))
    assert bool(torch.isfinite(x).all())


def test_discretized_family_at_zero_ends_at_sigma_min_and_snaps(device: torch.device) -> None:
    ex = next(e for e in EXAMPLES if e.id == "made-discretized_logistic_mixture-2d-sigma0")
    dist = ex.make(torch.float32, device)
    x, info = samplers.sample(dist, 20, "annealed_langevin", num_levels=3, steps_per_level=5,
                              generator=_gen(device), return_info=True)
    # the ladder ends at half a bin (bins = 5: 0.25), then Tweedie, snap and grid steps
    assert info.sigmas[-1] == pytest.approx(0.25) and info.denoised_at == pytest.approx(0.25)
    assert info.grid_acceptance is not None and 0 < info.grid_acceptance <= 1
    assert info.snapped and bool(dist.support.check(x).all())
    # the log mass is defined on the result (it lies on the grid)
    assert bool(torch.isfinite(dist.log_prob(x)).all())


# ------------------------------------------------------------------------------- schedules
def test_geometric_ladder_has_constant_ratio() -> None:
    ladder = schedules.geometric_ladder(2.0, 0.02, 5)
    ratios = ladder[:-1] / ladder[1:]
    torch.testing.assert_close(ratios, torch.full((4,), 100 ** 0.25, dtype=torch.float64))
    assert float(ladder[0]) == pytest.approx(2.0) and float(ladder[-1]) == pytest.approx(0.02)


def test_sigma_max_is_the_largest_pairwise_distance() -> None:
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
    brute = max(float((a - b).norm()) for a in x for b in x[:50])
    brute = max(brute, float(torch.cdist(x, x).max()))
    assert schedules.sigma_max_from_data(x) == pytest.approx(brute, rel=1e-6)


@pytest.mark.parametrize("dim", [10, 784, 3072])
def test_ladder_ratio_solves_technique_2(dim: int) -> None:
    from scipy.stats import norm

    g = schedules.ladder_ratio(dim)
    a = math.sqrt(2 * dim) * (g - 1)
    assert norm.cdf(a + 3 * g) - norm.cdf(a - 3 * g) == pytest.approx(0.5, abs=1e-6)
    assert schedules.ladder_ratio(2) == math.inf  # any ratio overlaps enough in 2-D


def test_step_size_minimises_technique_4() -> None:
    eps = schedules.langevin_step_size(0.01, 1.5, 100)
    r = eps / 1e-4

    def f(r: float) -> float:
        return abs((1 - r) ** 200 * (1.5**2 - 2 / (2 - r)) + 2 / (2 - r) - 1)

    assert f(r) <= min(f(r * 0.9), f(r * 1.1)) and 0 < r < 0.2
