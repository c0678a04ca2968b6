"""Smoke test of ``benchmarks/bench_compounding.py --quick`` and checks of its exact metrics.

The script test runs the whole pipeline on a tiny D = 16 problem (training with checkpoints,
tuning, test, controls, speed, JSON, figures) and checks the tables' structure and a few
properties any correct implementation has. The metric tests check the benchmark's exact
quantities against closed forms, so a wrong prefix marginal or KL would fail them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_compounding.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

from _compounding_data import (  # noqa: E402
    OracleSpec,
    component_log_probs,
    make_oracle,
    mixture_log_prob,
    prefix_oracle,
)
from _compounding_metrics import (  # noqa: E402
    per_dim_log_probs,
    prefix_reverse_kl,
    sample_metrics,
)

from ncmle_prob.distributions import NoisyGaussian  # noqa: E402
from ncmle_prob.models import MADE  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("compounding")
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout, out / "quick"


def _rows(output: str, title: str) -> list[list[str]]:
    block = output.split(title, 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    assert len(lines) >= 3, f"table {title!r} has no data rows:\n{block}"
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


@pytest.mark.slow
def test_quick_run_prints_every_table_and_writes_results(quick: tuple[str, Path]) -> None:
    out, folder = quick
    for title in ("models (exact KL", "tuning on validation", "test (n =", "paired differences",
                  "control (c)", "prefix profile", "speed of each sampler"):
        assert _rows(out, title)
    test_rows = {r[0]: r for r in _rows(out, "test (n =")}
    assert "MLE ancestral" in test_rows and "oracle q (floor)" in test_rows
    assert any(k.startswith("(a) corrector") for k in test_rows)
    assert any(k.startswith("(b) corrector") for k in test_rows)
    res = json.loads((folder / "d16.json").read_text())
    floor = res["floors"]["0.0"]
    # oracle draws are exactly plausible 99% of the time (the threshold is the chi2 99th
    # percentile); 3 x 100 draws give an SE of ~0.6%, so 0.95 is > 6 SE below
    assert sum(f["plausible"] for f in floor) / len(floor) > 0.95
    assert res["tuning"]["chosen"].startswith("corrected")
    for name in ("prefix_kl.png", "speed_d16.png"):
        assert (folder / name).stat().st_size > 1000
    rst = (folder / "tables_d16.rst").read_text()
    assert rst.count(".. list-table::") == out.count("\n## ")  # one RST table per table
    assert "\\(a) corrector" in rst  # "(a) ..." escaped, not an enumerated list
    # resumable: the checkpoints and the run cache are on disk
    assert sorted(p.name for p in (folder / "ckpt").glob("*.pt")) == [
        "d16_mle_s0.pt", "d16_mle_s1.pt", "d16_ncmle_s0.pt", "d16_ncmle_s1.pt"]


def test_prefix_oracle_is_the_exact_marginal() -> None:
    q = make_oracle(OracleSpec(features=12, components=3, lengthscale=2.0))
    x = q.sample((50,), generator=torch.Generator().manual_seed(0))
    # one component: the prefix marginal of a Gaussian is the Gaussian of the leading block
    c = q.component(1)
    direct = NoisyGaussian(c.loc[:5], c.clean_covariance[:5, :5]).log_prob(x[:, :5])
    assert torch.allclose(prefix_oracle(q, 5).component(1).log_prob(x[:, :5]), direct)
    # the full prefix is q itself
    assert torch.allclose(prefix_oracle(q, 12).log_prob(x), q.log_prob(x))
    # the 1-D prefix marginal is a normalised density
    grid = torch.linspace(-8, 8, 4001, dtype=torch.float64)[:, None]
    mass = prefix_oracle(q, 1).log_prob(grid).exp().sum() * (grid[1, 0] - grid[0, 0])
    assert abs(float(mass) - 1.0) < 1e-6  # Riemann sum of a smooth density, step 4e-3


@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_fast_shared_covariance_path_equals_the_generic_oracle(sigma: float) -> None:
    q = make_oracle(OracleSpec(features=16, components=3, lengthscale=3.0))
    x = q.at(sigma).sample((40,), generator=torch.Generator().manual_seed(2))
    generic = torch.stack([q.at(sigma).component(k).log_prob(x) for k in range(3)], -1)
    # float64 throughout; the expanded quadratic form loses at most ~1e-12 relative
    assert torch.allclose(component_log_probs(q, x, sigma), generic, rtol=1e-9, atol=1e-9)
    assert torch.allclose(mixture_log_prob(q, x, sigma), q.at(sigma).log_prob(x), atol=1e-9)
    pre = prefix_oracle(q.at(sigma), 7).log_prob(x[:, :7])
    assert torch.allclose(mixture_log_prob(q, x, sigma, prefix=7), pre, atol=1e-9)


def test_prefix_kl_of_the_full_order_is_the_reverse_kl_and_model_prefixes_sum() -> None:
    torch.manual_seed(0)
    q = make_oracle(OracleSpec(features=8, components=2, lengthscale=2.0))
    model = MADE(features=8, hidden_features=16, family="gaussian_mixture", components=2)
    x = model(0.0).sample((200,))
    per_dim = per_dim_log_probs(model, x, 0.0)
    assert torch.allclose(per_dim.sum(-1), model(0.0).log_prob(x).detach(), atol=1e-4)
    prof = prefix_reverse_kl(model, q, x.double())
    full = float((model(0.0).log_prob(x).detach().double() - q.log_prob(x.double())).mean())
    assert abs(prof[8][0] - full) < 1e-6 * max(1.0, abs(full))


def test_sample_metrics_of_oracle_draws_are_at_the_floor() -> None:
    q = make_oracle(OracleSpec(features=16, components=4, lengthscale=3.0))
    g = torch.Generator().manual_seed(1)
    ref = q.sample((1000,), generator=g)
    m = sample_metrics(q.sample((1000,), generator=g), q, 0.0, ref)
    # a high-frequency perturbation (the texture's least-variance direction) is implausible
    wiggle = 0.3 * (-1.0) ** torch.arange(16, dtype=torch.float64)
    shifted = sample_metrics(q.sample((1000,), generator=g) + wiggle, q, 0.0, ref)
    # oracle vs oracle: the U-statistic is unbiased with SD ~ 0.005 at n = m = 1000 here
    assert abs(m["energy"]) < 0.03 and shifted["energy"] > 0.1
    # plausibility is exactly 0.99 in law; SE at n = 1000 is 0.003, 0.97 is ~7 SE below
    assert m["plausible"] > 0.97 and shifted["plausible"] < 0.5
    # class TV with 4 classes and 1000 draws: multinomial noise ~ 0.02
    assert m["class_tv"] < 0.06
