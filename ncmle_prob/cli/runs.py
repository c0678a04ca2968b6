"""A run folder of ``ncmle train``: who may write it, and whether a resume continues the same run.

* A fresh ``ncmle train`` into a folder that already holds ``last.pt`` is refused unless
  ``--resume`` (continue it) or ``--overwrite`` (replace it) says what to do.
* While a training owns the folder it holds ``OUT/.ncmle.lock`` (the pid and host of the
  process). A second training into the same folder is refused; a lock left by a process that
  no longer runs (killed with SIGKILL, a crashed machine) is taken over with a note.
* Temporaries ``.last.pt.*.tmp`` of an interrupted checkpoint write are removed when a training
  takes the folder over (it owns the lock, so nothing else can be writing them).
* A resume must continue the same run: the checkpoint's model (``--model``) and its optimiser
  and noise options (``--lr``, ``--batch-size``, ...) must match, else one line names what
  differs.

Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import socket
from pathlib import Path
from typing import Any

from ..models import catalogue as _models
from .common import CLIError, say

__all__ = [
    "LOCK_NAME",
    "RESUMED_OPTIONS",
    "RunLock",
    "check_fresh_run",
    "check_resume_model",
    "check_resume_options",
    "clean_stale_temporaries",
]

LOCK_NAME = ".ncmle.lock"

#: ``train_config`` keys that a resume must keep, with the flag that sets each
RESUMED_OPTIONS = {"lr": "--lr", "batch_size": "--batch-size", "grad_clip": "--grad-clip",
                   "ema": "--ema", "amp": "--amp", "seed": "--seed",
                   "validation_size": "--validation-size", "patience": "--patience",
                   "min_delta": "--min-delta", "eval_every": "--eval-every",
                   "monitor": "the first --eval-sigmas"}
_PRIOR_OPTIONS = {"p_zero": "--p-zero", "sigma_min": "--sigma-min", "sigma_max": "--sigma-max"}


def check_fresh_run(out: Path, checkpoint: str, args: argparse.Namespace) -> None:
    """Refuses a fresh run into a folder holding a checkpoint (no ``--resume``/``--overwrite``).

    Example:
        >>> import argparse, pathlib, tempfile
        >>> from ncmle_prob.cli.runs import check_fresh_run
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "last.pt").write_bytes(b"x")
        >>> check_fresh_run(d, "last.pt", argparse.Namespace(overwrite=False))
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: --out ...: the folder already holds a run (...last.pt); ...
    """
    ckpt = out / checkpoint
    if ckpt.exists() and not getattr(args, "overwrite", False):
        raise CLIError(f"--out {out}: the folder already holds a run ({ckpt}); pass --resume to "
                       "continue it or --overwrite to replace it, or choose another --out")


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM  # it exists, owned by someone else
    return True


def _read_lock(path: Path) -> tuple[int, str]:
    try:
        fields = path.read_text().split()
        return int(fields[0]), (fields[1] if len(fields) > 1 else "")
    except (OSError, ValueError, IndexError):
        return -1, ""


class RunLock:
    """``OUT/.ncmle.lock`` held while a training writes ``OUT`` (a context manager).

    The lock file holds ``"<pid> <host>"``; it is created with ``O_EXCL`` and removed on exit.
    A lock of a dead process on this host (or an unreadable one) is taken over with a note.

    Example:
        >>> import pathlib, tempfile
        >>> from ncmle_prob.cli.runs import RunLock
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with RunLock(d):
        ...     (d / ".ncmle.lock").exists()
        True
        >>> (d / ".ncmle.lock").exists()
        False
    """

    def __init__(self, out: Path, flag: str = "--out") -> None:
        self.out, self.flag = Path(out), flag
        self.path = self.out / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        """Takes the lock (creating ``out``), or raises :class:`CLIError` if a live process
        holds it."""
        self.out.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid, their_host = _read_lock(self.path)
                if pid > 0 and their_host not in ("", host):
                    raise CLIError(
                        f"{self.flag} {self.out}: a training on {their_host} (pid {pid}) holds "
                        f"this run folder ({self.path}); wait for it, or delete the lock file "
                        "if it no longer runs") from None
                if _alive(pid):
                    raise CLIError(
                        f"{self.flag} {self.out}: another training (pid {pid}) is writing this "
                        f"run folder ({self.path}); wait for it to end or choose another "
                        f"{self.flag}") from None
                say(f"note: taking over the stale lock {self.path} of process {pid}, which no "
                    "longer runs")
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {host}\n")
            self.held = True
            return
        raise CLIError(f"{self.flag} {self.out}: could not take the lock {self.path}")

    def release(self) -> None:
        """Removes the lock file if this process holds it."""
        if self.held:
            pid, _ = _read_lock(self.path)
            if pid == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def clean_stale_temporaries(out: Path, checkpoint: str) -> list[Path]:
    """Removes ``.<checkpoint>.*.tmp`` files of interrupted writes (call with the lock held).

    Returns:
        The removed paths (a note is printed for them).
    """
    removed = []
    for tmp in sorted(out.glob(f".{checkpoint}.*.tmp")):
        try:
            tmp.unlink()
        except OSError:
            continue
        removed.append(tmp)
    if removed:
        say(f"note: removed {len(removed)} stale temporary file(s) of an interrupted checkpoint "
            f"write: {', '.join(p.name for p in removed)}")
    return removed


def check_resume_model(ckpt_path: Path, model_class: str | None, meta: dict[str, Any],
                       model: str) -> None:
    """Refuses to resume a checkpoint of another network than ``--model``."""
    record = _models.by_class(model_class or "")
    held = meta.get("model") or (record.name if record is not None else None)
    if held is not None and held != model:
        raise CLIError(f"--model {model}: {ckpt_path} holds a {model_class or held} (trained "
                       f"with --model {held}); pass --model {held} to resume it, or --overwrite "
                       "to start a new run")


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not (
        isinstance(a, bool) or isinstance(b, bool)
    ):
        return abs(float(a) - float(b)) > 1e-12 * max(1.0, abs(float(a)))
    return a != b


def check_resume_options(ckpt_path: Path, before: dict[str, Any], now: dict[str, Any],
                         objective_before: str | None, objective_now: str) -> None:
    """Refuses a resume whose optimiser, batch or noise options differ from the checkpoint's.

    Args:
        ckpt_path: the checkpoint (for the message).
        before: its ``train_config``.
        now: this command's values of the same keys (``prior`` as a dict).
        objective_before: the checkpoint's ``--objective`` (``meta["objective"]``).
        objective_now: this command's ``--objective``.

    Example:
        >>> from ncmle_prob.cli.runs import check_resume_options
        >>> check_resume_options("last.pt", {"lr": 0.002, "seed": 0}, {"lr": 0.01, "seed": 0},
        ...                      "ncmle", "ncmle")
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: --resume: last.pt was trained with --lr 0.002; ...
    """
    diffs: list[tuple[str, Any, Any]] = []
    if objective_before is not None and objective_before != objective_now:
        diffs.append(("--objective", objective_before, objective_now))
    for key, flag in RESUMED_OPTIONS.items():
        if key in before and key in now and _differs(before[key], now[key]):
            diffs.append((flag, before[key], now[key]))
    p0, p1 = before.get("prior"), now.get("prior")
    if isinstance(p0, dict) and isinstance(p1, dict) and objective_before == objective_now:
        for key, flag in _PRIOR_OPTIONS.items():
            if key in p0 and key in p1 and _differs(p0[key], p1[key]):
                diffs.append((flag, p0[key], p1[key]))
    if not diffs:
        return

    def show(flag: str, value: Any) -> str:
        return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"

    raise CLIError(
        f"--resume: {ckpt_path} was trained with " + ", ".join(show(f, a) for f, a, _ in diffs)
        + "; this command asks for " + ", ".join(show(f, b) for f, _, b in diffs)
        + ". A resume continues the same run: drop these options (or pass the checkpoint's "
        "values), or start a new run with --overwrite or another --out")
