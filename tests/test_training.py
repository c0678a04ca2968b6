"""fit, keyed noise, EMA, resume (in process), NaN handling and argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from ncmle_prob.distributions import NoisyGaussian
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior, bits_per_dim
from ncmle_prob.training import (
    EMA,
    NonFiniteLossError,
    draw_noise,
    evaluate_bits_per_dim,
    fit,
    keyed_generator,
    load_checkpoint,
    load_model,
)


def _gaussian_data(n: int, seed: int = 0) -> tuple[NoisyGaussian, torch.Tensor]:
    cov = torch.tensor([[0.3, 0.2], [0.2, 0.4]])
    oracle = NoisyGaussian(torch.tensor([0.2, -0.1]), cov)
    return oracle, oracle.sample((n,), generator=torch.Generator().manual_seed(seed))


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_fit_recovers_noisy_gaussian_likelihoods(device: torch.device) -> None:
    # A Gaussian MADE represents every noisy law N(mu, S + s^2 I) of this 2-D Gaussian exactly,
    # so after NCMLE training its test bits/dim at s = 0 and s = 0.5 must approach the oracle's
    # on the same noisy test points (the evaluation noise is keyed by (seed, s), reproduced
    # below). Measured gaps over seeds: 0.01-0.03 bits/dim (optimisation + finite training
    # set); tolerance 0.06. An untrained model is off by > 1 bit/dim, and a model trained by
    # MLE only (never at s > 0) is off by > 0.3 at s = 0.5.
    oracle, x = _gaussian_data(2000)
    test = oracle.sample((2000,), generator=torch.Generator().manual_seed(1))
    model = MADE(features=2, hidden_features=16, family="gaussian")
    prior = NoiseLevelPrior(p_zero=0.3, sigma_min=0.05, sigma_max=1.0)
    hist = fit(model, x, prior=prior, steps=300, batch_size=128, lr=1e-2, device=device,
               eval_data=test, eval_sigmas=[0.0, 0.5], progress=False, seed=0)
    got = hist.last_eval
    for s in (0.0, 0.5):
        g = keyed_generator(0, f"eval:{s!r}", 0, torch.device("cpu"))
        noisy = test + s * torch.randn(test.shape, generator=g)
        exact = float(bits_per_dim(oracle, noisy, s).mean())
        assert got[s] == pytest.approx(exact, abs=0.06), (s, got[s], exact)
    # evaluate_bits_per_dim outside fit reproduces fit's final evaluation (same keyed noise)
    again = evaluate_bits_per_dim(model, test.to(next(model.parameters()).device), [0.0, 0.5])
    assert again == pytest.approx(got, abs=1e-5)
    # history: windows of 10 steps with finite losses that went down
    assert len(hist.train) == 30 and all(math.isfinite(r["loss"]) for r in hist.train)
    assert hist.train[-1]["loss"] < hist.train[0]["loss"]
    assert all(r["examples_per_s"] > 0 for r in hist.train)


def test_draw_noise_splits_the_global_batch_across_ranks() -> None:
    prior = NoiseLevelPrior()
    shape = torch.Size([3])
    s_all, e_all = draw_noise(prior, 8, shape, seed=1, step=4)
    parts = [draw_noise(prior, 8, shape, seed=1, step=4, rank=r, world_size=2) for r in (0, 1)]
    # rank r holds global rows r::2 (DistributedSampler's layout), bit for bit
    assert torch.equal(parts[0][0], s_all[0::2]) and torch.equal(parts[1][1], e_all[1::2])
    assert not torch.equal(parts[0][1], parts[1][1])  # ranks draw different noise
    s_next, _ = draw_noise(prior, 8, shape, seed=1, step=5)
    assert not torch.equal(s_next, s_all)  # and every step differs
    s_mle, e_mle = draw_noise(NoiseLevelPrior.mle(), 8, shape, seed=1, step=4)
    assert e_mle is None and bool((s_mle == 0).all())


def test_resume_in_process_is_bit_identical(tmp_path) -> None:
    # Dropout on, EMA on, NCMLE noise on: every source of randomness must be reproduced.
    x = _gaussian_data(300)[1]
    kw = dict(prior=NoiseLevelPrior(), batch_size=32, lr=3e-3, ema=0.9, progress=False, seed=3,
              log_every=5)
    torch.manual_seed(0)
    full = MADE(features=2, hidden_features=16, dropout=0.2)
    init = _params(full)
    fit(full, x, steps=25, checkpoint_dir=tmp_path / "a", **kw)
    part = MADE(features=2, hidden_features=16, dropout=0.2)
    part.load_state_dict(init)
    fit(part, x, steps=12, checkpoint_dir=tmp_path / "b", **kw)
    resumed = MADE(features=2, hidden_features=16, dropout=0.2)
    resumed.load_state_dict(init)
    hist = fit(resumed, x, steps=25, checkpoint_dir=tmp_path / "b", resume=True, **kw)
    for k, v in _params(full).items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert load_checkpoint(tmp_path / "b" / "last.pt").step == 25
    assert [r["step"] for r in hist.train] == [5, 10, 12, 15, 20, 25]


def test_ema_weights_are_the_running_average() -> None:
    x = _gaussian_data(200)[1]
    torch.manual_seed(0)
    model = MADE(features=2, hidden_features=8)
    snapshots = [_params(model)]
    fit(model, x, steps=6, batch_size=50, ema=0.8, progress=False,
        callback=lambda step, info: snapshots.append(_params(model)))
    # EMA recursion over the raw weights seen after each step: avg_t = 0.8 avg + 0.2 theta_t
    avg = snapshots[0]
    for snap in snapshots[1:]:
        avg = {k: 0.8 * avg[k] + 0.2 * snap[k] if v.is_floating_point() else snap[k]
               for k, v in snap.items()}
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, avg[k], rtol=1e-5, atol=1e-6)  # float32 recursion
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_nan_in_data_is_rejected_before_training(tmp_path) -> None:
    x = _gaussian_data(100)[1]
    x[37, 1] = float("nan")
    with pytest.raises(ValueError, match=r"train_data has NaN/inf .* index 37"):
        fit(MADE(features=2), x, steps=5, progress=False, checkpoint_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    x = _gaussian_data(256)[1]
    model = MADE(features=2, hidden_features=8)
    good = {}

    def poison(step: int, info: dict) -> None:
        if step == 4:
            good.update(_params(model))
        if step == 6:  # a parameter goes NaN: the next loss is NaN
            with torch.no_grad():
                model.net.final_layer.weight.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 7.*last good "
                       r"checkpoint is .*last.pt \(step 4\)"):
        fit(model, x, steps=20, batch_size=32, checkpoint_dir=tmp_path, checkpoint_every=4,
            progress=False, callback=poison)
    ckpt = load_checkpoint(tmp_path / "last.pt")  # intact, readable, the step-4 state
    assert ckpt.step == 4
    for k, v in good.items():
        assert torch.equal(ckpt.model[k], v)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp files left
    restored = load_model(tmp_path / "last.pt", ema=False)
    assert all(bool(torch.isfinite(p).all()) for p in restored.parameters())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 5, "epochs": 1}, "exactly one of steps and epochs"),
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"steps": 5, "lr": -1.0}, "lr must be"),
        ({"steps": 5, "amp": "bf16"}, "needs a CUDA device"),
        ({"steps": 5, "amp": "int8"}, "amp must be"),
        ({"steps": 5, "batch_size": 1000}, "larger than the training set"),
        ({"steps": 5, "grad_clip": 0.0}, "grad_clip"),
        ({"steps": 5, "resume": True}, "resume=True needs checkpoint_dir"),
        ({"steps": 5, "device": "tpu"}, "device must be"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit(MADE(features=2), torch.zeros(64, 2), progress=False, **kwargs)


def test_bad_data_shape_and_type() -> None:
    with pytest.raises(ValueError, match=r"train_data must have shape \(N, 2\)"):
        fit(MADE(features=2), torch.zeros(10, 3), steps=1, progress=False)
    with pytest.raises(TypeError, match="floating point"):
        fit(MADE(features=2), torch.zeros(10, 2, dtype=torch.long), steps=1, progress=False)


def test_epochs_and_grad_clip() -> None:
    x = _gaussian_data(100)[1]
    seen = []
    fit(MADE(features=2, hidden_features=8), x, epochs=2, batch_size=30, grad_clip=1e-3,
        progress=False, log_every=1, callback=lambda s, i: seen.append(s))
    assert seen == list(range(1, 7))  # 100 // 30 = 3 full batches per epoch
