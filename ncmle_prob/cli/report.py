"""The text of ``ncmle evaluate``: its console tables and the Markdown tables for a paper."""

from __future__ import annotations

from typing import Any

__all__ = ["SAMPLE_METRICS", "format_metrics", "format_table", "markdown_tables"]

#: the sample metrics ``--metrics`` accepts (on classifier features)
SAMPLE_METRICS = ("fcd", "kid", "precision", "recall")


def format_table(results: dict[str, dict[float, float]]) -> str:
    """A text table: one row per σ, one column per model.

    Example:
        >>> from ncmle_prob.cli.report import format_table
        >>> print(format_table({"mle": {0.0: 1.9}, "ncmle": {0.0: 1.93, 0.2: 2.5}}))
             σ         mle       ncmle
             0      1.9000      1.9300
           0.2           -      2.5000
    """
    labels = list(results)
    sigmas = sorted({s for r in results.values() for s in r})
    width = max(10, *(len(lab) for lab in labels))
    lines = ["σ".rjust(6) + "".join(lab.rjust(width + 2) for lab in labels)]
    for s in sigmas:
        row = f"{s:6.3g}" + "".join(
            (f"{results[lab][s]:.4f}" if s in results[lab] else "-").rjust(width + 2)
            for lab in labels
        )
        lines.append(row)
    return "\n".join(lines)


def _pm(m: dict[str, Any], key: str) -> str:
    std = m.get(f"{key}_std")
    value = m[key]
    digits = 4 if abs(value) < 1 else 3
    if std is None or std != std:  # nan: one resplit
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {std:.{digits}f}"


def format_metrics(scores: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The sample-metric lines of ``ncmle evaluate`` (one per model and sampler)."""
    first = next(iter(next(iter(scores.values())).values()))
    lines = [f"sample metrics at σ=0: {first['num_samples']} samples vs {first['num_reference']} "
             f"test images (classifier features), mean ± std over {first['repeats']} resplits; "
             f"floor: {first['num_samples']} held-out test images vs the same reference"]
    for label, per in scores.items():
        for sampler, m in per.items():
            names = [k for k in SAMPLE_METRICS if k in m]
            parts = [f"{k.upper() if k in ('fcd', 'kid') else k} {_pm(m, k)} "
                     f"(floor {_pm(m, k + '_floor')})" for k in names]
            lines.append(f"  {label} / {sampler}: " + ", ".join(parts)
                         + f"; {m['samples_per_s']:.1f} samples/s")
    return "\n".join(lines)


def markdown_tables(results: dict[str, dict[float, float]],
                    scores: dict[str, dict[str, dict[str, Any]]], facts: dict[str, Any]) -> str:
    """Markdown tables to paste into a paper: bits/dim against σ, and sample metrics.

    Example:
        >>> from ncmle_prob.cli.report import markdown_tables
        >>> print(markdown_tables({"mle": {0.0: 1.9, 0.2: 3.0}}, {}, {"data": "digits"}))
        Test bits/dim on digits
        <BLANKLINE>
        | model | σ=0 | σ=0.2 |
        |---|---|---|
        | mle | 1.9000 | 3.0000 |
    """
    sigmas = sorted({s for r in results.values() for s in r})
    out = [f"Test bits/dim on {facts['data']}", "",
           "| model | " + " | ".join(f"σ={s:g}" for s in sigmas) + " |",
           "|---" * (len(sigmas) + 1) + "|"]
    for label, r in results.items():
        out.append(f"| {label} | " + " | ".join(f"{r[s]:.4f}" if s in r else "-" for s in sigmas)
                   + " |")
    if scores:
        first = next(iter(next(iter(scores.values())).values()))
        names = [k for k in SAMPLE_METRICS if k in first]
        out += ["", f"Sample metrics at σ=0 on {facts['data']}: {first['num_samples']} samples "
                f"against {first['num_reference']} test images, mean ± std over "
                f"{first['repeats']} resplits; floor: {first['num_samples']} held-out test "
                "images against the same reference images", "",
                "| model | sampler | " + " | ".join(f"{k} | {k} floor" for k in names) + " |",
                "|---" * (2 + 2 * len(names)) + "|"]
        for label, per in scores.items():
            for sampler, m in per.items():
                out.append(f"| {label} | {sampler} | " + " | ".join(
                    f"{_pm(m, k)} | {_pm(m, k + '_floor')}" for k in names) + " |")
    return "\n".join(out)
