"""The image path of ``ncmle``: train, evaluate, sample and restore a PixelCNN++ end to end.

Every run is CI-sized: a tiny PixelCNN++ (8 filters, 1 resnet, 2 components) and a handful of
steps on the 8×8 digits; the mnist14 variant is marked slow (loading MNIST costs seconds).
The assertions check properties a wrong implementation would break: exact resume with sample
grids written in between, evaluate's bits/dim against a direct computation, the floor at the
same set sizes as the samples, the ``.npz`` levels against the samples, the blur matrix against
a convolution.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ncmle_prob.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--model", "pixelcnnpp", "--filters", "8", "--resnets", "1", "--components", "2",
        "--batch-size", "16", "--eval-size", "32", "--eval-sigmas", "0,0.1", "--quiet"]


def train(out: Path, *extra: str, data: str = "digits", steps: int = 4) -> int:
    return main(["train", "--data", data, "--steps", str(steps), "--out", str(out), *TINY,
                 *extra])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pcnn") / "run"
    assert train(out, "--sample-every", "2", "--sample-num", "4", "--eval-every", "2",
                 "--checkpoint-every", "2") == 0
    return out


def test_train_writes_a_pixelcnnpp_checkpoint_grids_and_validation(run_dir: Path) -> None:
    from ncmle_prob.models import PixelCNNPP
    from ncmle_prob.training import History, load_checkpoint, load_model

    ck = load_checkpoint(run_dir / "last.pt")
    assert ck.step == 4 and ck.model_class == "PixelCNNPP"
    assert ck.model_config["filters"] == 8 and ck.model_config["bins"] == 17
    assert ck.meta["dataset"] == "digits" and ck.meta["event_shape"] == [1, 8, 8]
    evals = History.from_json(ck.history).evals
    assert [e["step"] for e in evals] == [2, 4]  # --eval-every 2, plus the end (the same)
    assert all(math.isfinite(v) for e in evals for v in e["bits_per_dim"].values())
    for step in (2, 4):
        assert (run_dir / f"samples_step{step}.png").read_bytes().startswith(PNG)
    assert isinstance(load_model(run_dir / "last.pt"), PixelCNNPP)
    assert not list(run_dir.glob(".*.tmp"))


@pytest.mark.slow  # three short training runs: ~10 s on a loaded CPU
def test_resume_with_sample_grids_is_bit_exact(tmp_path: Path) -> None:
    # sample grids written during training must not touch the run (RNG, weights, data order):
    # 4 steps with a grid every step == 2 steps, then resumed to 4 without grids
    from ncmle_prob.training import load_checkpoint

    a, b = tmp_path / "a", tmp_path / "b"
    assert train(a, "--sample-every", "1", "--sample-num", "2", "--ema", "0.9") == 0
    assert train(b, "--ema", "0.9", steps=2) == 0
    assert train(b, "--ema", "0.9", "--resume") == 0
    ka, kb = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert kb.step == ka.step == 4
    for name, t in ka.model.items():
        assert torch.equal(t, kb.model[name]), name
    for name, t in ka.ema.items():
        assert torch.equal(t, kb.ema[name]), name


def test_evaluate_bits_per_dim_metrics_json_and_table(run_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from ncmle_prob.data import load_dataset
    from ncmle_prob.training import evaluate_bits_per_dim, load_model

    js, md, plot = tmp_path / "e.json", tmp_path / "e.md", tmp_path / "rob.png"
    rc = main(["evaluate", str(run_dir / "last.pt"), "--sigmas", "0,0.1", "--plot", str(plot),
               "--metric-samples", "12", "--metrics", "fcd,kid,precision,recall",
               "--json", str(js), "--table", str(md)])
    assert rc == 0 and plot.read_bytes().startswith(PNG)
    record = json.loads(js.read_text())
    # bits/dim: the same numbers as a direct evaluation of the loaded model on the test split
    test = load_dataset("digits", split="test")
    direct = evaluate_bits_per_dim(load_model(run_dir / "last.pt"), test, [0.0, 0.1], bins=17)
    got = record["bits_per_dim"]["run"]
    assert got["0.0"] == pytest.approx(direct[0.0], rel=1e-6)  # same data, noise seed and code
    assert got["0.1"] == pytest.approx(direct[0.1], rel=1e-6)
    m = record["sample_metrics"]["run"]["ancestral"]
    # the floor uses the same set sizes as the score: 12 samples (and 12 held-out real images)
    # against 359 - 12 reference images
    assert m["num_samples"] == 12 and m["num_reference"] == len(test) - 12
    for k in ("fcd", "kid", "precision", "recall"):
        assert math.isfinite(m[k]) and math.isfinite(m[f"{k}_floor"]), k
    assert 0 <= m["precision"] <= 1 and 0 <= m["recall_floor"] <= 1
    table = md.read_text()
    assert "| model | σ=0 | σ=0.1 |" in table
    assert f"| run | {got['0.0']:.4f} | {got['0.1']:.4f} |" in table
    assert "| run | ancestral |" in table and "FCD floor" in table and "KID (raw MMD²)" in table
    out = capsys.readouterr().out
    assert "run / ancestral: FCD" in out and "floor" in out


def test_sample_writes_grid_and_npz_on_the_grid(run_dir: Path, tmp_path: Path) -> None:
    png = tmp_path / "s.png"
    assert main(["sample", str(run_dir / "last.pt"), "-n", "5", "--out", str(png)]) == 0
    assert png.read_bytes().startswith(PNG)
    d = np.load(tmp_path / "s.npz")
    x, levels = d["samples"], d["levels"]
    assert x.shape == (5, 1, 8, 8) and levels.shape == x.shape and str(d["method"]) == "ancestral"
    # ancestral draws at σ = 0 of a discretized family lie on the 17-level grid exactly
    np.testing.assert_allclose(x, 2 * levels.astype(np.float64) / 16 - 1, atol=1e-6)


@pytest.mark.parametrize("task", ["denoise", "inpaint", "deblur"])
def test_restore_image_model(task: str, run_dir: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"{task}.png"
    rc = main(["restore", "--task", task, "--checkpoint", str(run_dir / "last.pt"),
               "--input", "test:0,1,2", "--corrupt", "--num-samples", "4", "--warmup", "4",
               "--noise-std", "0.2", "--out", str(out)])
    assert rc == 0 and out.read_bytes().startswith(PNG)
    line = next(li for li in capsys.readouterr().out.splitlines() if "PSNR" in li)
    assert line.count("dB") == 2 and "per image:" in line
    assert len(line.split("per image:")[1].split(",")) == 3  # one PSNR per image


def test_blur_matrix_is_a_per_channel_box_blur() -> None:
    from ncmle_prob.cli.restore import blur_matrix

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 6, generator=g)
    a = blur_matrix((3, 5, 6), 3)
    ref = torch.nn.functional.conv2d(x, torch.full((3, 1, 3, 3), 1 / 9), padding=1, groups=3)
    torch.testing.assert_close((x.reshape(2, -1) @ a.T).reshape(x.shape), ref)


@pytest.mark.slow  # loads MNIST (IDX files) and trains a few steps at 14x14: ~20 s
def test_mnist14_end_to_end(tmp_path: Path) -> None:
    from ncmle_prob.data import DatasetNotFoundError, load_dataset

    try:
        load_dataset("mnist14", split="test")
    except DatasetNotFoundError:
        pytest.skip("MNIST IDX files are not installed")
    out = tmp_path / "m14"
    assert train(out, "--sample-every", "2", "--sample-num", "2", data="mnist14", steps=2) == 0
    ck = out / "last.pt"
    assert (out / "samples_step2.png").read_bytes().startswith(PNG)
    assert main(["evaluate", str(ck), "--sigmas", "0", "--plot", "", "--metric-samples", "8",
                 "--test-size", "100", "--json", str(tmp_path / "e.json")]) == 0
    record = json.loads((tmp_path / "e.json").read_text())
    assert record["classifier"] == "mnist14" and record["image_shape"] == [1, 14, 14]
    assert main(["sample", str(ck), "-n", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert np.load(tmp_path / "s.npz")["samples"].shape == (2, 1, 14, 14)
    assert main(["restore", "--task", "inpaint", "--checkpoint", str(ck), "--input", "test:3",
                 "--corrupt", "--num-samples", "2", "--warmup", "2",
                 "--out", str(tmp_path / "r.png")]) == 0
