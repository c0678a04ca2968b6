"""``python -m benchmarks.image_study --quick``: every stage of the image study end to end on
tiny digits MADEs (the CI smoke run of issue 18's MNIST study), and its decision rule.

The smoke run trains two seeds per objective through ``ncmle train`` (so the study uses no
second training loop), scores every quick sampler setting on validation images, tests the picks
with floors, runs the controls, and writes a report whose verdicts are computed from its
numbers. The decision rule is checked against its closed form: with n = 3 paired differences
the 95 % interval is mean ± t(0.975, 2)·sd/√3 (t = 4.3027) and the smallest detectable effect
(80 % power) is (4.3027 + 1.0607)·sd/√3.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.image_study.stats import paired

ROOT = Path(__file__).resolve().parents[1]


def test_decision_rule_matches_the_t_interval_and_its_power() -> None:
    d = [-0.05, -0.03, -0.07]
    p = paired(d)
    sd = 0.02  # sample sd of d
    assert math.isclose(p.sd, sd, rel_tol=1e-12)
    assert math.isclose(p.high, -0.05 + 4.302652729749462 * sd / math.sqrt(3), abs_tol=1e-10)
    assert math.isclose(p.mde, (4.302652729749462 + 1.0606601717798212) * sd / math.sqrt(3),
                        rel_tol=1e-9)
    assert p.verdict == "shown"
    assert paired([0.05, 0.03, 0.07]).verdict == "contradicted"  # MLE better
    assert paired([0.05, 0.03, 0.07], lower_is_better=False).verdict == "shown"
    assert paired([-0.05, 0.04, 0.0]).verdict == "not shown at this power"
    with pytest.raises(ValueError, match="needs >= 2 differences, got 1"):
        paired([0.1])


def test_quick_study_runs_every_stage(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.image_study", "--quick", "--runs",
         str(tmp_path / "runs"), "--results", str(tmp_path / "res")],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "res"
    lik = json.loads((res / "likelihood.json").read_text())
    assert set(lik["runs"]) == {"mle-s0", "ncmle-s0", "mle-s1", "ncmle-s1"}
    assert all(run["trained"] and run["step"] > 0 for run in lik["runs"].values())
    sel = json.loads((res / "select.json").read_text())
    # every quick setting was scored on validation images, and each family has its pick
    assert len(sel["settings"]) == 1 + 5 and set(sel["picks"]) == {
        "ancestral", "noisy+tweedie", "self-denoising", "score-corrected mala"}
    picked = sel["settings"][sel["picks"]["score-corrected mala"]]
    same_family = [v["fcd"] for v in sel["settings"].values()
                   if v["family"] == "score-corrected mala"]
    assert picked["fcd"] == min(same_family)
    assert picked["langevin_time"] >= picked["langevin_time_at_start"] > 0
    tst = json.loads((res / "test.json").read_text())
    assert {v["seed"] for v in tst["scores"].values()} == {0, 1}
    for v in tst["scores"].values():
        assert {"fcd", "fcd_floor", "precision", "recall", "kid", "class_tv"} <= set(v)
    assert {"a: from real + noise", "b: from MLE draws + noise",
            "c: at sigma_start"} <= set(tst["controls"])
    text = (res / "report.md").read_text()
    # the verdict lines are the decision rule applied to the printed differences
    zero = lik["ncmle_minus_mle"]["0.0"]
    assert f"**Test likelihood at σ = 0** (NCMLE − MLE bits/dim): {zero['verdict']}" in text
    assert f"mean difference {zero['mean']:+.4f}" in text
    assert (res / "precision_coverage.png").stat().st_size > 0


@pytest.mark.parametrize("method, options", [
    ("score_corrected_ancestral", (("sigma_start", 0.3), ("steps_per_level", 2),
                                   ("num_levels", 2), ("grid_steps", 3))),
    ("self_denoising", (("sigma_start", 0.3), ("steps", 3))),
])
def test_shared_start_draws_are_the_samplers_own(method: str, options: tuple) -> None:
    # the study draws the ancestral start at sigma_start once per (model, sigma_start) and
    # refines it per setting; that must be exactly what the sampler does from the same seed
    import torch

    from benchmarks.image_study.plan import Setting
    from benchmarks.image_study.sampling import draw
    from ncmle_prob import samplers
    from ncmle_prob.models import MADE

    torch.manual_seed(0)
    model = MADE(features=16, hidden_features=16, family="discretized_logistic_mixture",
                 bins=5).eval()
    setting = Setting("f", method, options)
    first, _ = draw(model, setting, 8, seed=4)
    again, _ = draw(model, setting, 8, seed=4)  # from the cache
    direct = samplers.sample(model(torch.tensor(0.0)), 8, method,
                             generator=torch.Generator().manual_seed(4), **dict(options))
    assert torch.equal(first, direct) and torch.equal(again, direct)


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--seeds", "0,x", "--seeds '0,x': expected training seeds as non-negative integers"),
    ("--shard", "2/2", "--shard '2/2': expected I/N with 0 <= I < N"),
])
def test_bad_stage_options_are_one_line(flag: str, value: str, needle: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.image_study.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["test", flag, value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
