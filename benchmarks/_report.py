"""Formatting helpers shared by the benchmark scripts: ratio cells, Markdown tables, verdicts."""

from __future__ import annotations

from _timing import Ratio, Timings

__all__ = ["Verdicts", "check", "fmt", "inverse", "ratio", "table"]

#: Goal lines, each starting with ``met`` or ``MISSED``.
Verdicts = list[str]


def fmt(r: Ratio | None) -> str:
    """A ratio cell, ``1.08x [1.05-1.11]``, or ``n/a``."""
    return "n/a" if r is None else format(r)


def ratio(t: Timings, a: str, b: str, scale: float = 1.0) -> Ratio | None:
    """``t.ratio(a, b)`` when both were timed, else ``None``."""
    return t.ratio(a, b, scale) if a in t.times and b in t.times else None


def inverse(r: Ratio | None) -> Ratio | None:
    """Throughput ratio from a time ratio: t(them)/t(ours) = 1 / (t(ours)/t(them))."""
    return None if r is None else Ratio(1 / r.median, 1 / r.high, 1 / r.low)


def table(title: str, header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table under a ``##`` heading."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells: list[object]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"\n## {title}\n", line(header), sep, *map(line, rows)])


def check(verdicts: Verdicts, name: str, r: Ratio | None, ok: bool | None, rule: str) -> None:
    """Appends ``met``/``MISSED`` for one goal (nothing when the ratio was not measured)."""
    if r is not None and ok is not None:
        verdicts.append(f"{'met   ' if ok else 'MISSED'} {name} {rule}: {r}")
