"""User mistakes on the real ``ncmle`` command: one line naming the flag, exit 2, nothing written.

Each test runs ``python -m ncmle_prob.cli`` in a subprocess in an empty working folder, exactly
as a user would, and checks three things: the exit status, that stderr is one line
``ncmle: error: ...`` naming the flag (or file) at fault, and that the folder holds the same
files afterwards (the check came before any work). Most mistakes are argument-level and fail
before torch is imported (well under a second each); the few that need a checkpoint share
tiny ones written once per module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ncmle(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NCMLE_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-m", "ncmle_prob.cli", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def assert_one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    err = r.stderr.strip()
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in err and err.count("\n") == 0, err
    assert err.startswith("ncmle: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny untrained checkpoints: a digits MADE (64 pixels), a rings MADE (2-D), a text file,
    a truncated checkpoint, and a rings run folder at step 120."""
    from ncmle_prob.models import MADE
    from ncmle_prob.training import save_checkpoint

    d = tmp_path_factory.mktemp("ckpts")
    digits = save_checkpoint(
        d / "digits" / "last.pt", MADE(features=64, hidden_features=8),
        meta={"dataset": "digits", "bins": 17, "image_shape": [1, 8, 8]},
    )
    rings = save_checkpoint(d / "rings" / "last.pt", MADE(features=2, hidden_features=8),
                            meta={"dataset": "rings", "bins": None})
    text = d / "notes.txt"
    text.write_text("these are my notes, not a checkpoint\n")
    blob = digits.read_bytes()
    truncated = d / "truncated.pt"
    truncated.write_bytes(blob[: len(blob) // 2])
    run120 = save_checkpoint(d / "run120" / "last.pt", MADE(features=2, hidden_features=8),
                             step=120, meta={"dataset": "rings"})
    return {"digits": digits, "rings": rings, "text": text, "truncated": truncated,
            "run120": run120.parent}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty working folder holding one existing file, notes.txt."""
    (tmp_path / "notes.txt").write_text("keep me\n")
    return tmp_path


# -- every output path is checked before any work starts -------------------------------------

@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["train", "--out", "notes.txt", "--steps", "5"], ["--out notes.txt", "is a file"]),
        (["demo", "--quick", "--out", "notes.txt"], ["--out notes.txt", "is a file"]),
        (["train", "--out", "notes.txt/run", "--steps", "5"], ["--out notes.txt/run",
                                                              "is a file, not a folder"]),
        (["sample", "missing.pt", "--out", "."], ["--out .", "is a folder"]),
        (["evaluate", "missing.pt", "--plot", "notes.txt/rob.png"], ["--plot", "is a file"]),
        (["restore", "--task", "denoise", "--checkpoint", "missing.pt", "--input", "digits:0",
          "--out", "notes.txt/r.png"], ["--out notes.txt/r.png", "is a file"]),
    ],
)
def test_output_paths_checked_first(argv: list[str], needles: list[str], work: Path) -> None:
    before = snapshot(work)
    assert_one_line_error(ncmle(*argv, cwd=work), *needles)
    assert snapshot(work) == before


# -- restore: input indices and the model's event shape --------------------------------------

@pytest.mark.parametrize("spec", ["digits:99999", "digits:-1"])
def test_restore_index_out_of_range(spec: str, checkpoints: dict[str, Path], work: Path) -> None:
    before = snapshot(work)
    r = ncmle("restore", "--task", "denoise", "--checkpoint", str(checkpoints["digits"]),
              "--input", spec, cwd=work)
    assert_one_line_error(r, f"--input {spec}", "out of range", "359 images")
    assert snapshot(work) == before


@pytest.mark.parametrize(("spec", "hint"), [("digits-test.pt", False), ("mnist14:0,1", True)])
def test_restore_missing_input_file_says_how_to_name_test_images(
        spec: str, hint: bool, checkpoints: dict[str, Path], work: Path) -> None:
    before = snapshot(work)
    r = ncmle("restore", "--task", "denoise", "--checkpoint", str(checkpoints["digits"]),
              "--input", spec, cwd=work)
    err = assert_one_line_error(r, f"--input {spec}: no such file")
    # a data set's name before the colon reads as a wish for its test images: say how
    assert ("test:I,J,... (not mnist14:I,J,...)" in err) == hint, err
    assert snapshot(work) == before


@pytest.mark.slow  # two torch start-ups (or a tiny training run): ~8 s of CPU
def test_restore_refuses_a_model_of_other_data(checkpoints: dict[str, Path], work: Path) -> None:
    # a 2-D rings model must not reshape 64 pixels into 32 "images" and run for minutes
    before = snapshot(work)
    r = ncmle("restore", "--task", "denoise", "--checkpoint", str(checkpoints["rings"]),
              "--input", "digits:0", cwd=work)
    assert_one_line_error(r, "--input digits:0", "rings")
    # the same for a tensor file whose images do not have the model's size
    import torch

    torch.save(torch.zeros(3, 10), work / "x.pt")
    before = snapshot(work)
    r = ncmle("restore", "--task", "denoise", "--checkpoint", str(checkpoints["digits"]),
              "--input", "x.pt", cwd=work)
    assert_one_line_error(r, "--input x.pt", "(3, 10)", "64 values")
    assert snapshot(work) == before


# -- evaluate refuses to mix data sets --------------------------------------------------------

@pytest.mark.slow  # two torch start-ups (or a tiny training run): ~8 s of CPU
def test_evaluate_refuses_mixed_data_sets(checkpoints: dict[str, Path], work: Path) -> None:
    before = snapshot(work)
    r = ncmle("evaluate", str(checkpoints["digits"]), str(checkpoints["rings"]), cwd=work)
    assert_one_line_error(r, "different data sets", "on digits", "on rings")
    r = ncmle("evaluate", str(checkpoints["digits"]), "--data", "rings", cwd=work)
    assert_one_line_error(r, "--data rings", "trained on digits")
    assert snapshot(work) == before


# -- resume ------------------------------------------------------------------------------------

def test_resume_without_checkpoint_fails(work: Path) -> None:
    before = snapshot(work)
    r = ncmle("train", "--data", "rings", "--steps", "5", "--out", "run", "--resume", cwd=work)
    assert_one_line_error(r, "--resume", "no checkpoint run/last.pt", "--resume-or-start")
    assert snapshot(work) == before  # not even the folder


@pytest.mark.slow  # two torch start-ups (or a tiny training run): ~8 s of CPU
def test_resume_or_start_says_it_starts_fresh(work: Path) -> None:
    r = ncmle("train", "--data", "rings", "--steps", "3", "--hidden", "8", "--batch-size", "16",
              "--quiet", "--eval-sigmas", "0", "--out", "run", "--resume-or-start", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "no run/last.pt yet, starting from step 0" in r.stdout
    assert "for 3 steps" in r.stdout and (work / "run" / "last.pt").is_file()


def test_resume_past_the_requested_steps_says_so(checkpoints: dict[str, Path], work: Path,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    import shutil

    run = tmp_path_factory.mktemp("resume") / "run"
    shutil.copytree(checkpoints["run120"], run)
    before = snapshot(run)
    r = ncmle("train", "--data", "rings", "--steps", "90", "--hidden", "8", "--out", str(run),
              "--resume", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "already at step 120 >= --steps 90: nothing to train" in r.stdout
    assert "trained" not in r.stdout
    assert snapshot(run) == before


# -- messages name the flag -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["restore", "--task", "denoise", "--checkpoint", "c.pt", "--input", "digits:0",
          "--prior-sigma", "-1"], ["argument --prior-sigma", ">= 0", "'-1'"]),
        (["restore", "--task", "denoise", "--checkpoint", "c.pt", "--input", "digits:0",
          "--noise-std", "-0.3"], ["argument --noise-std", "> 0", "'-0.3'"]),
        (["restore", "--task", "denoise", "--checkpoint", "c.pt", "--input", "digits:0",
          "--noise-std", "0.05", "--prior-sigma", "0.1"],
         ["--noise-std (0.05) must exceed --prior-sigma (0.1)"]),
        (["train", "--steps", "many"], ["argument --steps", "must be an integer", "'many'"]),
        (["train", "--batch-size", "0"], ["argument --batch-size", ">= 1"]),
        (["train", "--lr", "nan"], ["argument --lr", "finite"]),
        (["train", "--sigma-min", "0.6"], ["--sigma-min (0.6) must be smaller than --sigma-max"]),
        (["train", "--data", "digits", "--data-dir", "/data"], ["--data-dir", "--data digits"]),
        (["evaluate", "a.pt", "--data", "cifar10"], ["--data", "unknown dataset 'cifar10'"]),
        (["restore", "--task", "inpaint", "--checkpoint", "c.pt", "--input", "digits:0",
          "--mask", "random:2"], ["--mask random:P needs 0 < P < 1"]),
        # checked against the restore-kernel registry before any checkpoint is read
        (["restore", "--task", "denoise", "--checkpoint", "c.pt", "--input", "digits:0",
          "--kernel", "mala_fast"],
         ["--kernel: unknown restore kernel 'mala_fast'", "batched_mala", "mcmc_nuts"]),
        (["train", "--model", "transformer"], ["argument --model", "'transformer'", "made",
                                                "pixelcnnpp"]),
    ],
)
def test_argument_errors_name_the_flag(argv: list[str], needles: list[str], work: Path) -> None:
    before = snapshot(work)
    err = assert_one_line_error(ncmle(*argv, cwd=work), *needles)
    assert "must be a int" not in err and "sigma must be" not in err
    assert snapshot(work) == before


def test_mnist_hint_names_the_flag(work: Path) -> None:
    r = ncmle("train", "--data", "mnist", "--data-dir", str(work / "nowhere"), "--steps", "1",
              cwd=work)
    err = assert_one_line_error(r, "mnist not found", "--data-dir")
    assert "directory=" not in err


def test_sampler_option_type_is_named(checkpoints: dict[str, Path], work: Path) -> None:
    r = ncmle("sample", str(checkpoints["digits"]), "--method", "annealed_langevin",
              "--option", "num_levels=many", cwd=work)
    err = assert_one_line_error(r, "--option num_levels=", "must be an integer", "'many'")
    assert "a int" not in err
    assert not (work / "samples.png").exists()


@pytest.mark.parametrize(
    ("key", "needles"),
    [("text", ["notes.txt is not a readable checkpoint", "text file"]),
     ("truncated", ["truncated.pt is not a readable checkpoint", "truncated"])],
)
def test_unreadable_checkpoint_is_one_clear_line(key: str, needles: list[str],
                                                 checkpoints: dict[str, Path], work: Path) -> None:
    err = assert_one_line_error(ncmle("evaluate", str(checkpoints[key]), cwd=work), *needles)
    assert "KeyError" not in err and "miniz" not in err and "PytorchStreamReader" not in err
    assert len(err) < 200
