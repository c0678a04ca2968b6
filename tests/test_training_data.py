"""fit on a Dataset or a DataLoader: same batches as tensors, exact resume, workers, FitConfig,
and σ validated once per step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

import ncmle_prob.distributions.base as dist_base
from ncmle_prob.data import load_dataset
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior
from ncmle_prob.training import (
    FitConfig,
    ResumeMismatchError,
    Trainer,
    evaluate_bits_per_dim,
    fit,
    load_checkpoint,
)
from ncmle_prob.training.distributed import setup


def _data(n: int = 120, d: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g) @ torch.tensor([[1.0, 0.3, 0.0], [0.0, 0.6, 0.2],
                                                          [0.0, 0.0, 0.4]])


def _model(seed: int = 0, dropout: float = 0.1) -> MADE:
    torch.manual_seed(seed)
    return MADE(features=3, hidden_features=16, dropout=dropout)


def _train(data: object, steps: int, **kw: object) -> dict[str, torch.Tensor]:
    model = _model()
    fit(model, data, steps=steps, batch_size=16, lr=3e-3, seed=4, progress=False, **kw)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class _Pairs(Dataset):
    """(x, label) tuples, as torchvision-style data sets yield."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], i % 3


def test_dataset_sees_exactly_the_batches_of_the_tensor(tmp_path: Path) -> None:
    # The data order is keyed by (seed, epoch) whatever holds the data, so a tensor, a
    # TensorDataset, a (x, label) Dataset, a memory-mapped .npy read by 2 worker processes
    # and the same .npy as a GridDataset all train to bit-identical weights (20 steps = 2.7
    # epochs of 7 batches: the epoch changes are covered).
    x = _data()
    ref = _train(x, 20)
    _same(ref, _train(TensorDataset(x), 20))
    _same(ref, _train(_Pairs(x), 20))
    np.save(tmp_path / "x.npy", x.numpy())
    arr = load_dataset(f"npy:{tmp_path / 'x.npy'}", split="all")
    assert arr.bins is None and len(arr) == 120
    _same(ref, _train(arr, 20, num_workers=2))


def test_dataset_resume_mid_epoch_is_bit_identical(tmp_path: Path) -> None:
    ds = TensorDataset(_data())
    kw = {"prior": NoiseLevelPrior(), "ema": 0.9, "log_every": 5}
    full = _train(ds, 17, checkpoint_dir=tmp_path / "a", **kw)
    _train(ds, 10, checkpoint_dir=tmp_path / "b", **kw)  # stops mid-epoch 1 (7 per epoch)
    resumed = _train(ds, 17, checkpoint_dir=tmp_path / "b", resume=True, **kw)
    _same(full, resumed)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    _same(a.model, b.model)
    assert a.step == b.step == 17 and b.train_config["data_size"] == 120
    # a resume with other batches is another run: refused in one line, nothing restored
    with pytest.raises(ResumeMismatchError) as err:
        fit(_model(), ds, steps=20, batch_size=8, lr=1e-2, seed=4, progress=False,
            checkpoint_dir=tmp_path / "b", resume=True, **kw)
    msg = str(err.value)
    assert "\n" not in msg and "lr=0.003, batch_size=16;" in msg
    assert "asks for lr=0.01, batch_size=8." in msg
    assert load_checkpoint(tmp_path / "b" / "last.pt").step == 17  # nothing written


def test_user_dataloader_is_used_as_given_and_resumes_exactly(tmp_path: Path) -> None:
    # A shuffle=True loader draws its order from torch's global generator, which fit seeds
    # from (seed, epoch) before each pass: an interrupted run and its resume see the same
    # batches as the uninterrupted run (the resume re-reads the batches of its epoch already
    # used). Its batch size (12) is the loader's, not fit's.
    x = _data()
    loader = DataLoader(TensorDataset(x), batch_size=12, shuffle=True, drop_last=True)
    seen: list[int] = []
    model = _model()
    fit(model, loader, steps=3, progress=False, log_every=1,
        callback=lambda s, i: seen.append(s))
    assert seen == [1, 2, 3]
    full = _train(loader, 23, checkpoint_dir=tmp_path / "a")  # 10 batches per epoch
    _train(loader, 14, checkpoint_dir=tmp_path / "b")
    _same(full, _train(loader, 23, checkpoint_dir=tmp_path / "b", resume=True))
    hist = fit(_model(), loader, epochs=2, progress=False, log_every=1)
    assert hist.losses[-1][0] == 20  # epochs count len(loader) batches


def test_eval_on_a_dataset_equals_eval_on_the_tensor() -> None:
    x = _data(50)
    model = _model(dropout=0.0)
    a = evaluate_bits_per_dim(model, x, [0.0, 0.4], batch_size=16)
    b = evaluate_bits_per_dim(model, TensorDataset(x), [0.0, 0.4], batch_size=16)
    assert a == b  # same batches, same keyed noise: identical floats


def test_a_training_step_checks_no_sigma(monkeypatch: pytest.MonkeyPatch) -> None:
    # NoiseLevelPrior draws are valid by construction: each step binds σ with
    # validate_args=False (model(σ, validate_args=False)), which, as in torch, checks no
    # values: no σ scan and no NaN/grid scan of the noised batch, so a step makes no σ check
    # (each would be a host-device synchronisation on CUDA).
    calls = {"as_sigma": 0, "check_finite": 0}
    real_sigma, real_finite = dist_base.as_sigma, dist_base.check_finite

    def count_sigma(*a: object, **k: object) -> torch.Tensor:
        calls["as_sigma"] += bool(k.get("validate", True))
        return real_sigma(*a, **k)

    def count_finite(*a: object, **k: object) -> None:
        calls["check_finite"] += 1
        real_finite(*a, **k)

    monkeypatch.setattr(dist_base, "as_sigma", count_sigma)
    monkeypatch.setattr(dist_base, "check_finite", count_finite)
    model = MADE(features=3, hidden_features=8, family="discretized_logistic_mixture",
                 components=2, bins=5)
    grid = torch.randint(0, 5, (64, 3)).float() / 2 - 1
    counts = []
    for steps in (3, 10):
        calls.update(as_sigma=0, check_finite=0)
        fit(model, grid, steps=steps, batch_size=16, progress=False)
        counts.append(dict(calls))
    # 7 more steps: no more σ checks (the set-up outside the loop costs the same in both runs)
    assert counts[1]["as_sigma"] == counts[0]["as_sigma"]
    assert counts[0]["check_finite"] == counts[1]["check_finite"] == 0


def test_fit_config_and_keywords_are_the_same_run() -> None:
    x = _data()
    cfg = FitConfig(steps=9, batch_size=16, lr=3e-3, seed=4, progress=False)
    model = _model()
    fit(model, x, cfg)
    _same({k: v.detach() for k, v in model.state_dict().items()}, _train(x, 9))
    model = _model()
    fit(model, x, cfg.replace(steps=2), steps=9)  # keywords override the config
    _same({k: v.detach() for k, v in model.state_dict().items()}, _train(x, 9))
    assert cfg.to_json()["prior"] == {"p_zero": 0.2, "sigma_min": 0.01, "sigma_max": 1.0,
                                      "kind": "log_uniform", "ladder": ()}
    # Trainer pieces are usable directly
    trainer = Trainer(_model(), x, cfg, setup("cpu"))
    row = trainer.step(x[:16])
    assert trainer.step_count == 1 and row.shape == (3,) and bool(torch.isfinite(row).all())


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"steps": 5, "btach_size": 3}, TypeError, "unknown fit option 'btach_size' .*batch_size"),
        ({"steps": 5, "batch_size": 0}, ValueError, "batch_size must be an integer >= 1, got 0"),
        ({"steps": 5, "ema": 1.0}, ValueError, r"ema must be a decay in \[0, 1\)"),
        ({"steps": 5, "weight_decay": -1.0}, ValueError, "weight_decay must be a finite number"),
        ({"steps": 5, "eval_sigmas": [-0.1]}, ValueError, "eval_sigmas must be finite"),
        ({"steps": 5, "num_workers": -1}, ValueError, "num_workers must be an integer >= 0"),
        ({"steps": 5, "bins": 1}, ValueError, "bins must be an integer >= 2"),
        ({"steps": 5, "prior": "mle"}, TypeError, "prior must be a NoiseLevelPrior"),
        ({"steps": 5, "seed": -3}, ValueError, "seed must be an integer >= 0"),
        ({"steps": 5, "log_every": 2.5}, ValueError, "log_every must be an integer >= 1"),
    ],
)
def test_fit_config_errors_name_the_option(options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        fit(MADE(features=3), _data(), progress=False, **options)


def test_bad_datasets_are_clear_errors() -> None:
    x = _data()
    bad = x.clone()
    bad[40, 1] = float("nan")
    with pytest.raises(ValueError, match=r"train_data has NaN/inf values at step \d+ \(row"):
        fit(_model(), TensorDataset(bad), steps=20, batch_size=16, progress=False)
    with pytest.raises(ValueError, match=r"examples of shape \(2,\) .* event_shape is \(3,\)"):
        fit(_model(), TensorDataset(x[:, :2]), steps=2, batch_size=16, progress=False)
    with pytest.raises(TypeError, match=r"yields dtype torch\.int64"):
        fit(_model(), TensorDataset(x.long()), steps=2, batch_size=16, progress=False)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(x)

    with pytest.raises(TypeError, match="IterableDataset; wrap it in a DataLoader"):
        fit(_model(), Stream(), steps=2, progress=False)
    with pytest.raises(TypeError, match=r"train_data must be a torch\.Tensor .* got list"):
        fit(_model(), [1, 2, 3], steps=2, progress=False)
    with pytest.raises(ValueError, match=r"batch_size=200 is larger than the training set \(120"):
        fit(_model(), TensorDataset(x), steps=2, batch_size=200, progress=False)


def test_grid_dataset_bins_reach_the_checkpoint(tmp_path: Path) -> None:
    train = load_dataset("digits", flatten=True)
    model = MADE(64, hidden_features=16, family="discretized_logistic_mixture", components=2,
                 bins=17)
    hist = fit(model, train, steps=4, batch_size=32, progress=False, log_every=2,
               eval_data=load_dataset("digits", split="test", flatten=True),
               checkpoint_dir=tmp_path)
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck.meta["bins"] == 17 and ck.meta["event_shape"] == [64]
    assert hist.evals[-1]["step"] == 4 and sorted(hist.last_eval) == [0.0]
    wrong = MADE(64, hidden_features=8, family="discretized_logistic_mixture", bins=256)
    with pytest.raises(ValueError, match="grid of bins=17 levels but the model's discretized "
                       "family has bins=256"):
        fit(wrong, train, steps=1, progress=False)
