"""``ncmle train --patience``: early stopping on the validation split (issue 18, item 0).

The real command in a subprocess on a tiny MADE (digits, lr 0.02: the validation bits/dim
stops improving within ~100 steps); the checkpoint's meta carries the best step and why the run
stopped, a resume keeps the run's patience (and refuses another), and the options that early
stopping needs are one-line errors.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_cli_errors import assert_one_line_error, ncmle, snapshot

from ncmle_prob.training import History, load_checkpoint

RUN = ("--data", "digits", "--hidden", "16", "--blocks", "1", "--quiet", "--batch-size", "16",
       "--lr", "0.02", "--eval-every", "10", "--eval-sigmas", "0,0.1")


def train(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return ncmle("train", *RUN, *argv, cwd=cwd)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("es")
    r = train(d, "--steps", "1000", "--patience", "3", "--out", "r")
    assert r.returncode == 0, r.stderr
    return d / "r", r.stdout


def test_patience_stops_and_the_checkpoint_says_why(stopped: tuple[Path, str]) -> None:
    run, out = stopped
    ck = load_checkpoint(run / "last.pt")
    h = History.from_json(ck.history)
    values = [e["bits_per_dim"]["0.0"] for e in h.evals]
    best = h.evals[values.index(min(values))]["step"]
    meta = ck.meta
    assert meta["stop_reason"].startswith("early stopping") and meta["stop_reason"] == h.stop_reason
    assert meta["best_step"] == best == h.best_step and meta["monitor"] == 0.0
    assert meta["best_bits_per_dim"] == min(values)
    assert meta["stopped_step"] == ck.step == best + 3 * 10 < 1000
    assert ck.train_config["patience"] == 3 and ck.train_config["min_delta"] == 0.0
    line = [x for x in out.splitlines() if x.startswith("early stopping")]
    assert line == [f"early stopping at step {ck.step}: best step {best}, validation bits/dim "
                    f"(σ=0) {min(values):.4f}; the model (and r/best.pt) holds the best step's "
                    "weights"]
    assert f"for {ck.step} steps of --steps 1000, stopped early; test bits/dim of step {best}'s" \
        f" weights" in out
    # the validation line is that of the kept weights, not of the last evaluation
    kept = [x for x in out.splitlines() if x.startswith("validation bits/dim")]
    assert kept and kept[0].startswith(f"validation bits/dim (143 examples at step {best}, the "
                                       f"weights kept): σ=0: {min(values):.4f}")
    assert load_checkpoint(run / "best.pt").step == best


def test_resume_keeps_the_patience_and_stops_at_once(stopped: tuple[Path, str],
                                                    tmp_path: Path) -> None:
    run, _ = stopped
    (tmp_path / "r").mkdir()
    for name in ("last.pt", "best.pt"):
        (tmp_path / "r" / name).write_bytes((run / name).read_bytes())
    before = snapshot(tmp_path)
    r = train(tmp_path, "--steps", "1000", "--patience", "5", "--out", "r", "--resume")
    assert_one_line_error(r, "--resume", "--patience 3", "--patience 5")
    r = train(tmp_path, "--steps", "1000", "--patience", "3", "--min-delta", "0.1", "--out", "r",
              "--resume")
    assert_one_line_error(r, "--min-delta 0", "--min-delta 0.1")
    assert snapshot(tmp_path) == before
    step = load_checkpoint(run / "last.pt").step
    r = train(tmp_path, "--steps", "1000", "--out", "r", "--resume")  # inherits --patience 3
    assert r.returncode == 0, r.stderr
    assert f"early stopping at step {step}" in r.stdout
    assert f"steps {step} -> {step} (resumed)" in r.stdout
    assert load_checkpoint(tmp_path / "r" / "last.pt").meta["stopped_step"] == step


@pytest.mark.parametrize("argv, needles", [
    (["--patience", "3", "--eval-every", "0"], ["--eval-every"]),  # argparse: must be >= 1
    (["--min-delta", "0.1"], ["--min-delta", "--patience"]),
    (["--patience", "3", "--eval-every", "5", "--validation-size", "0"],
     ["--patience 3", "--validation-size is 0"]),
    (["--patience", "0"], ["--patience"]),
    (["--patience", "2", "--min-delta", "-1"], ["--min-delta"]),
])
def test_bad_early_stopping_options(tmp_path: Path, argv: list[str], needles: list[str]) -> None:
    r = ncmle("train", "--data", "digits", "--quiet", "--steps", "5", *argv, "--out", "r",
              cwd=tmp_path)
    assert_one_line_error(r, *needles)
    assert not (tmp_path / "r" / "last.pt").exists()


def test_patience_without_eval_every(tmp_path: Path) -> None:
    r = ncmle("train", "--data", "digits", "--quiet", "--steps", "5", "--patience", "3",
              "--out", "r", cwd=tmp_path)
    assert_one_line_error(r, "--patience 3 needs validation evaluations", "--eval-every N")
