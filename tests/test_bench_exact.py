"""The exact benchmark v2 (``python -m benchmarks.exact``): the ``--quick`` smoke run of every
stage end to end, and checks of its exact quantities against closed forms."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.exact.metrics import (
    class_switch_rate,
    conditional_kl_profile,
    sample_metrics,
)
from benchmarks.exact.oracle import (
    component_log_probs,
    make_oracle,
    mixture_log_prob,
    nearest_distance,
)
from benchmarks.exact.report import paired
from benchmarks.exact.study import curve_configs
from ncmle_prob import samplers
from ncmle_prob.models import MADE

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # the whole pipeline on a tiny problem: ~20 s of CPU (< 2.5 min wall)
def test_quick_run_exercises_every_stage(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "benchmarks.exact", "--quick", "--quiet", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    for title in ("## Oracles", "## Training", "## Validation curve", "## Test", "## Controls",
                  "## Compounding", "## Paired comparisons", "## Verdicts"):
        assert title in out, title
    assert "(a) corrector from exact" in out and "(b) corrector from MLE" in out
    assert "(c) NCMLE ancestral at" in out and "gap (compounding)" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["overlaps_done"] == [2.0, 5.0]
    assert set(summary["verdicts"]) == {"samples", "likelihood"}
    assert (tmp_path / "precision_coverage.png").stat().st_size > 1000
    folder = tmp_path / "d8_gap2"
    for name in ("oracle.json", "val.json", "kl_s0.json", "test_s0.json", "test_s1.json"):
        assert (folder / name).exists(), name
    rec = json.loads((folder / "train" / "ncmle_s0" / "history.json").read_text())
    assert rec["stopped_step"] >= rec["best_step"] >= 1
    assert (folder / "train" / "ncmle_s0" / "best.pt").exists()  # written by fit
    test = json.loads((folder / "test_s0.json").read_text())
    # exact oracle draws: the two-sided plausibility is 0.99 in law; 3 x 120 draws, SE 0.5 %
    assert test["floor"]["plausible"] > 0.95
    # a second call resumes from the JSON and checkpoints: nothing is recomputed
    again = subprocess.run(
        [sys.executable, "-m", "benchmarks.exact", "--quick", "--quiet", "--out", str(tmp_path),
         "--overlaps", "2"], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert again.returncode == 0 and json.loads((folder / "test_s0.json").read_text()) == test


def test_oracle_overlap_and_fast_densities() -> None:
    q = make_oracle(12, 3, 3.0, 0.3)
    assert math.isclose(nearest_distance(q.locs, q.clean_covariances[0], 0.3), 3.0,
                        rel_tol=1e-9)
    # more noise, more overlap: the distance falls with σ
    assert nearest_distance(q.locs, q.clean_covariances[0], 0.5) < 3.0
    x = q.at(0.2).sample((30,), generator=torch.Generator().manual_seed(0))
    generic = torch.stack([q.at(0.2).component(k).log_prob(x) for k in range(3)], -1)
    # float64; the expanded quadratic form loses ~1e-12 relative
    assert torch.allclose(component_log_probs(q, x, 0.2), generic, rtol=1e-9, atol=1e-9)
    assert torch.allclose(mixture_log_prob(q, x, 0.2), q.at(0.2).log_prob(x), atol=1e-9)
    with pytest.raises(ValueError, match="overlap"):
        make_oracle(12, 3, 0.0, 0.3)


def test_model_prefix_profile_sums_to_the_reverse_kl() -> None:
    """Under the model's own prefixes the per-dimension conditional KLs add up to
    KL(p || q) of the joint (chain rule). Both sides are Monte Carlo means of 4000 draws of
    per-draw log ratios with SD ~ 3 nats here, so they agree within 5 % of the KL."""
    torch.manual_seed(0)
    q = make_oracle(6, 2, 3.0, 0.3)
    model = MADE(6, hidden_features=16, family="gaussian_mixture", components=2)
    g = torch.Generator().manual_seed(1)
    x = model(0.0).sample((4000,), generator=g)
    with torch.no_grad():
        full = float((model(0.0).log_prob(x).double() - mixture_log_prob(q, x.double())).mean())
    prof, ses = conditional_kl_profile(model, q, x, torch.Generator().manual_seed(2))
    assert len(prof) == 6 and all(s >= 0 for s in ses)
    assert abs(sum(prof) - full) < 0.05 * abs(full)


def test_sample_metrics_catch_over_smoothing_and_switches() -> None:
    q = make_oracle(16, 3, 5.0, 0.3)
    g = torch.Generator().manual_seed(3)
    ref = q.sample((1000,), generator=g)
    exact = q.sample((1000,), generator=g)
    m = sample_metrics(exact, q, 0.0, ref)
    # the two-sided test keeps 0.99 of exact draws (SE 0.003 at n = 1000)
    assert m["plausible"] > 0.97 and abs(m["energy"]) < 0.03
    # the templates themselves (maximally over-smoothed) pass a one-sided test, not this one
    idx = torch.randint(0, 3, (1000,), generator=g)
    smooth = sample_metrics(q.locs[idx], q, 0.0, ref)
    assert smooth["plausible"] == 0.0 and smooth["too_close"] == 1.0
    assert class_switch_rate(q, exact, 0.0, exact) == 0.0


def test_paired_power_and_curve_options() -> None:
    r = paired([1.0, 2.0, 3.0], [0.5, 1.0, 2.5])
    # d = (0.5, 1, 0.5): mean 2/3, SE = sd/sqrt 3 = 0.2887/1.732; MDE = (4.303 + 1.061) SE
    assert math.isclose(r["se"], 0.28867513 / math.sqrt(3), rel_tol=1e-6)
    assert math.isclose(r["mde"], (4.302653 + 1.060660) * r["se"], rel_tol=1e-5)
    # every curve configuration is one registered sampler with public options
    from benchmarks.exact.config import FULL

    configs = curve_configs(FULL)
    assert len(configs) == 3 * (4 + 2 * 4)
    for c in configs:
        samplers.get(c["method"], **c["options"])
