"""The ``restore`` command API: argparse sub-parser + run_restore writing a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from ncmle_prob.infer.cli_restore import add_restore_subparser, load_images, make_mask, run_restore
from ncmle_prob.models import MADE
from ncmle_prob.training import save_checkpoint


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ncmle")
    add_restore_subparser(parser.add_subparsers(dest="command"))
    return parser


@pytest.mark.parametrize("task", ["denoise", "inpaint"])
def test_restore_writes_png(task: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = save_checkpoint(tmp_path / "m.pt", MADE(features=64, hidden_features=16))
    out = tmp_path / "r.png"
    args = _parser().parse_args([
        "restore", "--task", task, "--checkpoint", str(ckpt), "--input", "digits:0,1",
        "--corrupt", "--num-samples", "20", "--warmup", "20", "--out", str(out),
    ])
    assert args.run(args) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PSNR observed" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, no leftovers


def test_restore_inputs_and_errors(tmp_path: Path) -> None:
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    torch.save(x, tmp_path / "x.pt")
    assert load_images(str(tmp_path / "x.pt"), 64).shape == (3, 64)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_images(str(tmp_path / "missing.pt"), 64)
    with pytest.raises(ValueError, match="images of 10 values"):
        load_images(str(tmp_path / "x.pt"), 10)
    g = torch.Generator().manual_seed(0)
    m = make_mask("center", (8, 8), g)
    assert m.shape == (64,) and int((~m).sum()) == 16
    with pytest.raises(ValueError, match="mask"):
        make_mask("diagonal", (8, 8), g)
    with pytest.raises(SystemExit):
        _parser().parse_args(["restore", "--task", "deblur", "--checkpoint", "c", "--input", "i"])
    assert run_restore is not None
