"""The ``ncmle`` command: demo, train/evaluate/sample, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ncmle_prob.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    return out


def test_demo_quick_writes_finite_results(demo_dir: Path) -> None:
    results = json.loads((demo_dir / "results.json").read_text())
    assert set(results) == {"MLE", "NCMLE"}
    for curve in results.values():
        assert {"0.0", "0.05", "0.2"} <= set(curve)
        assert all(math.isfinite(v) and v > 0 for v in curve.values())
    for name in ("robustness.png", "samples_mle.png", "samples_ncmle.png"):
        assert (demo_dir / name).read_bytes().startswith(PNG)
    assert not list(demo_dir.glob(".*.tmp"))  # atomic writes left no temp files


@pytest.mark.slow
def test_demo_runs_again_into_its_own_folder(demo_dir: Path, tmp_path: Path) -> None:
    """A second demo into the same folder replaces the first (its checkpoint folders ``mle``
    and ``ncmle`` are the demo's own); a file in their place is refused in one line."""
    import shutil

    again = tmp_path / "again"
    shutil.copytree(demo_dir, again)
    assert main(["demo", "--quick", "--quiet", "--out", str(again)]) == 0
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "mle").write_text("not a folder")
    assert main(["demo", "--quick", "--quiet", "--out", str(blocked)]) == 2


def test_demo_output_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NCMLE_OUTPUT_DIR", str(tmp_path / "env-out"))
    from ncmle_prob.cli import build_parser

    assert build_parser().parse_args(["demo"]).out == str(tmp_path / "env-out")


def test_evaluate_table_and_plot(demo_dir: Path, tmp_path: Path, capsys) -> None:
    plot = tmp_path / "rob.png"
    rc = main(["evaluate", str(demo_dir / "mle" / "last.pt"), str(demo_dir / "ncmle" / "last.pt"),
               "--sigmas", "0,0.1", "--plot", str(plot), "--metric-samples", "50"])
    out = capsys.readouterr().out
    assert rc == 0 and plot.read_bytes().startswith(PNG)
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if "mle" in line and "ncmle" in line)
    rows = [line.split() for line in lines[header + 1 : header + 3]]
    assert [float(r[0]) for r in rows] == [0.0, 0.1]
    assert all(math.isfinite(float(v)) for r in rows for v in r[1:])
    # image checkpoints of a data set with a shipped classifier also report sample metrics
    metric_lines = [line for line in lines if "FCD" in line]
    assert len(metric_lines) == 2 and all("floor" in line for line in metric_lines)


def test_sample_with_registry_methods(demo_dir: Path, tmp_path: Path) -> None:
    ckpt = str(demo_dir / "ncmle" / "last.pt")
    assert main(["sample", ckpt, "-n", "4", "--out", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").read_bytes().startswith(PNG)
    rc = main(["sample", ckpt, "-n", "4", "--sigma", "0.1", "--method", "annealed_langevin",
               "--option", "num_levels=2", "--option", "steps_per_level=3",
               "--option", "corrector=mala", "--out", str(tmp_path / "b.png")])
    assert rc == 0 and (tmp_path / "b.png").read_bytes().startswith(PNG)


def test_train_on_a_toy_then_scatter(tmp_path: Path, capsys) -> None:
    out = tmp_path / "toy"
    rc = main(["train", "--data", "gaussian_mixture", "--steps", "20", "--hidden", "16",
               "--batch-size", "64", "--quiet", "--out", str(out), "--eval-sigmas", "0,0.2"])
    assert rc == 0 and "σ=0.2" in capsys.readouterr().out
    assert main(["sample", str(out / "last.pt"), "-n", "50", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes().startswith(PNG)
    # resume to more steps continues from the checkpoint
    rc = main(["train", "--data", "gaussian_mixture", "--steps", "30", "--hidden", "16",
               "--batch-size", "64", "--quiet", "--out", str(out), "--resume"])
    assert rc == 0
    from ncmle_prob.training import load_checkpoint

    assert load_checkpoint(out / "last.pt").step == 30
    assert "steps 20 -> 30 (resumed)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--data", "cifar10"], "unknown dataset 'cifar10'"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--steps", "many"], "argument --steps: must be an integer, got 'many'"),
        (["evaluate", "missing.pt"], "checkpoint not found: missing.pt"),
        (["sample", "missing.pt"], "checkpoint not found: missing.pt"),
        (["evaluate", "x.pt", "--sigmas", "0,-1"], "--sigmas must be non-empty, finite and >= 0"),
        (["train", "--data", "mnist", "--data-dir", "/nonexistent"], "mnist not found"),
        (["demo", "--lr", "-1", "--quick", "--quiet"],
         "argument --lr: must be a finite number > 0"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_user_mistakes_are_one_line_errors(argv: list[str], message: str, capsys,
                                           tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("ncmle: error: ") and message in err
    assert "Traceback" not in err


def test_sampler_option_errors(demo_dir: Path, capsys) -> None:
    pytest.importorskip("ncmle_prob.samplers")
    ckpt = str(demo_dir / "mle" / "last.pt")
    assert main(["sample", ckpt, "--method", "teleport"]) == 2
    assert "--method: unknown sampler 'teleport'" in capsys.readouterr().err
    assert main(["sample", ckpt, "--option", "warp=9"]) == 2
    assert "--option: unknown option 'warp' for sampler 'ancestral'" in capsys.readouterr().err
    assert main(["sample", ckpt, "--option", "noequals"]) == 2
    assert "key=value" in capsys.readouterr().err


def test_foreign_checkpoint_via_console_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    env = {k: v for k, v in os.environ.items() if k != "NCMLE_DEBUG"}
    r = subprocess.run([sys.executable, "-m", "ncmle_prob.cli", "evaluate", str(bad)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("ncmle: error: ") and "not a readable checkpoint" in r.stderr


@pytest.mark.parametrize("command", ["train", "evaluate", "sample", "demo"])
def test_help_shows_defaults(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "(default:" in capsys.readouterr().out
