"""Progress bars of ``ncmle sample`` / ``restore`` / ``evaluate``: on a terminal only, never
under ``--quiet``; and ``--batch-size`` reaches the sampler."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ncmle_prob.cli import main
from ncmle_prob.cli.common import show_progress
from ncmle_prob.models import MADE
from ncmle_prob.training import save_checkpoint


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "m.pt", MADE(features=2, hidden_features=8))


def test_show_progress_needs_a_terminal_and_no_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not show_progress(quiet=False)  # a pipe, a file, captured output: no bar
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert show_progress(quiet=False)
    assert not show_progress(quiet=True)


def test_sample_bar_off_when_stderr_is_not_a_tty(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Captured stderr is not a terminal: the draws leave no bar (nor tqdm's carriage
    returns) in it."""
    out = tmp_path / "s.png"
    assert main(["sample", str(ckpt), "-n", "20", "--method", "annealed_langevin",
                 "--batch-size", "8", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "draw" not in err and "\r" not in err


def test_sample_bar_on_a_terminal_shows_draws_per_second(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    assert main(["sample", str(ckpt), "-n", "20", "--batch-size", "8",
                 "--out", str(tmp_path / "s.png")]) == 0
    shown = term.getvalue()
    assert "20/20" in shown and "draw/s" in shown
    quiet = _Terminal()
    monkeypatch.setattr("sys.stderr", quiet)
    assert main(["sample", str(ckpt), "-n", "20", "--quiet",
                 "--out", str(tmp_path / "q.png")]) == 0
    assert "draw" not in quiet.getvalue()


def test_help_says_what_the_flags_do(capsys: pytest.CaptureFixture) -> None:
    for command in ("sample", "restore", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--batch-size" in text and "--quiet" in text
        if command == "sample":
            assert "σ > 0 on grid data" in text
