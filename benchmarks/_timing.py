"""Paired, interleaved timing for benchmarks on noisy, shared CPUs.

Absolute times on a shared machine drift by tens of percent from one second to the next, so
the only figures worth printing are *ratios of functions timed side by side*. This helper
times several zero-argument callables in interleaved rounds (the order rotates every round so
that no function always runs first or last), and reports per-call medians and, for any pair,
the median of the per-round ratios with its interquartile spread:

.. math::

    r_k = \\frac{t_k(a)}{t_k(b)}, \\qquad
    \\text{ratio}(a, b) = \\operatorname{median}_k r_k \\;
    [\\,q_{25}(r),\\; q_{75}(r)\\,].

Because both functions of a round run within milliseconds of each other, a burst of load
from another process inflates both and mostly cancels in :math:`r_k`. By default the clock is
the process CPU time (:func:`time.process_time`), which does not count the time the process
waits for a core while other processes run; with ``torch.set_num_threads(1)`` it equals the
time the computation took on one core. Pass ``clock="wall"`` for multi-threaded code, where
CPU time would add up the threads.

Example:
    >>> import math
    >>> t = interleaved({"a": lambda: sum(range(200)), "b": lambda: sum(range(100))},
    ...                 repeats=3, min_time=1e-4)
    >>> r = t.ratio("a", "b")
    >>> r.low <= r.median <= r.high and math.isfinite(r.median)
    True
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["Ratio", "Timings", "interleaved", "quantile"]


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile of ``values`` (``q`` in [0, 1])."""
    if not values:
        raise ValueError("quantile: values is empty")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile: q must be in [0, 1], got {q}")
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass(frozen=True)
class Ratio:
    """Median of paired per-round ratios with the interquartile range of those ratios."""

    median: float
    low: float
    high: float

    def __format__(self, spec: str) -> str:
        return f"{self.median:.2f}x [{self.low:.2f}-{self.high:.2f}]"

    def __str__(self) -> str:
        return format(self, "")


@dataclass
class Timings:
    """Per-call times (seconds) of each function, one entry per interleaved round."""

    times: dict[str, list[float]] = field(default_factory=dict)
    number: dict[str, int] = field(default_factory=dict)

    def median(self, name: str) -> float:
        """Median seconds per call of ``name``."""
        return statistics.median(self._get(name))

    def ratio(self, a: str, b: str, scale_b: float = 1.0) -> Ratio:
        """Paired ratio ``t(a) / (scale_b * t(b))`` over the rounds.

        Args:
            a: numerator function.
            b: denominator function.
            scale_b: multiplies the denominator (e.g. ``D`` for "D network forwards").
        """
        ta, tb = self._get(a), self._get(b)
        rs = [x / (scale_b * y) for x, y in zip(ta, tb)]
        return Ratio(statistics.median(rs), quantile(rs, 0.25), quantile(rs, 0.75))

    def _get(self, name: str) -> list[float]:
        if name not in self.times:
            raise KeyError(f"no timings for {name!r}; have {sorted(self.times)}")
        return self.times[name]


_CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


def _calibrate(fn: Callable[[], object], min_time: float, now: Callable[[], float]) -> int:
    """Smallest power-of-two call count whose block takes at least ``min_time`` seconds."""
    number = 1
    while True:
        start = now()
        for _ in range(number):
            fn()
        if now() - start >= min_time or number >= 1 << 20:
            return number
        number *= 2


def interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    repeats: int = 11,
    min_time: float = 0.05,
    warmup: int = 1,
    number: Mapping[str, int] | None = None,
    clock: str = "cpu",
) -> Timings:
    """Times ``fns`` in ``repeats`` interleaved rounds.

    Each round times one block of ``number[name]`` calls of every function, in an order that
    rotates by one position per round. ``gc`` runs once before the rounds and is disabled
    inside each block, so that a collection does not land on one side of a pair.

    Args:
        fns: name -> zero-argument callable.
        repeats: number of rounds (use an odd number so the median is one round).
        min_time: target seconds per block when ``number`` is calibrated.
        warmup: untimed calls of each function before calibration.
        number: calls per block per function; calibrated with ``min_time`` if omitted.
        clock: ``"cpu"`` (process CPU time, the default) or ``"wall"`` (elapsed time).

    Returns:
        :class:`Timings` with one per-call time per round for every function.
    """
    if not fns:
        raise ValueError("interleaved: fns is empty")
    if repeats < 1:
        raise ValueError(f"interleaved: repeats must be >= 1, got {repeats}")
    if clock not in _CLOCKS:
        raise ValueError(f"interleaved: clock must be one of {sorted(_CLOCKS)}, got {clock!r}")
    now = _CLOCKS[clock]
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    counts = dict(number) if number is not None else {}
    for name in names:
        counts.setdefault(name, _calibrate(fns[name], min_time, now))
    out = Timings({n: [] for n in names}, counts)
    enabled = gc.isenabled()
    gc.collect()
    try:
        for r in range(repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                fn, k = fns[name], counts[name]
                gc.disable()
                start = now()
                for _ in range(k):
                    fn()
                elapsed = now() - start
                if enabled:
                    gc.enable()
                out.times[name].append(elapsed / k)
    finally:
        if enabled:
            gc.enable()
    return out
