"""Stage ``report``: Markdown tables, two figures and the verdicts, from the stages' JSON only.

Every verdict is computed by :func:`.stats.paired` from numbers the tables print; a comparison
with fewer than two finished seeds prints "not tested" instead of a verdict.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .plan import Study
from .stats import paired

__all__ = ["report"]


def _ms(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    m = sum(values) / len(values)
    if len(values) < 2:
        return f"{m:.{digits}f}"
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def _verdict(diffs: list[float], lower_is_better: bool = True) -> str:
    if len(diffs) < 2:
        return f"not tested ({len(diffs)} paired seed{'s' if len(diffs) != 1 else ''})"
    p = paired(diffs, lower_is_better=lower_is_better)
    return (f"{p.verdict}: mean difference {p.mean:+.4f}, 95 % CI [{p.low:+.4f}, {p.high:+.4f}],"
            f" smallest detectable {p.mde:.4f} (n = {p.n})")


def _training(lik: dict[str, Any]) -> list[str]:
    out = ["### Training (early stopping on validation bits/dim at σ = 0; the best update's "
           "weights are kept)", "",
           "| run | updates | best update | stopped by | best validation bits/dim |",
           "|---|---|---|---|---|"]
    for name, r in lik["runs"].items():
        if not r.get("trained"):
            out.append(f"| {name} | not trained | | | |")
            continue
        reason = r.get("stop_reason") or "still running"
        if reason.startswith("early stopping"):
            reason = "early stopping"  # the rule is the same for all runs: --patience above
        best = r.get("best_validation_bits_per_dim")
        out.append(f"| {name} | {r['step']} | {r.get('best_step')} | {reason} | "
                   f"{'-' if best is None else f'{best:.4f}'} |")
    return out


def _likelihood(lik: dict[str, Any]) -> list[str]:
    sigmas = list(next((r["bits_per_dim"] for r in lik["runs"].values()
                        if "bits_per_dim" in r), {}))
    out = ["", f"### Test bits/dim against σ ({lik['test_images']} test images, mean ± sd over "
           "the finished seeds)", "",
           "| objective | " + " | ".join(f"σ={float(s):g}" for s in sigmas) + " |",
           "|---" * (len(sigmas) + 1) + "|"]
    for obj in ("mle", "ncmle"):
        cells = []
        for s in sigmas:
            vals = [r["bits_per_dim"][s] for n, r in lik["runs"].items()
                    if n.startswith(obj + "-") and "bits_per_dim" in r and r["finished"]]
            cells.append(_ms(vals, 4))
        out.append(f"| {obj.upper()} | " + " | ".join(cells) + " |")
    out += ["", "NCMLE − MLE, paired over seeds (negative: NCMLE better):", ""]
    for s, c in lik["ncmle_minus_mle"].items():
        out.append(f"* σ = {float(s):g}: {_verdict(c['differences'])}")
    return out


def _selection(sel: dict[str, Any]) -> list[str]:
    out = ["", f"### Selection on {sel.get('validation_images')} validation images "
           "(lowest validation FCD per family; S: Langevin time)", "",
           "| model / setting | S at σ_start | S total | samples/s | FCD ± bootstrap sd | "
           "precision | recall | class TV |", "|---|---|---|---|---|---|---|---|"]
    picks = set(sel.get("picks", {}).values())
    for key, v in sel["settings"].items():
        mark = " **(kept)**" if key in picks else ""
        out.append(f"| {key}{mark} | {v['langevin_time_at_start']:.3f} | "
                   f"{v['langevin_time']:.3f} | {v['samples_per_s']:.1f} | {v['fcd']:.3f} ± "
                   f"{v['fcd_bootstrap_sd']:.3f} | {v['precision']:.3f} | {v['recall']:.3f} | "
                   f"{v['class_tv']:.3f} |")
    return out


def _test(tst: dict[str, Any]) -> tuple[list[str], dict[str, dict[int, dict[str, Any]]]]:
    groups: dict[str, dict[int, dict[str, Any]]] = {}
    for v in tst["scores"].values():
        groups.setdefault(f"{v['objective']}/{v['setting']}", {})[v["seed"]] = v
    first = next(iter(tst["scores"].values()))
    metrics = ("fcd", "kid", "precision", "recall", "class_tv")
    out = ["", f"### Test: {first['num_samples']} samples per setting and seed against "
           f"{first['num_reference']} test images (mean ± sd over seeds; floor: "
           f"{first['num_samples']} held-out test images, mean ± sd over {first['repeats']} "
           "resplits). KID is the raw MMD² (×1).", "",
           "| model / setting | seeds | samples/s | " + " | ".join(
               f"{m} | {m} floor" for m in metrics) + " |",
           "|---" * (3 + 2 * len(metrics)) + "|"]
    for key, per in groups.items():
        cells = []
        for m in metrics:
            cells.append(_ms([v[m] for v in per.values()]))
            floors = [v[m + "_floor"] for v in per.values()]
            cells.append(f"{floors[0]:.3f} ± {next(iter(per.values()))[m + '_floor_std']:.3f}")
        out.append(f"| {key} | {len(per)} | "
                   f"{_ms([v['samples_per_s'] for v in per.values()], 1)} | "
                   + " | ".join(cells) + " |")
    return out, groups


def _controls(tst: dict[str, Any]) -> list[str]:
    c = tst.get("controls")
    if not c:
        return []
    out = ["", f"### Controls (seed 0; correction = {c['setting']}, σ_start = "
           f"{c['sigma_start']:g}; real starts are test images outside the reference set)", "",
           "| control | FCD | FCD floor | precision | recall | class TV |",
           "|---|---|---|---|---|---|"]

    def row(name: str, s: dict[str, Any]) -> str:
        return (f"| {name} | {s['fcd']:.3f} ± {s['fcd_std']:.3f} | {s['fcd_floor']:.3f} ± "
                f"{s['fcd_floor_std']:.3f} | {s['precision']:.3f} | {s['recall']:.3f} | "
                f"{s['class_tv']:.3f} |")
    for name in ("a: from real + noise", "b: from MLE draws + noise"):
        if name in c:
            out.append(row(name, c[name]))
    for name, s in c.get("c: at sigma_start", {}).items():
        out.append(row(f"c: {name} (against real + noise)", s))
    return out


def _verdicts(lik: dict[str, Any], groups: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    out = ["", "### Verdicts (decision rule: benchmarks/image_study/stats.py)", ""]
    zero = lik["ncmle_minus_mle"].get("0.0", {"differences": []})
    out.append(f"* **Test likelihood at σ = 0** (NCMLE − MLE bits/dim): "
               f"{_verdict(zero['differences'])}")
    noisy = [s for s in lik["ncmle_minus_mle"] if float(s) > 0]
    if noisy:
        top = max(noisy, key=float)
        out.append(f"* **Robustness** (σ = {float(top):g}): "
                   f"{_verdict(lik['ncmle_minus_mle'][top]['differences'])}")
    base = {k: v for k, v in groups.items() if k.startswith("ncmle/ancestral")}
    mle = {k: v for k, v in groups.items() if k.startswith("mle/ancestral")}
    for key, per in groups.items():
        if not key.startswith("ncmle/") or key.startswith("ncmle/ancestral"):
            continue
        for label, ref in (("NCMLE ancestral", base), ("MLE ancestral", mle)):
            if not ref:
                continue
            ref_per = next(iter(ref.values()))
            diffs = [per[s]["fcd"] - ref_per[s]["fcd"] for s in per if s in ref_per]
            out.append(f"* **Samples**, {key} against {label} (test FCD difference): "
                       f"{_verdict(diffs)}")
    return out


def _figures(sel: dict[str, Any], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the bench extra
        return ["", "(figures skipped: matplotlib is not installed)"]
    fams: dict[str, list[dict[str, Any]]] = {}
    for v in sel["settings"].values():
        fams.setdefault(f"{v['objective'].upper()} {v['family']}", []).append(v)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, vs in fams.items():
        axes[0].scatter([v["recall"] for v in vs], [v["precision"] for v in vs], label=name,
                        s=18)
        axes[1].scatter([1 / v["samples_per_s"] for v in vs], [v["fcd"] for v in vs],
                        label=name, s=18)
    axes[0].set(xlabel="recall (coverage)", ylabel="precision",
                title="precision–coverage over the sampler settings (validation)")
    axes[1].set(xscale="log", xlabel="seconds per sample (this CPU)", ylabel="validation FCD",
                title="quality against wall time")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "precision_coverage.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ["", f"![precision–coverage and quality against time]({path.name})"]


def report(study: Study, out: Path) -> str:
    """Writes ``out/report.md`` from the JSON of the earlier stages and returns it."""
    lines = [f"## Image study: MADE on {study.data}, MLE against NCMLE", ""]
    lik_path, sel_path, tst_path = (out / n for n in ("likelihood.json", "select.json",
                                                       "test.json"))  # + test-s*.json parts
    lik = json.loads(lik_path.read_text()) if lik_path.exists() else None
    groups: dict[str, dict[int, dict[str, Any]]] = {}
    if lik:
        lines += _training(lik) + _likelihood(lik)
    if sel_path.exists():
        sel = json.loads(sel_path.read_text())
        lines += _selection(sel) + _figures(sel, out)
    if (out / "samples.png").exists():
        lines += ["", "![samples of each kept setting, seed 0](samples.png)"]
    parts = [json.loads(p.read_text()) for p in [tst_path, *sorted(out.glob("test-s*.json"))]
             if p.exists()]
    if parts:
        tst = {"scores": {k: v for part in parts for k, v in part["scores"].items()}}
        controls = [part["controls"] for part in parts if part.get("controls")]
        if controls:
            tst["controls"] = controls[0]
        if tst["scores"]:
            table, groups = _test(tst)
            lines += table + _controls(tst)
    if lik:
        lines += _verdicts(lik, groups)
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text
