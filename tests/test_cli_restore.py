"""The ``restore`` command API (``ncmle_prob.cli.restore``): sub-parser + run writing a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from ncmle_prob.cli.common import CLIError
from ncmle_prob.cli.restore import add_parser, load_images, make_mask, parse_digits_spec
from ncmle_prob.models import MADE
from ncmle_prob.training import save_checkpoint


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ncmle")
    add_parser(parser.add_subparsers(dest="command"))
    return parser


@pytest.mark.parametrize("task", ["denoise", "inpaint"])
def test_restore_writes_png(task: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = save_checkpoint(tmp_path / "m.pt", MADE(features=64, hidden_features=16),
                           meta={"dataset": "digits", "image_shape": [1, 8, 8]})
    out = tmp_path / "r.png"
    args = _parser().parse_args([
        "restore", "--task", task, "--checkpoint", str(ckpt), "--input", "digits:0,1",
        "--corrupt", "--num-samples", "20", "--warmup", "20", "--out", str(out),
    ])
    assert args.run(args) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PSNR observed" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no leftovers
    # sized for the content: 2 images a row, 3 labelled rows (clean, observed, restored):
    # at least ~60 px per 8-pixel tile, and not a wide strip of white space
    from matplotlib.image import imread

    img = imread(str(out))
    assert img.shape[0] >= 3 * 60 and img.shape[1] < 2 * img.shape[0]


def test_restore_inputs_and_errors(tmp_path: Path) -> None:
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    torch.save(x, tmp_path / "x.pt")
    assert load_images(str(tmp_path / "x.pt"), 64).shape == (3, 64)
    with pytest.raises(CLIError, match="no such file"):
        load_images(str(tmp_path / "missing.pt"), 64)
    with pytest.raises(CLIError, match=r"has shape \(3, 1, 8, 8\); .* images of 10 values"):
        load_images(str(tmp_path / "x.pt"), 10)
    torch.save(torch.zeros(6, 32), tmp_path / "y.pt")  # 192 values = 3 images, but not (N, 64)
    with pytest.raises(CLIError, match="64 values"):
        load_images(str(tmp_path / "y.pt"), 64)
    assert load_images("digits:0,358", 64).shape == (2, 64)
    with pytest.raises(CLIError, match="digits test set has 359 images"):
        load_images("digits:359", 64)
    with pytest.raises(CLIError, match="checkpoint models 2 values"):
        load_images("digits:0", 2)
    with pytest.raises(CLIError, match="out of range"):
        parse_digits_spec("digits:3,-2", 359)
    g = torch.Generator().manual_seed(0)
    m = make_mask("center", (8, 8), g)
    assert m.shape == (64,) and int((~m).sum()) == 16
    with pytest.raises(CLIError, match="--mask"):
        make_mask("diagonal", (8, 8), g)
    with pytest.raises(SystemExit):  # deblur is a task now; an unknown one is refused
        _parser().parse_args(["restore", "--task", "sharpen", "--checkpoint", "c", "--input", "i"])
