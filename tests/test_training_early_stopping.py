"""Early stopping on the validation bits/dim (issue 18, item 0): it triggers where validation
must stop improving, restores exactly the best evaluated weights, resumes bit-exactly (its state
is derived from ``History.evals``), records the best step and the stop reason in ``History``,
``last.pt`` and ``best.pt``, and refuses bad options with one clear error.

The problem: a MADE overfits 16 training points at a high constant learning rate, with the
validation bits/dim measured on 256 other points of the same Gaussian (a second or two each).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior
from ncmle_prob.training import (
    FitConfig,
    History,
    evaluate_bits_per_dim,
    fit,
    load_checkpoint,
    load_model,
)
from ncmle_prob.training.early_stopping import early_stopping_state

PATIENCE, EVAL_EVERY, STEPS = 4, 10, 600


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 2, generator=g), torch.randn(256, 2, generator=g)


def _model() -> MADE:
    torch.manual_seed(0)
    return MADE(features=2, hidden_features=64)


def _run(model: MADE | None = None, **options: Any) -> tuple[MADE, History]:
    x, v = _data()
    model = model if model is not None else _model()
    opts: dict[str, Any] = dict(
        prior=NoiseLevelPrior(p_zero=0.5, sigma_min=0.01, sigma_max=0.3), steps=STEPS,
        batch_size=16, lr=1e-2, eval_every=EVAL_EVERY, eval_sigmas=(0.0, 0.1),
        patience=PATIENCE, log_every=10, progress=False, seed=3,
    )
    opts.update(options)
    return model, fit(model, x, eval_data=v, **opts)


def _monitored(h: History, sigma: float = 0.0) -> list[float]:
    return [e["bits_per_dim"][repr(sigma)] for e in h.evals]


def _bpd(model: MADE, sigma: float = 0.0, seed: int = 3) -> float:
    return evaluate_bits_per_dim(model, _data()[1], [sigma], seed=seed)[sigma]


def _train_rows(h: History) -> list[dict[str, Any]]:  # the throughput is a timing
    return [{k: v for k, v in r.items() if k != "examples_per_s"} for r in h.train]


# -- it stops, and where --------------------------------------------------------------------


def test_stops_when_validation_stops_improving_and_best_is_the_argmin() -> None:
    _, h = _run()
    values = _monitored(h)
    best = min(range(len(values)), key=values.__getitem__)  # the first argmin
    assert h.stop_reason is not None and h.stop_reason.startswith("early stopping")
    assert h.stopped_step is not None and h.stopped_step < STEPS
    assert h.best_step == h.evals[best]["step"]
    assert h.best == {"step": h.best_step, "sigma": 0.0, "bits_per_dim": values[best]}
    # exactly `patience` evaluations after the best, none after the stop
    assert len(values) == best + 1 + PATIENCE
    assert h.stopped_step == h.evals[-1]["step"] == h.best_step + PATIENCE * EVAL_EVERY
    assert h.train[-1]["step"] == h.stopped_step
    json.dumps({"best": h.best, "stopped": h.stopped})  # JSON-able
    assert History.from_json(h.to_json()) == h


def test_monitor_and_min_delta() -> None:
    _, h = _run(monitor=0.1)
    values = _monitored(h, 0.1)
    assert h.best is not None and h.best["sigma"] == 0.1
    assert h.best_step == h.evals[min(range(len(values)), key=values.__getitem__)]["step"]
    _, h2 = _run(min_delta=0.05)
    state = early_stopping_state(h2.evals, 0.0, PATIENCE, 0.05)
    assert state.exhausted and state.best_step == h2.best_step
    # every evaluation after the best was no better than best - min_delta
    after = [e for e in h2.evals if e["step"] > h2.best_step]  # type: ignore[operator]
    assert len(after) == PATIENCE
    assert all(e["bits_per_dim"]["0.0"] >= state.best_value - 0.05 for e in after)


def test_without_patience_nothing_changes() -> None:
    model, h = _run(patience=None, steps=40)
    assert h.best is None and h.stop_reason == "step budget" and h.stopped_step == 40
    assert _bpd(model) == _monitored(h)[-1]  # the last weights


# -- restore_best ------------------------------------------------------------------------------


@pytest.mark.parametrize("ema", [None, 0.9])
def test_restore_best_gives_exactly_the_best_evaluated_weights(ema: float | None) -> None:
    model, h = _run(ema=ema)
    assert h.best is not None and h.best_step != h.evals[-1]["step"]
    assert _bpd(model) == h.best["bits_per_dim"]  # bit-exact: the very weights evaluated
    assert _bpd(model, 0.1) == h.evals[[e["step"] for e in h.evals].index(h.best_step)][
        "bits_per_dim"]["0.1"]


def test_restore_best_false_keeps_the_last_weights() -> None:
    model, h = _run(restore_best=False)
    assert _bpd(model) == _monitored(h)[-1] != h.best["bits_per_dim"]  # type: ignore[index]


def test_best_pt_and_last_pt_meta(tmp_path: Path) -> None:
    model, h = _run(checkpoint_dir=tmp_path, ema=0.9)
    last, best = load_checkpoint(tmp_path / "last.pt"), load_checkpoint(tmp_path / "best.pt")
    assert last.step == h.stopped_step and best.step == h.best_step
    assert last.meta["best_step"] == h.best_step and last.meta["monitor"] == 0.0
    assert last.meta["best_bits_per_dim"] == h.best["bits_per_dim"]  # type: ignore[index]
    assert last.meta["stopped_step"] == h.stopped_step
    assert last.meta["stop_reason"] == h.stop_reason
    assert last.meta["stop_reason"].startswith("early stopping")
    assert History.from_json(last.history) == h
    reloaded = load_model(tmp_path / "best.pt")
    assert _bpd(reloaded) == h.best["bits_per_dim"]  # type: ignore[index]
    for k, v in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[k], v)
    assert not list(tmp_path.glob(".*.tmp"))


def test_step_budget_reason_in_meta(tmp_path: Path) -> None:
    _, h = _run(checkpoint_dir=tmp_path, steps=30, patience=50)
    meta = load_checkpoint(tmp_path / "last.pt").meta
    assert meta["stop_reason"] == h.stop_reason == "step budget"
    assert meta["stopped_step"] == 30 and meta["best_step"] == h.best_step


# -- resume is bit-exact -----------------------------------------------------------------------


class _KillError(Exception):
    pass


def _interrupt_at(step: int) -> Any:
    def callback(s: int, info: dict[str, float]) -> None:
        if s == step:
            raise _KillError

    return callback


@pytest.mark.parametrize("ema", [None, 0.9])
def test_interrupt_and_resume_is_bit_identical(tmp_path: Path, ema: float | None) -> None:
    full_model, full = _run(checkpoint_dir=tmp_path / "full", checkpoint_every=20, ema=ema)
    stop_at = full.stopped_step
    assert stop_at is not None and full.best_step is not None
    # interrupt twice: after the best step was found, and before it
    for k in sorted({20, 20 * (full.best_step // 20 + 1)}):
        if k >= stop_at:
            continue
        out = tmp_path / f"k{k}"
        with pytest.raises(_KillError):
            _run(checkpoint_dir=out, checkpoint_every=20, ema=ema, callback=_interrupt_at(k))
        assert load_checkpoint(out / "last.pt").step == k
        model, h = _run(checkpoint_dir=out, checkpoint_every=20, ema=ema, resume=True)
        assert h.evals == full.evals and _train_rows(h) == _train_rows(full)
        assert h.best == full.best and h.stopped == full.stopped
        for key, value in full_model.state_dict().items():
            assert torch.equal(model.state_dict()[key], value), key
        a, b = load_checkpoint(out / "best.pt"), load_checkpoint(tmp_path / "full" / "best.pt")
        assert a.step == b.step and all(torch.equal(a.model[n], b.model[n]) for n in a.model)


def test_a_run_that_stopped_stops_again_at_once(tmp_path: Path) -> None:
    model, h = _run(checkpoint_dir=tmp_path)
    again, h2 = _run(checkpoint_dir=tmp_path, resume=True, steps=STEPS + 100)
    assert h2.evals == h.evals and h2.stopped == h.stopped and h2.best == h.best
    assert len(h2.train) == len(h.train)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)


def test_resume_from_a_path_keeps_the_best_weights_in_memory(tmp_path: Path) -> None:
    _, full = _run()
    out = tmp_path / "r"
    k = 20 * (full.best_step // 20 + 1)  # type: ignore[operator]
    with pytest.raises(_KillError):
        _run(checkpoint_dir=out, checkpoint_every=20, callback=_interrupt_at(k))
    model, h = _run(resume=out / "last.pt")  # no checkpoint_dir: best.pt is read, then memory
    assert h.best == full.best and h.stopped == full.stopped
    assert _bpd(model) == full.best["bits_per_dim"]  # type: ignore[index]


def test_resume_without_best_pt_when_the_resumed_step_is_the_best(tmp_path: Path) -> None:
    _, full = _run()
    k = full.best_step
    assert k is not None and k % EVAL_EVERY == 0
    with pytest.raises(_KillError):
        _run(checkpoint_dir=tmp_path, checkpoint_every=EVAL_EVERY, callback=_interrupt_at(k))
    (tmp_path / "best.pt").unlink()
    model, h = _run(checkpoint_dir=tmp_path, checkpoint_every=EVAL_EVERY, resume=True)
    assert h.best == full.best and _bpd(model) == full.best["bits_per_dim"]  # type: ignore[index]
    assert load_checkpoint(tmp_path / "best.pt").step == k


# -- bad options --------------------------------------------------------------------------------


@pytest.mark.parametrize("options, needles", [
    ({"patience": 3}, ["patience=3", "eval_every", "eval_data"]),
    ({"patience": 0, "eval_every": 5}, ["patience", ">= 1", "0"]),
    ({"patience": 2.0, "eval_every": 5}, ["patience", "integer"]),
    ({"patience": 2, "eval_every": 5, "monitor": 0.3}, ["monitor=0.3", "eval_sigmas", "[0.0]"]),
    ({"patience": 2, "eval_every": 5, "min_delta": -0.1}, ["min_delta", ">= 0"]),
    ({"patience": 2, "eval_every": 5, "min_delta": math.nan}, ["min_delta"]),
    ({"min_delta": 0.1}, ["min_delta=0.1", "patience"]),
    ({"monitor": 0.0}, ["monitor=0.0", "patience"]),
])
def test_bad_options_are_clear_errors(options: dict[str, Any], needles: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        FitConfig(steps=10, **options)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_restore_best_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="restore_best"):
        FitConfig(steps=10, patience=2, eval_every=5, restore_best="yes")  # type: ignore[arg-type]


def test_patience_without_eval_data_names_both() -> None:
    x, _ = _data()
    with pytest.raises(ValueError, match=r"patience=2 needs eval_every .* and eval_data"):
        fit(_model(), x, steps=10, batch_size=16, eval_every=5, patience=2, progress=False)
