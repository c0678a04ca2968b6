"""Bad input on the image path of the real ``ncmle`` command: one line, exit 2, nothing written.

Each test runs ``python -m ncmle_prob.cli`` in a subprocess in a working folder and checks the
exit status, that stderr is one line ``ncmle: error: ...`` naming the flag or file at fault,
and that the folder is unchanged (the check came before any output). Ctrl-C during training
is the exception: it must leave a clean checkpoint that resumes. Every test pays one torch
start-up (a few seconds; the ones that train are marked slow).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_cli_errors import assert_one_line_error, ncmle, snapshot

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An untrained 8x8 grey PixelCNN++ checkpoint (digits), folders of 12 grey / colour PNGs,
    one with a truncated PNG, a 10x10 PNG and a (12, 1, 10, 10) array."""
    from PIL import Image

    from ncmle_prob.data import load_digits
    from ncmle_prob.models import PixelCNNPP
    from ncmle_prob.training import save_checkpoint

    d = tmp_path_factory.mktemp("assets")
    model = PixelCNNPP((1, 8, 8), filters=8, resnets=1, components=2, bins=17)
    ckpt = save_checkpoint(d / "pcnn" / "last.pt", model, meta={
        "dataset": "digits", "bins": 17, "event_shape": [1, 8, 8], "image_shape": [1, 8, 8],
        "model": "pixelcnnpp", "data_bins": 17})
    x = load_digits().test[:12, 0]
    levels = ((x + 1) * 127.5).round().clamp(0, 255).numpy().astype(np.uint8)
    grey, colour, broken = d / "grey", d / "colour", d / "broken"
    for folder in (grey, colour, broken):
        folder.mkdir()
    for i, img in enumerate(levels):
        Image.fromarray(img, "L").save(grey / f"{i:02d}.png")
        Image.fromarray(np.stack([img, img // 2, 255 - img], -1), "RGB").save(
            colour / f"{i:02d}.png")
        Image.fromarray(img, "L").resize((32, 32)).save(broken / f"{i:02d}.png")
    bad = broken / "05.png"
    bad.write_bytes(bad.read_bytes()[:60])  # a valid header, truncated pixels
    big = d / "big.png"
    Image.fromarray(np.zeros((10, 10), np.uint8), "L").save(big)
    arr = d / "big.npy"
    np.save(arr, np.zeros((12, 1, 10, 10), np.uint8))
    return {"ckpt": ckpt, "grey": grey, "colour": colour, "broken": broken, "big": big,
            "big_npy": arr, "colour_png": colour / "00.png"}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    w = tmp_path / "work"
    w.mkdir()
    return w


def check(work: Path, *argv: str, needles: tuple[str, ...]) -> None:
    before = snapshot(work)
    assert_one_line_error(ncmle(*argv, cwd=work), *needles)
    assert snapshot(work) == before  # nothing written, not even an output folder


def test_wrong_image_size_for_a_checkpoint(assets: dict[str, Path], work: Path) -> None:
    check(work, "restore", "--task", "denoise", "--checkpoint", str(assets["ckpt"]),
          "--input", str(assets["big"]), "--out", "r.png",
          needles=("--input", "big.png", "10x10", "8x8"))


def test_wrong_array_size_for_a_checkpoint(assets: dict[str, Path], work: Path) -> None:
    check(work, "evaluate", str(assets["ckpt"]), "--data", f"npy:{assets['big_npy']}",
          "--plot", "rob.png", needles=("--data npy:", "(1, 10, 10)", "(1, 8, 8)"))


def test_colour_folder_for_a_grey_model(assets: dict[str, Path], work: Path) -> None:
    check(work, "evaluate", str(assets["ckpt"]), "--data", f"folder:{assets['colour']}",
          "--plot", "rob.png", needles=("--data folder:", "colour images", "--channels 1"))


def test_colour_picture_for_a_grey_model(assets: dict[str, Path], work: Path) -> None:
    check(work, "restore", "--task", "denoise", "--checkpoint", str(assets["ckpt"]),
          "--input", str(assets["colour_png"]), "--out", "r.png",
          needles=("--input", "00.png", "colour image", "grey"))


def test_bins_that_do_not_match_the_data(work: Path) -> None:
    check(work, "train", "--model", "pixelcnnpp", "--data", "digits", "--bins", "256",
          "--out", "run", needles=("--bins 256", "--data digits", "17 levels"))


@pytest.mark.slow  # builds the model, then refuses: ~5-12 s on a loaded CPU
def test_bins_that_do_not_match_the_checkpoint(assets: dict[str, Path], work: Path) -> None:
    out = assets["ckpt"].parent
    before = snapshot(out)
    r = ncmle("train", "--model", "pixelcnnpp", "--data", "digits", "--bins", "9",
              "--filters", "8", "--resnets", "1", "--components", "2", "--out", str(out),
              "--resume", "--steps", "5", cwd=work)
    assert_one_line_error(r, "--bins 9", "17 levels")
    assert snapshot(out) == before


def test_corrupt_image_file(assets: dict[str, Path], work: Path) -> None:
    check(work, "train", "--model", "pixelcnnpp", "--data", f"folder:{assets['broken']}",
          "--image-size", "8", "--out", "run", needles=("05.png",))


def test_output_directory_that_is_a_file(work: Path) -> None:
    (work / "run").write_text("not a folder")
    check(work, "train", "--model", "pixelcnnpp", "--data", "digits", "--out", "run",
          needles=("--out run", "is a file"))


def test_output_file_that_is_a_folder(assets: dict[str, Path], work: Path) -> None:
    (work / "res.json").mkdir()
    check(work, "evaluate", str(assets["ckpt"]), "--json", "res.json", "--plot", "",
          needles=("--json res.json", "is a folder"))


def test_metrics_without_a_classifier(assets: dict[str, Path], work: Path) -> None:
    check(work, "evaluate", str(assets["ckpt"]), "--data", f"folder:{assets['grey']}",
          "--metrics", "fcd", "--plot", "", needles=("--metrics", "no shipped"))


def test_compile_failure_is_one_line(work: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    # a machine where torch.compile cannot work (e.g. no C compiler): simulated in-process
    import torch

    from ncmle_prob.cli import main

    def broken(*args: object, **kwargs: object) -> object:
        def fn(*a: object, **k: object) -> object:
            raise RuntimeError("no working C++ compiler found\nmore details")
        return fn

    monkeypatch.setattr(torch, "compile", broken)
    rc = main(["train", "--model", "pixelcnnpp", "--data", "digits", "--filters", "8",
               "--resnets", "1", "--steps", "2", "--compile", "--quiet",
               "--out", str(work / "run")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0, err
    assert "--compile" in err and "no working C++ compiler" in err
    assert not (work / "run" / "last.pt").exists()


@pytest.mark.slow  # trains until interrupted, then resumes: ~15-30 s on a loaded CPU
def test_ctrl_c_leaves_a_clean_checkpoint_that_resumes(work: Path) -> None:
    from ncmle_prob.training import load_checkpoint

    argv = ["train", "--model", "pixelcnnpp", "--data", "digits", "--filters", "8",
            "--resnets", "1", "--components", "2", "--batch-size", "16", "--eval-size", "32",
            "--checkpoint-every", "100000", "--out", "run"]
    env = {k: v for k, v in os.environ.items() if k != "NCMLE_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    p = subprocess.Popen([sys.executable, "-m", "ncmle_prob.cli", *argv, "--steps", "100000"],
                         cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline()  # printed right before the first step
        assert line.startswith("training pixelcnnpp"), line
        time.sleep(3.0)  # let a few steps run
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, (out, err)
    assert "interrupted at step" in out and "Traceback" not in err
    step = load_checkpoint(work / "run" / "last.pt").step
    assert 1 <= step < 100000 and f"interrupted at step {step}:" in out
    assert not list((work / "run").glob(".*.tmp"))
    r = ncmle(*argv, "--steps", str(step + 2), "--resume", "--quiet", cwd=work)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(work / "run" / "last.pt").step == step + 2
