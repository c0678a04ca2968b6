"""Checkpoints: atomic writes, weights_only loading, clear errors for damaged or foreign files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ncmle_prob.models import MADE
from ncmle_prob.training import (
    CheckpointError,
    atomic_write,
    fit,
    load_checkpoint,
    load_model,
    save_checkpoint,
)


@pytest.fixture
def trained(tmp_path: Path) -> tuple[MADE, Path]:
    model = MADE(features=3, hidden_features=8, family="logistic_mixture", components=2)
    fit(model, torch.randn(64, 3), steps=4, batch_size=16, ema=0.5, progress=False,
        checkpoint_dir=tmp_path, meta={"dataset": "toy"})
    return model, tmp_path / "last.pt"


def test_round_trip_rebuilds_the_model(trained: tuple[MADE, Path]) -> None:
    model, path = trained
    ckpt = load_checkpoint(path)
    assert ckpt.model_class == "MADE" and ckpt.model_config == model.config
    assert ckpt.step == 4 and ckpt.meta["dataset"] == "toy" and ckpt.optimizer is not None
    rebuilt = load_model(path)  # EMA weights by default: what fit left in the model
    x = torch.randn(5, 3)
    torch.testing.assert_close(rebuilt(0.2).log_prob(x), model(0.2).log_prob(x), rtol=0, atol=0)
    raw = load_model(path, ema=False)
    # raw != averaged
    assert not torch.equal(raw.net.final_layer.weight, rebuilt.net.final_layer.weight)


def test_truncated_checkpoint(trained: tuple[MADE, Path], tmp_path: Path) -> None:
    data = trained[1].read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated.pt is not a readable checkpoint"):
        load_checkpoint(bad)


def test_corrupt_checkpoint(trained: tuple[MADE, Path], tmp_path: Path) -> None:
    data = bytearray(trained[1].read_bytes())
    data[100:400] = bytes(300)  # scribble over the zip directory / pickle
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_model(junk)


def test_foreign_checkpoints(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match=r"not an ncmle_prob checkpoint.*another program"):
        load_checkpoint(other)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(CheckpointError, match=r"not an ncmle_prob checkpoint \(found Tensor\)"):
        load_checkpoint(tensor)


class _Evil:
    def __reduce__(self):  # pragma: no cover - must never run
        return (print, ("code executed",))


def test_pickled_code_is_never_executed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "ncmle_prob.checkpoint", "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    assert "code executed" not in capsys.readouterr().out


def test_checkpoint_of_another_model(trained: tuple[MADE, Path], tmp_path: Path) -> None:
    path = trained[1]
    wrong = MADE(features=3, hidden_features=16, family="logistic_mixture", components=2)
    with pytest.raises(CheckpointError, match=r"another MADE: hidden_features=8 \(model: 16\)"):
        load_model(path, wrong)
    with pytest.raises(CheckpointError, match="another MADE"):
        fit(wrong, torch.randn(64, 3), steps=8, batch_size=16, progress=False,
            checkpoint_dir=path.parent,
            resume=True)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.pt"
    save_checkpoint(target, MADE(features=2, hidden_features=4), step=1)

    def broken(f) -> None:
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert load_checkpoint(target).step == 1  # old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]  # temp file removed
