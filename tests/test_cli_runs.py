"""``ncmle train`` keeps its run folders straight (issue 20): no clobbering, a lock while a
training owns the folder, stale temporaries cleaned, resumes that continue the *same* run,
validation vs test splits named apart, plain progress lines in logs, and folder data that work
from any directory.

Every test runs the real command in a subprocess on tiny MADEs (a few steps on digits or on a
folder of 8x8 PNGs written here), a few seconds each.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_errors import assert_one_line_error, ncmle, snapshot

TINY = ("--hidden", "16", "--blocks", "1", "--quiet")


def train(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return ncmle("train", "--data", "digits", *TINY, *argv, cwd=cwd)


@pytest.fixture(scope="module")
def run4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits run folder at step 4 (batch 16, lr 0.002)."""
    d = tmp_path_factory.mktemp("run4")
    r = train(d, "--steps", "4", "--batch-size", "16", "--out", "r")
    assert r.returncode == 0, r.stderr
    return d / "r"


def copy_run(run: Path, to: Path) -> Path:
    to.mkdir(parents=True, exist_ok=True)
    (to / "last.pt").write_bytes((run / "last.pt").read_bytes())
    return to


# -- runs don't clobber each other ------------------------------------------------------------

def test_fresh_train_into_existing_run_is_refused(run4: Path, tmp_path: Path) -> None:
    run = copy_run(run4, tmp_path / "r")
    before = snapshot(tmp_path)
    r = train(tmp_path, "--steps", "2", "--out", "r")
    assert_one_line_error(r, "--out r", "already holds a run", "--resume", "--overwrite")
    assert snapshot(tmp_path) == before
    r = train(tmp_path, "--steps", "2", "--batch-size", "16", "--out", "r", "--overwrite")
    assert r.returncode == 0, r.stderr
    from ncmle_prob.training import load_checkpoint

    assert load_checkpoint(run / "last.pt").step == 2
    assert not (run / ".ncmle.lock").exists()  # released at the end


def test_live_lock_refuses_a_second_training(run4: Path, tmp_path: Path) -> None:
    import os
    import socket

    run = copy_run(run4, tmp_path / "r")
    (run / ".ncmle.lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")  # alive: us
    before = snapshot(tmp_path)
    r = train(tmp_path, "--steps", "6", "--batch-size", "16", "--out", "r", "--resume")
    assert_one_line_error(r, "--out r", f"pid {os.getpid()}", ".ncmle.lock")
    assert snapshot(tmp_path) == before


def test_stale_lock_is_taken_over_and_temporaries_cleaned(run4: Path, tmp_path: Path) -> None:
    import socket

    run = copy_run(run4, tmp_path / "r")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / ".ncmle.lock").write_text(f"{dead.pid} {socket.gethostname()}\n")
    tmp = run / f".last.pt.{dead.pid}.0123456789ab.tmp"  # a SIGKILL during a checkpoint write
    tmp.write_bytes(b"\0" * 1000)
    r = train(tmp_path, "--steps", "6", "--batch-size", "16", "--out", "r", "--resume")
    assert r.returncode == 0, r.stderr
    assert f"stale lock r/.ncmle.lock of process {dead.pid}" in r.stdout
    assert "removed 1 stale temporary file" in r.stdout and tmp.name in r.stdout
    assert not tmp.exists() and not (run / ".ncmle.lock").exists()


# -- a resume continues the same run ---------------------------------------------------------

@pytest.mark.parametrize("argv, needles", [
    (["--lr", "0.01"], ["--lr 0.002", "--lr 0.01"]),
    (["--batch-size", "32"], ["--batch-size 16", "--batch-size 32"]),
    (["--lr", "0.01", "--seed", "3", "--sigma-max", "0.9"],
     ["--lr 0.002, --seed 0, --sigma-max 0.5", "--lr 0.01, --seed 3, --sigma-max 0.9"]),
    (["--objective", "mle"], ["--objective ncmle", "--objective mle"]),
])
def test_resume_with_changed_options_is_refused(run4: Path, tmp_path: Path, argv: list[str],
                                                needles: list[str]) -> None:
    copy_run(run4, tmp_path / "r")
    before = snapshot(tmp_path)
    base = ["--batch-size", "16"] if "--batch-size" not in argv else []
    r = train(tmp_path, "--steps", "6", "--out", "r", "--resume", *base, *argv)
    err = assert_one_line_error(r, "--resume", "r/last.pt was trained with", *needles)
    assert "UserWarning" not in err
    assert snapshot(tmp_path) == before


def test_resume_with_other_model_says_what_the_checkpoint_holds(run4: Path,
                                                                 tmp_path: Path) -> None:
    copy_run(run4, tmp_path / "r")
    before = snapshot(tmp_path)
    for steps in ("4", "6"):  # equal --steps too: not "nothing to train"
        r = ncmle("train", "--model", "pixelcnnpp", "--data", "digits", "--steps", steps,
                  "--batch-size", "16", "--out", "r", "--resume", "--quiet", cwd=tmp_path)
        assert_one_line_error(r, "--model pixelcnnpp", "holds a MADE", "--model made")
    assert snapshot(tmp_path) == before


def test_resume_with_same_options_continues_without_warning(run4: Path, tmp_path: Path) -> None:
    copy_run(run4, tmp_path / "r")
    r = train(tmp_path, "--steps", "6", "--batch-size", "16", "--out", "r", "--resume")
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr and "steps 4 -> 6 (resumed)" in r.stdout


# -- validation (selection) and test (report) ------------------------------------------------

def test_validation_and_test_splits_are_named_apart(tmp_path: Path) -> None:
    r = train(tmp_path, "--steps", "4", "--batch-size", "16", "--eval-every", "2",
              "--eval-size", "100", "--out", "r")  # --eval-size: deprecated alias of --test-size
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "1295 training, 143 validation, 100 test examples" in out  # 1438 train images
    assert "step 2: validation bits/dim" in out
    assert "validation bits/dim (143 examples)" in out and "test bits/dim (100 examples)" in out
    assert "eval bits/dim" not in out + r.stderr
    from ncmle_prob.training import load_checkpoint

    meta = load_checkpoint(tmp_path / "r" / "last.pt").meta
    assert meta["validation_size"] == 143 and meta["test_size"] == 100


def test_progress_in_a_log_is_plain_lines(tmp_path: Path) -> None:
    r = ncmle("train", "--data", "digits", "--hidden", "16", "--blocks", "1", "--steps", "40",
              "--batch-size", "16", "--out", "r", cwd=tmp_path)  # stderr is a pipe, not a tty
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("ncmle fit:")]
    assert 10 <= len(lines) <= 21 and lines[-1].startswith("ncmle fit: 40/40 steps (100%")


# -- folders of images ------------------------------------------------------------------------

def write_pngs(folder: Path, n: int, size: int = 8, odd: int | None = None) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        side = odd if (odd is not None and i == n - 1) else size
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(
            folder / f"{i:03d}.png")
    return folder


def test_small_folder_caps_the_batch_and_works_from_elsewhere(tmp_path: Path) -> None:
    write_pngs(tmp_path / "a" / "pics", 20)  # 18 train, 2 test images
    r = ncmle("train", "--data", "folder:pics", *TINY, "--steps", "2", "--bins", "17",
              "--out", "run", cwd=tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("--batch-size 64 is more than the 18 training examples; using "
                          "--batch-size 18") == 1
    from ncmle_prob.training import load_checkpoint

    ckpt = tmp_path / "a" / "run" / "last.pt"
    meta = load_checkpoint(ckpt).meta
    assert meta["dataset"] == f"folder:{(tmp_path / 'a' / 'pics').resolve()}"
    elsewhere = tmp_path / "b"
    elsewhere.mkdir()
    r = ncmle("evaluate", str(ckpt), "--plot", "", "--sigmas", "0", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    (tmp_path / "a" / "pics").rename(tmp_path / "a" / "moved")
    r = ncmle("evaluate", str(ckpt), "--plot", "", "--sigmas", "0", cwd=elsewhere)
    assert_one_line_error(r, "was trained on --data folder:", "pass --data SPEC")
    r = ncmle("evaluate", str(ckpt), "--plot", "", "--sigmas", "0", "--data",
              f"folder:{tmp_path / 'a' / 'moved'}", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    restore = ("restore", "--task", "denoise", "--checkpoint", str(ckpt), "--input", "test:0",
               "--corrupt", "--num-samples", "2", "--warmup", "2", "--out", "r.png")
    r = ncmle(*restore, cwd=elsewhere)
    assert_one_line_error(r, "was trained on --data folder:", "pass --data SPEC")
    r = ncmle(*restore, "--data", f"folder:{tmp_path / 'a' / 'moved'}", cwd=elsewhere)
    assert r.returncode == 0, r.stderr


def test_mixed_size_folder_names_the_flag(tmp_path: Path) -> None:
    write_pngs(tmp_path / "pics", 12, odd=10)
    before = snapshot(tmp_path)
    r = ncmle("train", "--data", "folder:pics", *TINY, "--steps", "2", "--out", "run",
              cwd=tmp_path)
    err = assert_one_line_error(r, "--image-size")
    assert "size=" not in err
    assert snapshot(tmp_path) == before
