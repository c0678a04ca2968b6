"""Every registered sampler, called with its defaults, against the closed-form oracles.

For each case the draws' mean, covariance and (mixtures) weights are compared with the exact
values in units of their Monte Carlo standard error (SE), and must lie within 4 SE:

* mean: SE_i = sd(x_i) / sqrt(n_eff);
* covariance entry (i, j): SE = sd((x_i - m_i)(x_j - m_j)) / sqrt(n_eff), the empirical sd of
  the product (valid for non-Gaussian draws too);
* weights of a mixture: the mean posterior responsibility r_k(x) = w_k N_k(x) / p(x) under the
  exact mixture at the target σ has expectation exactly w_k under the target (E_p[r_k] = w_k),
  SE = sd(r_k) / sqrt(n_eff).

The population samplers draw n = 20 000 independent chains (n_eff = n). A single 4-SE test
fails by chance with probability 6e-5; the sweep makes ~3000 such comparisons, so a correct
sampler would fail one of them about once in five fresh seeds: the seeds are fixed (the test is
deterministic) and a failure at a new seed is a signal to look at its |z|, not proof of a bug.
What the tolerance catches: the bias of the old technique-4 defaults (variance +0.002 at
v = 0.01 is 20 SE at n = 20 000, since the SE of a variance is sqrt(2/n) = 1 % of it; +0.017
on the mixture is > 30 SE), unadjusted Langevin's stationary bias alpha/2c once above ~4 %,
or weights frozen at a mid-ladder level (a 0.02 error of a weight is > 5 SE).

The Pyro-backed samplers run one MCMC chain; at 2-8 ms per Pyro step on a shared CPU, 20 000
draws per case would take minutes. They use n = 1000 draws (after their default warm-up) and
n_eff = the effective sample size (Pyro's ``effective_sample_size``, the minimum over
coordinates), on the extreme variances v in {0.01, 1} only, and are marked slow. A
single chain cannot hop between the well-separated modes of the mixture at sigma = 0 (modes
~9 sd apart), so they are checked on an overlapping mixture (modes ~2.5 sd apart) instead; and
at sigma = 0 on grid data they refuse with a clear error (MCMC needs a density), also tested.

The oracles' general closed forms factorise batched covariances with batched triangular solves,
~50x slower than needed for isotropic / few-component cases; ``FastGaussian`` and
``FastMixture`` below are the same densities computed with matmuls (checked equal to the
library's oracles in ``test_fast_oracles_equal_the_library_ones``). Samplers only use their
public methods.
"""

from __future__ import annotations

import math

import pytest
import torch
from pyro.ops.stats import effective_sample_size
from registry import made_model
from scipy.stats import chi2
from torch import Tensor

from ncmle_prob import samplers
from ncmle_prob.distributions import NoisyGaussian, NoisyGaussianMixture

#: Sampling dtype: float32 halves the cost; the statistics are computed in float64.
DT = torch.float32
N = 20_000
#: The Pyro kernels return independent chain end-states (16 chains per Pyro run, 300 warm-up
#: steps each): 400 draws keep the z-scores' ESS > 60 rule and cost 25 runs, not 63.
N_PYRO = 400
N_GRID = 8_000
#: Weight scale of the random grid MADE: 2 gives cell masses from 0.005 to 0.2 with strong
#: dependence between the coordinates (the registry's 0.5 is nearly a product of marginals).
GRID_GAIN = 2.0
POPULATION = ("ancestral", "annealed_langevin", "score_corrected_ancestral")
PYRO = ("pyro_mala", "pyro_langevin")
#: The target σ > 0 of the sweep (a level inside every default ladder).
SIGMA_POS = 0.1


class FastGaussian(NoisyGaussian):
    """:class:`NoisyGaussian` N(0, v I) (isotropic, unbatched), elementwise."""

    def __init__(self, dim: int, v: float, sigma: float) -> None:
        super().__init__(torch.zeros(dim, dtype=DT), v * torch.eye(dim, dtype=DT), sigma=sigma)
        self.v = v

    def _c(self, sigma: Tensor) -> Tensor:
        return (self.v + sigma * sigma).unsqueeze(-1)

    def _log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        c = self._c(sigma)
        return (-0.5 * x * x / c - 0.5 * torch.log(2 * math.pi * c)).sum(-1)

    def _score(self, x: Tensor, sigma: Tensor, *, create_graph: bool) -> Tensor:
        return -x / self._c(sigma)


class FastMixture(NoisyGaussianMixture):
    """:class:`NoisyGaussianMixture` with unbatched parameters, through matmuls."""

    def _joint(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        s = sigma.reshape(-1)[0] if sigma.numel() else sigma.new_zeros(())
        assert bool((sigma == s).all()), "FastMixture handles one sigma per call"
        cov = self.clean_covariances + s * s * torch.eye(self.event_shape[0], dtype=self.dtype)
        prec = torch.linalg.inv(cov)
        diff = x.unsqueeze(-2) - self.locs
        quad = torch.einsum("...kd,kde,...ke->...k", diff, prec, diff)
        d = diff.shape[-1]
        joint = torch.log(self.weights) - 0.5 * quad - 0.5 * torch.logdet(cov) - 0.5 * d * (
            math.log(2 * math.pi))
        return joint, diff, prec

    def _log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        return torch.logsumexp(self._joint(x, sigma)[0], -1)

    def _score(self, x: Tensor, sigma: Tensor, *, create_graph: bool) -> Tensor:
        joint, diff, prec = self._joint(x, sigma)
        comp = -torch.einsum("kde,...ke->...kd", prec, diff)
        return (joint.softmax(-1).unsqueeze(-1) * comp).sum(-2)


def gaussian(dim: int, v: float, sigma: float) -> FastGaussian:
    return FastGaussian(dim, v, sigma)


def separated_mixture(sigma: float) -> FastMixture:
    """Three unequal modes (0.5 / 0.3 / 0.2), correlated, ~9 sd apart at sigma = 0."""
    w = torch.tensor([0.5, 0.3, 0.2], dtype=DT)
    locs = torch.tensor([[-0.6, -0.3], [0.6, -0.3], [0.0, 0.6]], dtype=DT)
    cov = torch.tensor([[0.02, 0.005], [0.005, 0.01]], dtype=DT).expand(3, 2, 2)
    return FastMixture(w, locs, cov, sigma=sigma)


def overlapping_mixture(sigma: float) -> FastMixture:
    """Two unequal modes (0.7 / 0.3) ~2.5 sd apart: one MCMC chain crosses between them."""
    w = torch.tensor([0.7, 0.3], dtype=DT)
    locs = torch.tensor([[-0.4, 0.0], [0.4, 0.1]], dtype=DT)
    cov = torch.tensor([[0.1, 0.02], [0.02, 0.05]], dtype=DT).expand(2, 2, 2)
    return FastMixture(w, locs, cov, sigma=sigma)


def z_scores(x: Tensor, dist: NoisyGaussian | NoisyGaussianMixture, n_eff: float) -> dict[
    str, float
]:
    """Worst |z| of the mean, the covariance entries and (mixtures) the weights."""
    x = x.double()
    mean, cov = dist.mean.double(), dist.covariance_matrix.double()
    c = x - x.mean(0)
    out = {"mean": float(((x.mean(0) - mean) / (x.std(0) / math.sqrt(n_eff))).abs().max())}
    prod = c.unsqueeze(-1) * c.unsqueeze(-2)
    se = prod.std(0) / math.sqrt(n_eff)
    out["cov"] = float(((prod.mean(0) - cov) / se).abs().max())
    if isinstance(dist, NoisyGaussianMixture):
        xs = x.to(dist.dtype)
        joint = torch.stack([dist.component(k).log_prob(xs) for k in range(dist.num_components)],
                            -1) + torch.log(dist.weights)
        r = joint.softmax(-1).double()
        w = dist.weights.double()
        out["weights"] = float(((r.mean(0) - w) / (r.std(0) / math.sqrt(n_eff))).abs().max())
    return out


def _cases() -> list[tuple[str, object]]:
    cases = []
    for sigma in (0.0, SIGMA_POS):
        for dim in (2, 16):
            for v in (0.01, 0.05, 0.2, 1.0):
                cases.append((f"gauss{dim}d-v{v}-s{sigma}", (gaussian, (dim, v, sigma))))
        cases.append((f"mixture-s{sigma}", (separated_mixture, (sigma,))))
    return cases


CASES = _cases()


def test_fast_oracles_equal_the_library_ones() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, generator=g, dtype=DT)
    for sigma in (0.0, 0.3):
        fast, slow = separated_mixture(sigma), NoisyGaussianMixture(
            separated_mixture(0).weights, separated_mixture(0).locs,
            separated_mixture(0).clean_covariances, sigma=sigma)
        torch.testing.assert_close(fast.log_prob(x), slow.log_prob(x))
        torch.testing.assert_close(fast.score(x), slow.score(x))
        fg = gaussian(2, 0.2, sigma)
        sg = NoisyGaussian(fg.loc, fg.clean_covariance, sigma=sigma)
        torch.testing.assert_close(fg.log_prob(x), sg.log_prob(x))
        torch.testing.assert_close(fg.score(x), sg.score(x))


def test_the_z_scores_catch_a_biased_sampler() -> None:
    """The 4-SE check is not vacuous: a variance 6 % too large (what unadjusted Langevin
    leaves at alpha = 0.12 c; the SE of a variance is 1 % here) and mixture weights off by
    0.02 both fail it."""
    d = gaussian(2, 0.01, 0.0)
    x = d.sample((N,), generator=torch.Generator().manual_seed(1))
    assert max(z_scores(x, d, N).values()) < 4
    assert z_scores(1.03 * x, d, N)["cov"] > 4
    m = separated_mixture(0.0)
    wrong = FastMixture(torch.tensor([0.48, 0.32, 0.2], dtype=DT), m.locs, m.clean_covariances)
    y = wrong.sample((N,), generator=torch.Generator().manual_seed(2))
    assert z_scores(y, m, N)["weights"] > 4


@pytest.mark.slow
@pytest.mark.parametrize("method", POPULATION[1:])
def test_population_sampler_defaults_pass_the_oracles(method: str) -> None:
    """``annealed_langevin`` and ``score_corrected_ancestral`` with no options, on the 18
    oracle cases (ancestral, exact by construction, is checked below on a few)."""
    worst: dict[str, float] = {}
    for i, (cid, (make, args)) in enumerate(CASES):
        dist = make(*args)
        x = samplers.sample(dist, N, method, generator=torch.Generator().manual_seed(100 + i))
        z = z_scores(x, dist, N)
        worst[cid] = max(z.values())
        print(f"{method} {cid}: " + ", ".join(f"{k} {v:.2f}" for k, v in z.items()))
    bad = {k: round(v, 2) for k, v in worst.items() if v >= 4}
    assert not bad, f"{method}: worst |z| >= 4 in {bad}"


def test_ancestral_defaults_pass_the_oracles() -> None:
    for i, (cid, (make, args)) in enumerate(CASES[::3]):
        dist = make(*args)
        x = samplers.sample(dist, N, "ancestral", generator=torch.Generator().manual_seed(i))
        z = z_scores(x, dist, N)
        assert max(z.values()) < 4, (cid, z)


def _pyro_cases() -> list[tuple[str, object]]:
    cases = [c for c in CASES if "-v0.01-" in c[0] or "-v1.0-" in c[0]]
    cases += [(f"overlap-s{s}", (overlapping_mixture, (s,))) for s in (0.0, SIGMA_POS)]
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("method", PYRO)
def test_pyro_sampler_defaults_pass_the_oracles(method: str) -> None:
    worst: dict[str, float] = {}
    for i, (cid, (make, args)) in enumerate(_pyro_cases()):
        dist = make(*args)
        x = samplers.sample(dist, N_PYRO, method,
                            generator=torch.Generator().manual_seed(200 + i)).to(DT)
        ess = float(effective_sample_size(x[None], chain_dim=0, sample_dim=1).min())
        # An ESS far below the draws would make 4 SE loose; the defaults give > 100 here.
        assert ess > 60, (cid, ess)
        z = z_scores(x, dist, ess)
        worst[cid] = max(z.values())
        print(f"{method} {cid}: ess {ess:.0f}, " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                             z.items()))
    bad = {k: round(v, 2) for k, v in worst.items() if v >= 4}
    assert not bad, f"{method}: worst |z| >= 4 in {bad}"


# ------------------------------------------------------------------------- grid data at σ = 0
def _grid_masses(dist: object) -> tuple[Tensor, Tensor]:
    levels = torch.linspace(-1.0, 1.0, 5)
    cells = torch.cartesian_prod(levels, levels)
    masses = dist.log_prob(cells).exp().detach().double()  # type: ignore[attr-defined]
    return cells.double(), masses


def pearson_p(probs: Tensor, counts: Tensor) -> float:
    """Pearson's chi-square p-value (scipy's survival function: Pyro's ``chi2sf`` returns 1
    for statistics above ~500, which would pass any sampler that is badly wrong)."""
    n = float(counts.sum())
    expected = n * probs
    assert bool((expected >= 5).all()), "pool cells with fewer than 5 expected draws"
    stat = float(((counts - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, probs.numel() - 1))


def _grid_p(dist: object, x: Tensor) -> float:
    cells, probs = _grid_masses(dist)
    counts = torch.bincount(torch.cdist(x.double(), cells).argmin(1), minlength=25).double()
    return pearson_p(probs, counts)


@pytest.mark.parametrize("method", POPULATION)
def test_defaults_on_grid_data_have_the_right_cell_masses(method: str) -> None:
    """A random 2-D MADE with a discretized logistic mixture (5 x 5 grid) bound to sigma = 0:
    its sigma > 0 densities are NOT the noisy law of its sigma = 0 masses (it is untrained),
 and Tweedie-and-snap alone is wrong for it (checked below); the final exact Metropolis
    steps on the grid make the draws right for any model. Chi-square test of 8000 draws against
    exp(log_prob) over the 25 cells at Pyro's failure rate 1e-3 (a correct sampler fails once
    in a thousand seeds; the test below shows it rejects another model's draws)."""
    dist = made_model(2, "discretized_logistic_mixture", gain=GRID_GAIN)(0.0)
    _, probs = _grid_masses(dist)
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    x, info = samplers.sample(dist, N_GRID, method, generator=torch.Generator().manual_seed(3),
                              return_info=True)
    assert bool(dist.support.check(x).all())
    p = _grid_p(dist, x)
    print(f"{method}: chi-square p = {p:.3g}, grid acceptance {info.grid_acceptance}")
    assert p > 1e-3, (method, p)


def test_the_chi_square_rejects_wrong_grid_draws() -> None:
    """The chi-square check above has power: exact draws of a second random MADE (another
    seed), and Tweedie-and-snap without the grid steps, are both rejected."""
    dist = made_model(2, "discretized_logistic_mixture", gain=GRID_GAIN)(0.0)
    other = made_model(2, "discretized_logistic_mixture", seed=5, gain=GRID_GAIN)(0.0)
    x = other.sample((N_GRID,), generator=torch.Generator().manual_seed(3))
    assert _grid_p(dist, x) < 1e-3
    y = samplers.sample(dist, N_GRID, "score_corrected_ancestral", grid_steps=0,
                        generator=torch.Generator().manual_seed(3))
    assert _grid_p(dist, y) < 1e-3


@pytest.mark.parametrize("method", PYRO)
def test_pyro_samplers_refuse_grid_data_at_zero(method: str) -> None:
    dist = made_model(2, "discretized_logistic_mixture", gain=GRID_GAIN)(0.0)
    with pytest.raises(ValueError, match="needs a density"):
        samplers.sample(dist, 4, method)
