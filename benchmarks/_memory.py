"""Peak-memory measurement of one call, for benchmarks (Linux ``/proc``; fallback elsewhere).

torch's CPU tensors bypass Python's allocator, so :mod:`tracemalloc` cannot see them. What
can is the kernel's record of the process's resident memory: :func:`peak_growth` resets the
peak-RSS mark ``VmHWM`` to the current RSS (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0),
runs the call, and returns how far the peak rose above the RSS before it. That counts
everything the call touched (tensors, autograd graphs, allocator caches, the Python heap).
Without ``/proc`` it falls back to the growth of ``ru_maxrss``, which is exact only if the
call exceeds everything the process did before. Run each measurement in a fresh subprocess
(:func:`run_children`) so that one measurement's freed-but-cached memory does not hide the
next one's.

Example:
    >>> import torch
    >>> out = peak_growth(lambda: torch.ones(4_000_000).sum())  # a 16 MB temporary
    >>> out["peak_delta_mib"] > 10
    True
"""

from __future__ import annotations

import json
import resource
import subprocess
from collections.abc import Callable, Mapping, Sequence

__all__ = ["peak_growth", "reset_peak_rss", "run_children", "status_mib"]


def status_mib(field: str) -> float | None:
    """A ``VmXXX`` field (e.g. ``"VmRSS"``, ``"VmHWM"``) of ``/proc/self/status`` in MiB, or
    ``None`` where ``/proc`` is unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Resets ``VmHWM`` to the current RSS; ``False`` where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_growth(call: Callable[[], object]) -> dict[str, float]:
    """Peak resident memory (MiB) that ``call`` adds over the RSS before it.

    Returns:
        ``baseline_mib`` (RSS before), ``peak_delta_mib`` (peak minus baseline) and
        ``ru_maxrss_fallback`` (1.0 if ``/proc`` was unavailable).
    """
    base = status_mib("VmRSS")
    if base is not None and reset_peak_rss():
        call()
        peak = status_mib("VmHWM")
        if peak is not None:
            return {"baseline_mib": base, "peak_delta_mib": peak - base, "ru_maxrss_fallback": 0.0}
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    call()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"baseline_mib": base, "peak_delta_mib": peak - base, "ru_maxrss_fallback": 1.0}


def run_children(
    commands: Mapping[str, Sequence[str]], timeout: float = 1800.0
) -> dict[str, dict[str, float]]:
    """Runs each command in its own process, concurrently, and parses the JSON object each
    prints as its last line of output (concurrency is harmless: each process measures its own
    peak)."""
    procs = {
        name: subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, cmd in commands.items()
    }
    out: dict[str, dict[str, float]] = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child {name!r} failed:\n{stderr[-2000:]}")
        out[name] = json.loads(stdout.strip().splitlines()[-1])
    return out
