r"""Tables, paired tests with their power, the verdicts and the precision–coverage figure.

**Paired comparisons** (the rule is fixed in ``DECISION_RULE.md``): for a metric :math:`m`
and two methods A, B, the differences :math:`d_s = m_A - m_B` over the n training seeds
(both methods on the same seed's models and oracle sets) give :math:`\bar d`, its standard
error :math:`\mathrm{SE} = \mathrm{sd}(d)/\sqrt n`, a two-sided t-test with n − 1 degrees of
freedom and the **smallest detectable effect** at α = 0.05 and power 0.8,

.. math::

    \mathrm{MDE} = (t_{0.975,\,n-1} + t_{0.8,\,n-1})\,\mathrm{SE},

the true difference that the test would detect four times out of five at this noise level.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from scipy.stats import t as student_t

__all__ = ["figure", "md_to_rst", "paired", "render", "verdicts"]

ALPHA, POWER = 0.05, 0.8


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Paired difference ``a - b`` over seeds: mean, SE, t, p, MDE (see the module doc).

    Example:
        >>> r = paired([1.0, 2.0, 3.0], [0.0, 1.5, 2.0])
        >>> round(r["mean"], 3), round(r["se"], 3), r["n"]
        (0.833, 0.167, 3)
    """
    n = len(a)
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / n
    if n < 2:
        return {"mean": mean, "se": math.nan, "t": math.nan, "p": math.nan, "mde": math.nan,
                "n": n}
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    df = n - 1
    tval = mean / se if se > 0 else math.copysign(math.inf, mean) if mean else 0.0
    p = float(2 * student_t.sf(abs(tval), df)) if math.isfinite(tval) else 0.0
    mde = (student_t.ppf(1 - ALPHA / 2, df) + student_t.ppf(POWER, df)) * se
    return {"mean": mean, "se": se, "t": tval, "p": p, "mde": float(mde), "n": n}


def _direction(r: dict[str, float], lower_is_better: bool) -> str:
    if not r["p"] < ALPHA:
        return "n.s."
    return "A better" if (r["mean"] < 0) == lower_is_better else "B better"


def _ms(values: list[float], digits: int = 4) -> str:
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return f"{m:.{digits}f}"
    se = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n)
    return f"{m:.{digits}f} ± {se:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


#: the pre-registered comparisons: (name, metric, A, B, lower is better, claim)
COMPARISONS = [
    ("score-corrected vs MLE ancestral", "energy", "score_corrected_best", "mle_ancestral",
     True, "samples"),
    ("score-corrected vs NCMLE ancestral", "energy", "score_corrected_best",
     "ncmle_ancestral", True, "mechanism"),
    ("self-denoising vs NCMLE ancestral", "energy", "self_denoising", "ncmle_ancestral", True,
     "secondary"),
    ("tarflow vs NCMLE ancestral", "energy", "tarflow", "ncmle_ancestral", True, "secondary"),
    ("score-corrected vs MLE ancestral (plausible)", "plausible", "score_corrected_best",
     "mle_ancestral", False, "secondary"),
    ("NCMLE vs MLE ancestral", "energy", "ncmle_ancestral", "mle_ancestral", True,
     "secondary"),
]


def _method(test: dict[str, Any], val: dict[str, Any], name: str) -> dict[str, Any]:
    if name == "score_corrected_best":
        name = val["selected"]["score_corrected_best"]["family"]
    return test["methods"][name]


def comparisons(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The paired comparisons of one overlap (samples and likelihood)."""
    out = []
    for name, metric, a, b, lower, claim in COMPARISONS:
        va = [_method(t, res["val"], a)[metric] for t in res["tests"]]
        vb = [_method(t, res["val"], b)[metric] for t in res["tests"]]
        r = paired(va, vb)
        out.append({"name": name, "metric": metric, "claim": claim, "lower_is_better": lower,
                    **r, "direction": _direction(r, lower)})
    # exploratory, added after the first test results (not in DECISION_RULE.md): the controls
    for name, get_a, get_b in (
        ("exploratory (b): MLE + noise, corrected vs score-corrected",
         lambda t: t["controls"]["b_mle_plus_noise"]["energy"],
         lambda t: _method(t, res["val"], "score_corrected_best")["energy"]),
        ("exploratory (c): NCMLE ancestral at σs vs MLE + noise",
         lambda t: t["controls"]["c_at_sigma_start"]["ncmle_ancestral"]["energy"],
         lambda t: t["controls"]["c_at_sigma_start"]["mle_plus_noise"]["energy"]),
    ):
        r = paired([get_a(t) for t in res["tests"]], [get_b(t) for t in res["tests"]])
        out.append({"name": name, "metric": "energy", "claim": "exploratory",
                    "lower_is_better": True, **r, "direction": _direction(r, True)})
    kl_n = [k["ncmle"]["kl0"][0] for k in res["kl"]]
    kl_m = [k["mle"]["kl0"][0] for k in res["kl"]]
    r = paired(kl_n, kl_m)
    out.append({"name": "NCMLE vs MLE: KL(q‖p) at σ=0", "metric": "kl0", "claim": "likelihood",
                "lower_is_better": True, **r, "direction": _direction(r, True)})
    return out


def verdicts(results: list[dict[str, Any]]) -> dict[str, str]:
    """The verdict of each claim over the overlaps that finished (``DECISION_RULE.md``)."""
    out = {}
    for claim, what in (("samples", "sample quality via score correction (energy distance, "
                                    "score-corrected NCMLE vs MLE ancestral)"),
                        ("likelihood", "test likelihood (exact KL(q‖p) at σ = 0, NCMLE vs "
                                       "MLE)")):
        shown, against, mdes = [], [], []
        for res in results:
            for c in comparisons(res):
                if c["claim"] != claim:
                    continue
                mdes.append(c["mde"])
                if c["direction"] == "A better":
                    shown.append(res["overlap"])
                elif c["direction"] == "B better":
                    against.append(res["overlap"])
        if shown and against:
            v = f"mixed: shown at Δ = {shown}, contradicted at Δ = {against}"
        elif shown:
            v = f"shown (at Δ = {shown}; at no overlap against)"
        elif against:
            v = f"contradicted (at Δ = {against}; at no overlap for)"
        else:
            finite = [m for m in mdes if math.isfinite(m)]
            rng = f"{min(finite):.3g}–{max(finite):.3g}" if finite else "n/a"
            v = f"not shown at this power (smallest detectable effects {rng})"
        out[claim] = f"{what}: {v}"
    return out


def render(results: list[dict[str, Any]], cfg: dict[str, Any]) -> str:
    """All tables as Markdown."""
    parts = []
    rows = []
    for r in results:
        o = r["oracle"]
        nd = o["nearest_distance"]
        rows.append([f"{r['overlap']:g}", *(f"{nd[k]:.2f}" for k in nd),
                     f"{o['class_confidence_at_ref']:.3f}", f"{o['ambiguous_at_ref']:.3f}",
                     f"{o['neg_entropy']:.2f}"])
    keys = list(results[0]["oracle"]["nearest_distance"]) if results else []
    parts.append("## Oracles\n\n" + _table(
        ["Δ at σ_ref", *(f"distance σ={k}" for k in keys), "oracle confidence at σ_ref",
         "ambiguous (<0.9)", "−H(q)"], rows))

    rows = []
    for r in results:
        for obj in ("mle", "ncmle"):
            recs = [x for x in r["runs"] if x["objective"] == obj]
            stops = ", ".join(f"{x['stopped_step']} ({x['best_step']})" for x in recs)
            early = all(x["early_stopped"] for x in recs)
            kl0 = [k[obj]["kl0"][0] for k in r["kl"]]
            klr = [k[obj]["kl_ref"][0] for k in r["kl"]]
            cpu = sum(x["cpu_seconds"] for x in recs)
            rows.append([f"{r['overlap']:g}", obj, stops, "yes" if early else "NO",
                         _ms(kl0, 2), _ms(klr, 2), f"{cpu:.0f}"])
    parts.append("## Training (early stopping on validation NLL) and exact KL\n\n" + _table(
        ["Δ", "objective", "stop update (best) per seed", "early stop triggered",
         "KL(q‖p) σ=0", f"KL(q_σ‖p_σ) σ={cfg['sigma_ref']:g}", "CPU s"], rows))

    for r in results:
        v = r["val"]
        fl = v["floor"]
        rows = [[x["label"], f"{x['energy']:.4f}", f"{x['class_tv']:.3f}",
                 f"{x['plausible']:.3f}", f"{x.get('too_close', 0):.3f}",
                 f"{x['switch']:.3f}" if "switch" in x else "", f"{x['S_start']:.3g}",
                 f"{x['S_total']:.3g}", str(x["score_evals"]), f"{x['cpu_seconds']:.1f}"]
                for x in v["rows"]]
        rows.append(["oracle floor", f"{fl['energy']:.4f}", f"{fl['class_tv']:.3f}",
                     f"{fl['plausible']:.3f}", f"{fl['too_close']:.3f}", "", "", "", "", ""])
        sel = ", ".join(f"{k}: {s['label']}" for k, s in sorted(v["selected"].items()))
        parts.append(f"## Validation curve, Δ = {r['overlap']:g} (seed {cfg['seeds'][0]}, "
                     f"n = {v['n']})\n\n" + _table(
                         ["configuration", "energy", "class TV", "plausible (2-sided)",
                          "too close", "class switch", "S at σ_start", "S total",
                          "score evals", "CPU s"], rows) + f"\n\nSelected: {sel}.")

    for r in results:
        names = list(r["tests"][0]["methods"])
        rows = []
        for name in names:
            ms = [t["methods"][name] for t in r["tests"]]
            label = ms[0].get("label", name)
            rows.append([f"{name}: {label}" if label != name else name,
                         _ms([m["energy"] for m in ms]), _ms([m["class_tv"] for m in ms], 3),
                         _ms([m["plausible"] for m in ms], 3),
                         _ms([m["too_close"] for m in ms], 3),
                         _ms([m["log_q"] for m in ms], 2),
                         _ms([m["switch"] for m in ms], 3) if "switch" in ms[0] else "",
                         f"{ms[0].get('S_start', 0):.3g} / {ms[0].get('S_total', 0):.3g}"])
        fl = [t["floor"] for t in r["tests"]]
        rows.append(["oracle floor", _ms([f["energy"] for f in fl]),
                     _ms([f["class_tv"] for f in fl], 3), _ms([f["plausible"] for f in fl], 3),
                     _ms([f["too_close"] for f in fl], 3), _ms([f["log_q"] for f in fl], 2),
                     "", ""])
        parts.append(f"## Test, Δ = {r['overlap']:g} (mean ± SE over {len(r['tests'])} "
                     f"training seeds, n = {cfg['n_test']} each; −H(q) = "
                     f"{r['oracle']['neg_entropy']:.2f})\n\n" + _table(
                         ["method", "energy", "class TV", "plausible (2-sided)", "too close",
                          "E log q", "class switch", "S σ_start / total (seed 0)"], rows))

        c = [t["controls"] for t in r["tests"]]
        rows = []
        for key, what in (("a_exact_start", "(a) corrector from exact q_σs draws"),
                          ("b_mle_plus_noise", "(b) corrector from MLE draws + noise")):
            ms = [x[key] for x in c]
            rows.append([what, _ms([m["energy"] for m in ms]),
                         _ms([m["class_tv"] for m in ms], 3),
                         _ms([m["plausible"] for m in ms], 3),
                         _ms([m["switch"] for m in ms], 3)])
        s = c[0]["c_at_sigma_start"]["sigma_start"]
        for key, what in (("ncmle_ancestral", f"(c) NCMLE ancestral at σ={s:g}"),
                          ("mle_plus_noise", f"(c) MLE draws + noise σ={s:g}"),
                          ("floor", f"(c) oracle floor at σ={s:g}")):
            ms = [x["c_at_sigma_start"][key] for x in c]
            rows.append([what, _ms([m["energy"] for m in ms]),
                         _ms([m["class_tv"] for m in ms], 3),
                         _ms([m["plausible"] for m in ms], 3), ""])
        parts.append(f"## Controls, Δ = {r['overlap']:g} (config: "
                     f"{r['val']['selected']['score_corrected_best']['label']})\n\n" + _table(
                         ["control", "energy", "class TV", "plausible", "class switch"], rows))

    rows = []
    for r in results:
        d = len(r["kl"][0]["mle"]["teacher_forced"][0])
        cuts = sorted({max(1, d // 4), d // 2, d})
        for obj in ("mle", "ncmle"):
            for prof in ("teacher_forced", "model_prefix"):
                cum = []
                for k in r["kl"]:
                    m = k[obj][prof][0]
                    cum.append([sum(m[:c]) for c in cuts])
                rows.append([f"{r['overlap']:g}", obj, prof.replace("_", "-"),
                             *(_ms([x[j] for x in cum], 2) for j in range(len(cuts)))])
            gap = [sum(k[obj]["model_prefix"][0]) - sum(k[obj]["teacher_forced"][0])
                   for k in r["kl"]]
            rows.append([f"{r['overlap']:g}", obj, "gap (compounding)", "", "",
                         _ms(gap, 2)][: 3 + len(cuts)])
    if results:
        d = len(results[0]["kl"][0]["mle"]["teacher_forced"][0])
        cuts = sorted({max(1, d // 4), d // 2, d})
        parts.append("## Compounding: cumulative per-dimension conditional KL(p‖q) (nats)\n\n"
                     + _table(["Δ", "model", "prefixes", *(f"i ≤ {c}" for c in cuts)], rows))

    rows = []
    for r in results:
        for c in comparisons(r):
            rows.append([f"{r['overlap']:g}", c["name"], c["metric"], f"{c['mean']:+.4f}",
                         f"{c['se']:.4f}", f"{c['p']:.3f}", f"{c['mde']:.4f}", c["direction"]])
    parts.append("## Paired comparisons over training seeds (A − B; power: smallest "
                 "detectable effect at α = 0.05, power 0.8)\n\n" + _table(
                     ["Δ", "A vs B", "metric", "mean diff", "SE", "p", "MDE", "result"], rows))
    rows = []
    for r in results:
        train = sum(x["cpu_seconds"] for x in r["runs"])
        kl = sum(k.get("cpu_seconds", 0.0) for k in r["kl"])
        val = r["val"].get("cpu_seconds", 0.0)
        test = sum(t.get("cpu_seconds", 0.0) for t in r["tests"])
        rows.append([f"{r['overlap']:g}", f"{train:.0f}", f"{kl:.0f}", f"{val:.0f}",
                     f"{test:.0f}", f"{(train + kl + val + test) / 60:.1f}"])
    parts.append("## CPU cost (process CPU seconds, one thread)\n\n" + _table(
        ["Δ", "training (all runs)", "exact KL + compounding", "validation curve",
         "test + controls", "total (min)"], rows))
    parts.append("## Verdicts\n\n" + "\n".join(f"- {v}" for v in verdicts(results).values()))
    return "\n\n".join(parts) + "\n"


def figure(results: list[dict[str, Any]], path: Path) -> Path:
    """Precision (two-sided plausible fraction) against coverage (energy distance to the
    oracle, lower is better, log axis) over the validation curve, one panel per overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.8), squeeze=False)
    colours = {"mle_ancestral": "k", "ncmle_ancestral": "tab:gray", "tarflow": "tab:orange",
               "self_denoising": "tab:red", "score_corrected_langevin": "tab:blue",
               "score_corrected_mala": "tab:green"}
    for ax, r in zip(axes[0], results):
        seen = set()
        for x in r["val"]["rows"]:
            fam = x["family"]
            ax.scatter(max(x["energy"], 1e-4), x["plausible"], c=colours.get(fam, "tab:purple"),
                       s=14 + 40 * (fam.endswith("ancestral")),
                       marker="s" if fam.endswith("ancestral") else "o",
                       label=None if fam in seen else fam.replace("_", " "), alpha=0.8)
            seen.add(fam)
        fl = r["val"]["floor"]
        ax.scatter(max(fl["energy"], 1e-4), fl["plausible"], marker="*", s=120, c="gold",
                   edgecolors="k", label="oracle")
        ax.set_title(f"Δ = {r['overlap']:g} at σ_ref")
        ax.set_xscale("log")
        ax.set_xlabel("energy distance to q (log; lower is better)")
        ax.set_ylabel("precision: plausible (two-sided)")
    axes[0][0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _rst_cell(text: str) -> str:
    text = text.replace("*", "\\*").replace("|", "\\|")
    return "\\" + text if text[:1] in "(-+#" and text[1:2] not in "0123456789." else text


def md_to_rst(markdown: str) -> str:
    """The report's Markdown (``## title``, pipe tables, paragraphs, bullets) as
    reStructuredText (rubrics and ``list-table`` directives) for ``.. include::``.

    Example:
        >>> print(md_to_rst("## T\\n\\n| a | b |\\n|---|---|\\n| 1 | (x) |"))
        .. rubric:: T
        <BLANKLINE>
        .. list-table::
           :header-rows: 1
        <BLANKLINE>
           * - a
             - b
           * - 1
             - \\(x)
        <BLANKLINE>
    """
    out: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        ln = lines[i]
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
                out.append(f"   * - {_rst_cell(r[0])}".rstrip())
                out += [f"     - {_rst_cell(c)}".rstrip() for c in r[1:]]
            out.append("")
            continue
        else:
            out.append(ln.replace("|", "\\|").replace("*", "\\*"))
        i += 1
    return "\n".join(out).rstrip() + "\n"
