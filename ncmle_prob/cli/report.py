"""The text of ``ncmle evaluate``: its console tables and the Markdown tables for a paper."""

from __future__ import annotations

from typing import Any

__all__ = ["SAMPLE_METRICS", "format_metrics", "format_table", "half_bin_note",
           "markdown_tables"]

#: the sample metrics ``--metrics`` accepts (on classifier features)
SAMPLE_METRICS = ("fcd", "kid", "precision", "recall")


#: KID is printed raw (scale ×1), as :func:`ncmle_prob.metrics.kid` returns it
KID_NOTE = ("KID is the raw MMD² (cubic kernel) of the classifier's features, not scaled by "
            "10³; it is an unbiased estimate, so it scatters around 0 and can be negative where "
            "two sets are as alike as two real ones (the floor)")


def half_bin_note(sigmas: list[float] | tuple[float, ...], bins: int | None) -> str | None:
    """A note for the σ > 0 below half a bin of grid data (their bits/dim may be below σ = 0's).

    Example:
        >>> from ncmle_prob.cli.report import half_bin_note
        >>> print(half_bin_note([0, 0.02, 0.2], 17))
        note: σ=0.02 is below half a bin (0.0625 on 17 levels in [-1, 1]): ...
        >>> half_bin_note([0, 0.2], 17) is None
        True
    """
    if bins is None:
        return None
    half = 1.0 / (bins - 1)
    small = [s for s in sigmas if 0 < s < half]
    if not small:
        return None
    return (f"note: σ={', '.join(f'{s:g}' for s in small)} {'is' if len(small) == 1 else 'are'} "
            f"below half a bin ({half:.4g} on {bins} levels in [-1, 1]): such noise barely "
            "moves a value off its level, and the bits/dim of a density there is measured on "
            "the bin width, so it can be lower than the σ = 0 bits/dim of the discrete data")


#: samplers that move through noisy levels σ > 0 with the model's score
NOISY_LEVEL_SAMPLERS = ("annealed_langevin", "score_corrected_ancestral", "pyro_langevin")


def trained_noisy_levels(train_config: dict[str, Any], meta: dict[str, Any]) -> bool | None:
    """Whether a checkpoint was trained at any σ > 0 (``None``: it does not say).

    Example:
        >>> from ncmle_prob.cli.report import trained_noisy_levels
        >>> trained_noisy_levels({"prior": {"p_zero": 1.0}}, {}), trained_noisy_levels({}, {})
        (False, None)
    """
    if meta.get("objective") == "mle":
        return False
    prior = train_config.get("prior")
    if not isinstance(prior, dict) or "p_zero" not in prior:
        return None
    if prior.get("kind") == "ladder":
        return float(prior["p_zero"]) < 1 and any(s > 0 for s in prior.get("ladder") or ())
    return float(prior["p_zero"]) < 1


def noisy_levels_warning(train_config: dict[str, Any], meta: dict[str, Any],
                         methods: list[str], sigma: float = 0.0) -> str | None:
    """A warning for score-based sampling (or σ > 0) with a model never trained at σ > 0.

    Example:
        >>> from ncmle_prob.cli.report import noisy_levels_warning
        >>> print(noisy_levels_warning({"prior": {"p_zero": 1.0}}, {}, ["annealed_langevin"]))
        warning: the checkpoint was trained by MLE only ...
        >>> noisy_levels_warning({"prior": {"p_zero": 1.0}}, {}, ["ancestral"]) is None
        True
    """
    if trained_noisy_levels(train_config, meta) is not False:
        return None
    noisy = [m for m in methods if m in NOISY_LEVEL_SAMPLERS]
    if not noisy and sigma <= 0:
        return None
    what = (f"sampler {', '.join(noisy)} uses its score at σ > 0" if noisy
            else f"--sigma {sigma:g} asks for a noisy level")
    return (f"warning: the checkpoint was trained by MLE only (its noise prior has no σ > 0), so "
            f"it has no trained noisy levels, but {what}: expect poor samples; train with "
            "--objective ncmle for that")


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
            parts = [f"{_name(k)} {_pm(m, k)} "
                     f"(floor {_pm(m, k + '_floor')})" for k in names]
            lines.append(f"  {label} / {sampler}: " + ", ".join(parts)
                         + f"; {m['samples_per_s']:.1f} samples/s")
    if any("kid" in m for per in scores.values() for m in per.values()):
        lines.append("  " + KID_NOTE)
    return "\n".join(lines)


def _name(metric: str) -> str:
    return {"fcd": "FCD", "kid": "KID (raw MMD²)"}.get(metric, metric)


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
                "| model | sampler | " + " | ".join(f"{_name(k)} | {_name(k)} floor"
                                                    for k in names) + " |",
                "|---" * (2 + 2 * len(names)) + "|"]
        for label, per in scores.items():
            for sampler, m in per.items():
                out.append(f"| {label} | {sampler} | " + " | ".join(
                    f"{_pm(m, k)} | {_pm(m, k + '_floor')}" for k in names) + " |")
        if "kid" in names:
            out += ["", KID_NOTE + "."]
    return "\n".join(out)
