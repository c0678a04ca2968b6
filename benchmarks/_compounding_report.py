"""Aggregation (mean ± SE over training seeds, paired differences), Markdown tables, figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Runs = dict[int, list[dict[str, Any]]]  # training seed -> one metrics dict per sampling seed


def _mean(v: Sequence[float]) -> float:
    return sum(v) / len(v)


def _se(v: Sequence[float]) -> float:
    n = len(v)
    if n < 2:
        return 0.0
    m = _mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1) / n)


def per_seed(runs: Runs, key: str) -> dict[int, float]:
    """Per training seed, the mean of ``key`` over its sampling seeds."""
    return {s: _mean([r[key] for r in rs]) for s, rs in runs.items() if rs and key in rs[0]}


def summary(runs: Runs, key: str) -> tuple[float, float]:
    """Mean over training seeds of the per-seed means, and its SE (across training seeds)."""
    v = list(per_seed(runs, key).values())
    return (_mean(v), _se(v)) if v else (float("nan"), float("nan"))


def paired(runs: Runs, base: Runs, key: str) -> tuple[float, float]:
    """Mean and SE over training seeds of (method - base), each averaged over sampling seeds."""
    a, b = per_seed(runs, key), per_seed(base, key)
    diffs = [a[s] - b[s] for s in a if s in b]
    return (_mean(diffs), _se(diffs)) if diffs else (float("nan"), float("nan"))


def sampling_spread(runs: Runs, key: str) -> float:
    """Run-to-run (sampling-seed) standard deviation, pooled over training seeds."""
    devs, dof = 0.0, 0
    for rs in runs.values():
        v = [r[key] for r in rs]
        if len(v) > 1:
            m = _mean(v)
            devs += sum((x - m) ** 2 for x in v)
            dof += len(v) - 1
    return math.sqrt(devs / dof) if dof else float("nan")


def fmt(m: float, se: float | None = None, digits: int = 3) -> str:
    if m != m:  # NaN
        return "n/a"
    scale = max(abs(m), 1e-3)
    dec = max(0, digits - 1 - math.floor(math.log10(scale))) if scale < 10 else 1
    dec = min(dec, 6)
    s = f"{m:.{dec}f}"
    return s if se is None else f"{s} ± {se:.{dec}f}"


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = [f"## {title}", "", "| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def prefix_figure(results: dict[int, dict[str, Any]], path: Path) -> None:
    """KL(p(x_<=i) || q(x_<=i)) against i/D for MLE and NCMLE ancestral draws, per D."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted(results)
    fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims), 3.4), squeeze=False)
    for ax, d in zip(axes[0], dims):
        for label, prof in results[d]["prefix_kl"].items():
            i = [int(k) for k in prof]
            m = [prof[k][0] for k in prof]
            se = [prof[k][1] for k in prof]
            ax.errorbar(i, m, yerr=se, marker="o", capsize=3, label=label)
        i_all = [int(k) for k in next(iter(results[d]["prefix_kl"].values()))]
        ax.set_xticks(i_all)
        ax.set_xlabel("prefix length i")
        ax.set_ylabel(r"KL($p_\theta(x_{\leq i})\,\|\,q(x_{\leq i})$) [nats]")
        ax.set_title(f"D = {d}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def speed_figure(points: list[dict[str, Any]], floor: float, path: Path) -> None:
    """Energy distance against seconds per sample (log-log) for every timed setting."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault(p["group"], []).append(p)
    for g, ps in groups.items():
        ax.scatter([1.0 / p["samples_per_s"] for p in ps], [max(p["energy"], 1e-3) for p in ps],
                   label=g, s=22)
    if floor > 0:  # the U-statistic of two oracle sets can be slightly negative
        ax.axhline(floor, color="k", ls="--", lw=1, label="oracle floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("wall seconds per sample (1 shared CPU core, provisional)")
    ax.set_ylabel("energy distance to oracle")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _rst_cell(text: str) -> str:
    text = text.replace("*", "\\*") if "**" not in text else text
    return "\\" + text if text[:1] in "(-+#" and text[1:2] not in "0123456789." else text


def md_to_rst(markdown: str) -> str:
    """The script's Markdown (``## title`` + pipe tables + paragraphs) as reStructuredText
    (rubrics and ``list-table`` directives), for ``.. include::`` in the docs page."""
    out: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("# "):
            i += 1
            continue
        if ln.startswith("## "):
            out += [f".. rubric:: {ln[3:].replace('|', chr(92) + '|')}", ""]
        elif ln.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not set(lines[i]) <= set("|-: "):
                    rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            out += [".. list-table::", "   :header-rows: 1", ""]
            for r in rows:
                out.append(f"   * - {_rst_cell(r[0])}")
                out += [f"     - {_rst_cell(c)}" for c in r[1:]]
            out.append("")
            continue
        else:
            out.append(ln.replace("|", "\\|"))  # no RST substitutions in prose
        i += 1
    return "\n".join(out) + "\n"
