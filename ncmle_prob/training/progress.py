"""The training progress display: a tqdm bar on a terminal, plain lines elsewhere.

In a log file or CI (stderr is not a terminal) a tqdm bar writes a carriage-return update per
refresh, hundreds of them per run. :class:`PlainProgress` writes one plain line every
``every_percent`` percent of the steps instead, with the same numbers as the bar's postfix.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["PlainProgress", "make_progress"]


class PlainProgress:
    """A tqdm-like progress display that prints a plain line every few percent.

    Example:
        >>> import io
        >>> from ncmle_prob.training.progress import PlainProgress
        >>> f = io.StringIO()
        >>> bar = PlainProgress(total=4, initial=0, desc="fit", file=f, every_percent=50)
        >>> for _ in range(4):
        ...     bar.update(1)
        >>> print(f.getvalue().count("\\r"), f.getvalue().splitlines()[0].split(" (")[0])
        0 fit: 2/4 steps
    """

    def __init__(self, total: int, initial: int = 0, desc: str = "", *,
                 file: TextIO | None = None, every_percent: float = 5.0,
                 disable: bool = False) -> None:
        self.total, self.n, self.desc, self.disable = total, initial, desc, disable
        self.file = file
        self.every = max(1, round(total * every_percent / 100))
        self.postfix = ""
        self.t0, self.start = time.perf_counter(), initial

    def _out(self) -> TextIO:
        return self.file if self.file is not None else sys.stderr

    def update(self, n: int = 1) -> None:
        """Advances by ``n`` steps; prints a line at every ``every_percent`` and at the end."""
        before, self.n = self.n, self.n + n
        if self.disable:
            return
        if self.n // self.every != before // self.every or self.n == self.total:
            elapsed = time.perf_counter() - self.t0
            rate = (self.n - self.start) / max(elapsed, 1e-9)
            pct = 100.0 * self.n / max(self.total, 1)
            extra = f", {self.postfix}" if self.postfix else ""
            print(f"{self.desc}: {self.n}/{self.total} steps ({pct:.0f}%, {rate:.2f} step/s"
                  f"{extra})", file=self._out(), flush=True)

    def set_postfix(self, **values: Any) -> None:
        """Values shown on the next line (``loss=...``, ...)."""
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def write(self, text: str) -> None:
        """Prints ``text`` on its own line."""
        if not self.disable:
            print(text, file=self._out(), flush=True)

    def close(self) -> None:
        """Nothing to clean up (for tqdm's interface)."""


def make_progress(total: int, initial: int, desc: str, *, enabled: bool) -> Any:
    """A tqdm bar when stderr is a terminal, else a :class:`PlainProgress` (both disabled when
    ``enabled`` is false)."""
    stream = sys.stderr
    if enabled and not (hasattr(stream, "isatty") and stream.isatty()):
        return PlainProgress(total, initial, desc)
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                disable=not enabled, desc=desc)
