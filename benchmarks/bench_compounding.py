r"""An exact compounding-error benchmark: MLE vs NCMLE MADE on a known Gaussian-mixture law.

Run ``nice -n 10 python benchmarks/bench_compounding.py`` (full: D = 64 and D = 256; models
are trained on first use and checkpointed under ``benchmarks/results/compounding/ckpt/``,
every sampler run is cached there too, so a rerun skips what is done) or ``--quick`` (a tiny
D = 16 version in well under a minute, the smoke test). It prints Markdown tables and writes
``benchmarks/results/compounding/d{D}.json`` plus the figures ``prefix_kl.png`` and
``speed_d64.png``. The design, the choices and the results are on
``docs/guides/compounding.rst``.

Protocol (per D): train MLE and NCMLE MADEs (3 seeds each, same budget and early stopping);
compute the exact per-σ KL of every model; tune the NCMLE samplers (score-corrected grid and
the Tweedie baseline) on *validation* oracle draws by the pre-declared criterion *lowest mean
energy distance*; then run every method and control once on fresh *test* draws with several
sampling seeds per training seed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _compounding_config import ORACLES, QUICK_ORACLES
from _compounding_metrics import forward_kl, neg_entropy, oracle_floor, sample_metrics
from _compounding_report import (
    Runs,
    fmt,
    md_to_rst,
    paired,
    prefix_figure,
    sampling_spread,
    speed_figure,
    summary,
    table,
)
from _compounding_runs import Bench, _gen
from _compounding_samplers import corrector_grid, tweedie_grid
from _compounding_train import OBJECTIVES, train_state

from ncmle_prob import samplers

#: two-sided 95 % quantiles of Student's t by degrees of freedom (paired tests over seeds)
T_CRIT = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57}


def verdict(m: float, se: float, higher_is_better: bool, dof: int | None = None) -> str:
    """``better``/``worse`` when the paired mean differs from 0 by more than t·SE, else
    ``n.s.``."""
    t = T_CRIT.get(dof, 2.0) if dof is not None else T_CRIT[2]
    if not (se > 0) or abs(m) <= t * se:
        return "n.s."
    return "better" if (m > 0) == higher_is_better else "worse"


RESULTS = Path(__file__).resolve().parent / "results" / "compounding"
KL_SIGMAS = (0.0, 0.1, 0.2, 0.5, 1.0)


def _model_table(b: Bench) -> tuple[str, dict[str, Any]]:
    rows, out = [], {}
    for obj in OBJECTIVES:
        kls: dict[float, list[float]] = {s: [] for s in KL_SIGMAS}
        nll, steps = [], []
        for seed in b.seeds:
            st = train_state(b.ckpt, b.d, obj, seed)
            nll.append(st["best"])
            steps.append(st.get("best_step", st["step"]))
            for s in KL_SIGMAS:
                key = f"kl|{obj}|t{seed}|sigma{s}|n{b.budget.n_kl}"
                kls[s].append(b.cache.get(key, lambda s=s, seed=seed, obj=obj: forward_kl(
                    b.models[(obj, seed)], b.q, s, b.budget.n_kl,
                    _gen("kl", seed, int(s * 1000))))[0])
        m_nll = summary({i: [{"v": v}] for i, v in enumerate(nll)}, "v")
        kl_s = {s: summary({i: [{"v": v}] for i, v in enumerate(kls[s])}, "v")
                for s in KL_SIGMAS}
        out[obj] = {"val_nll0": nll, "best_step": steps, "kl": {str(s): kls[s] for s in kls}}
        rows.append([obj.upper(), fmt(*m_nll), "/".join(map(str, steps))]
                    + [fmt(*kl_s[s]) for s in KL_SIGMAS])
    header = ["objective", "val NLL at σ=0 (nats)", "best step per seed"] + [
        f"KL(q_σ‖p_θ) σ={s}" for s in KL_SIGMAS]
    return table(f"D = {b.d}: models (exact KL, nats; mean ± SE over {len(b.seeds)} "
                 "training seeds)", header, rows), out


def _metric_row(label: str, runs: Runs, extra: list[str] | None = None) -> list[str]:
    cells = [label, fmt(*summary(runs, "energy"), digits=3), fmt(*summary(runs, "class_tv")),
             fmt(*summary(runs, "plausible")), fmt(*summary(runs, "log_q"), digits=4)]
    return cells + (extra or [])


METRIC_HEADER = ["method", "energy dist. ↓ (coverage)", "class TV ↓ (coverage)",
                 "plausible ↑ (precision)", "E log q ↑ (precision)"]


def tune(b: Bench) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    bud = b.budget
    grid = corrector_grid(bud.sigma_starts, bud.pc_steps, bud.pc_predictors,
                          bud.pc_correctors)
    tw = tweedie_grid(bud.sigma_starts)
    rows, res = [], {}
    for m in grid + tw:
        r = b.runs(m, "tune", bud.tune_train_seeds, (0,), bud.n_tune)
        res[m["label"]] = r
        first = r[bud.tune_train_seeds[0]][0]
        rows.append(_metric_row(m["label"], r, [
            fmt(first.get("langevin_time") or float("nan")),
            fmt(first.get("acceptance_mean", float("nan"))),
            fmt(summary(r, "samples_per_s")[0])]))
    best = min(grid, key=lambda m: summary(res[m["label"]], "energy")[0])
    best_tw = min(tw, key=lambda m: summary(res[m["label"]], "energy")[0])
    spread = {}
    for m in (best, best_tw):
        sp = b.runs(m, "spread", bud.tune_train_seeds[:1], bud.spread_seeds, bud.n_tune)
        spread[m["label"]] = sampling_spread(sp, "energy")
    energies = sorted(summary(res[m["label"]], "energy")[0] for m in grid)
    gap = energies[1] - energies[0] if len(energies) > 1 else float("nan")
    text = table(
        f"D = {b.d}: tuning on validation draws (n = {bud.n_tune}, training seeds "
        f"{list(bud.tune_train_seeds)}; criterion: lowest mean energy distance)",
        METRIC_HEADER + ["Langevin time S", "mean MALA accept", "samples/s"], rows)
    text += (f"\nChosen: **{best['label']}** and **{best_tw['label']}**. Run-to-run spread "
             f"(std of the energy distance over {len(bud.spread_seeds)} sampling seeds, "
             f"training seed {bud.tune_train_seeds[0]}): "
             + ", ".join(f"{k}: {fmt(v)}" for k, v in spread.items())
             + f"; gap between the best and second-best corrected settings: {fmt(gap)}.\n")
    info = {"grid": {k: v for k, v in res.items()}, "chosen": best["label"],
            "chosen_tweedie": best_tw["label"], "spread": spread, "best_gap": gap}
    return text, info, best, best_tw


def test(b: Bench, best: dict[str, Any], best_tw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    bud = b.budget
    s0 = best["sigma_start"]
    methods = {
        "MLE ancestral": {"label": "MLE ancestral", "kind": "ancestral", "model": "mle"},
        "NCMLE ancestral σ=0": {"label": "NCMLE ancestral", "kind": "ancestral",
                                "model": "ncmle"},
        f"NCMLE ancestral σ={best_tw['sigma_start']} + Tweedie": best_tw,
        f"NCMLE score-corrected ({best['label']})": best,
        f"(a) corrector from exact q_{s0} draws": {**best, "kind": "refine", "init": "oracle",
                                                 "label": best["label"] + " init=oracle"},
        f"(b) corrector from MLE draws + {s0} noise": {
            **best, "kind": "refine", "init": "mle_noised",
            "label": best["label"] + " init=mle_noised"},
    }
    starts = {
        f"(c) NCMLE ancestral at σ={s0}": {"label": f"start ncmle s0={s0}", "kind": "start",
                                          "model": "ncmle", "sigma_start": s0},
        f"(c) MLE ancestral + {s0} noise": {"label": f"start mle s0={s0}", "kind": "start",
                                           "model": "mle", "sigma_start": s0},
    }
    res = {k: b.runs(m, "test", b.seeds, bud.test_sample_seeds, bud.n_test)
           for k, m in {**methods, **starts}.items()}
    floors = {}
    for sigma in (0.0, s0):
        fr = [b.cache.get(f"floor|sigma{sigma}|s{i}|n{bud.n_test}", lambda i=i, sigma=sigma:
                          oracle_floor(b.q, sigma, bud.n_test, b.ref("test", sigma),
                                       _gen("floor", i, int(sigma * 1000))))
              for i in range(3)]
        floors[sigma] = {i: [f] for i, f in enumerate(fr)}  # SE over the 3 oracle sets
    neg_h = {sig: b.cache.get(f"negH|sigma{sig}", lambda sig=sig: neg_entropy(
        b.q, sig, 4 * bud.n_ref, _gen("floor", 9, int(sig * 1000)))) for sig in (0.0, s0)}
    n_seeds = f"{len(b.seeds)} training seeds × {len(bud.test_sample_seeds)} sampling seeds"
    rows = [_metric_row(k, r, [fmt(*summary(r, "samples_per_s"))]) for k, r in res.items()
            if k in methods]
    rows.append(_metric_row("oracle q (floor)", floors[0.0], ["—"]))
    text = table(f"D = {b.d}: test (n = {bud.n_test} per run, {n_seeds}; mean ± SE over "
                 f"training seeds); −H(q) = {fmt(*neg_h[0.0], digits=4)}",
                 METRIC_HEADER + ["samples/s"], rows)
    corr_key = f"NCMLE score-corrected ({best['label']})"
    pairs = [(k, k, "MLE ancestral") for k in methods if k != "MLE ancestral"]
    pairs += [("score-corrected − NCMLE ancestral σ=0", corr_key, "NCMLE ancestral σ=0")]
    pairs += [(f"{k} − score-corrected", k, corr_key) for k in (
        f"(a) corrector from exact q_{s0} draws", f"(b) corrector from MLE draws + {s0} noise")]
    prow, verdicts = [], {}
    for label, k, ref in pairs:
        cells, v = [], {}
        for key in ("energy", "class_tv", "plausible", "log_q"):
            m, se = paired(res[k], res[ref], key)
            cells.append(fmt(m, se, digits=3))
            v[key] = verdict(m, se, key in ("plausible", "log_q"), len(b.seeds) - 1)
        verdicts[label] = v
        cov = {v["energy"], v["class_tv"]} - {"n.s."}
        pre = {v["plausible"], v["log_q"]} - {"n.s."}
        overall = ("trade-off" if ("better" in cov and "worse" in pre) or
                   ("worse" in cov and "better" in pre) else
                   "better" if "better" in cov | pre and "worse" not in cov | pre else
                   "worse" if "worse" in cov | pre and "better" not in cov | pre else
                   "mixed" if cov | pre else "no significant difference")
        verdicts[label]["overall"] = overall
        prow.append([label] + cells + [overall])
    text += "\n" + table(f"D = {b.d}: paired differences (method − MLE ancestral unless "
                         "stated; per training seed, then mean ± SE over training seeds; "
                         f"verdict: significant at 95 % by a paired t-test over {len(b.seeds)} "
                         f"training seeds, |Δ| > {T_CRIT.get(len(b.seeds) - 1, 2.0):.2f} SE)",
                         ["comparison", "Δ energy", "Δ class TV", "Δ plausible", "Δ E log q",
                          "verdict (coverage vs precision)"], prow)
    crow = [_metric_row(k, r, [fmt(*summary(r, "reverse_kl")) if "ncmle" in
                               starts[k]["model"] else "n/a (no closed form)"])
            for k, r in res.items() if k in starts]
    crow.append(_metric_row(f"oracle q_{s0} (floor)", floors[s0], ["0"]))
    c_ncmle, c_mle = (res[k] for k in starts)
    crow.append(["(c) NCMLE − MLE+noise (paired Δ)"]
                + [fmt(*paired(c_ncmle, c_mle, key), digits=3)
                   for key in ("energy", "class_tv", "plausible", "log_q")] + ["—"])
    text += "\n" + table(f"D = {b.d}: control (c), both scored against q_σ at σ = {s0}; "
                         f"E log q_σ of q_σ itself: {fmt(*neg_h[s0], digits=4)}",
                         METRIC_HEADER + ["KL(p_θ(·, σ) ‖ q_σ)"], crow)
    prof: dict[str, dict[str, tuple[float, float]]] = {}
    for k in {**methods, **starts}:
        r = res[k]
        first = next(iter(r.values()))[0]
        if "prefix_kl" not in first:
            continue
        prof[k] = {}
        for i in first["prefix_kl"]:
            flat = {t: [{"v": x["prefix_kl"][i]} for x in rs] for t, rs in r.items()}
            prof[k][i] = summary(flat, "v")
    lengths = list(next(iter(prof.values())))
    text += "\n" + table(f"D = {b.d}: prefix profile KL(p_θ(x_≤i)‖q(x_≤i)) of ancestral draws "
                         "(nats; the full reverse KL at i = D)", ["draws"] + [
                             f"i={i}" for i in lengths],
                         [[k] + [fmt(*prof[k][i]) for i in lengths] for k in prof])
    out = {"methods": {k: {"spec": m, "runs": res[k]} for k, m in {**methods,
                                                                    **starts}.items()},
           "floors": {str(s): [r[0] for r in f.values()] for s, f in floors.items()},
           "neg_entropy": {str(s): v for s, v in neg_h.items()}, "prefix_kl": prof,
           "verdicts": verdicts}
    return text, out


def speed(b: Bench, tuning: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Samples/s of every registered sampler with its defaults, and energy vs wall time."""
    num = b.budget.n_tune
    rows, points = [], []
    overrides = {k: dict(v) for k, v in b.budget.speed_overrides}
    for name in samplers.available():
        opts = overrides.get(name, {})
        key = f"speed|{name}|n{num}|{sorted(opts.items())}"

        def compute(name: str = name, opts: dict[str, Any] = opts) -> dict[str, Any]:
            import time

            model = b.models[("ncmle", b.seeds[0])](0.0)
            g = _gen("speed", 0, 0)
            t0 = time.perf_counter()
            x, si = samplers.sample(model, num, name, generator=g, return_info=True, **opts)
            sec = time.perf_counter() - t0
            out = sample_metrics(x.double(), b.q, 0.0, b.ref("tune", 0.0))
            return {**out, "seconds": sec, "samples_per_s": num / sec,
                    "score_evals": int(getattr(si, "score_evals", 0))}

        r = b.cache.get(key, compute)
        rows.append([name + (f" {opts}" if opts else ""), fmt(r["samples_per_s"]),
                     str(r["score_evals"]), fmt(r["energy"]), fmt(r["plausible"])])
        points.append({"group": "registry defaults", **r})
    for label, runs in tuning["grid"].items():
        for rs in runs.values():
            for r in rs:
                grp = "tweedie" if label.startswith("tweedie") else (
                    "corrected, MALA" if "mala" in label else "corrected, Langevin")
                points.append({"group": grp, **r})
    text = table(f"D = {b.d}: speed of each sampler's defaults (NCMLE model, n = {num}, one "
                 "shared CPU core: provisional)",
                 ["sampler", "samples/s", "score evals", "energy dist.", "plausible"], rows)
    return text, points


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny D = 16 version (smoke test)")
    p.add_argument("--dims", type=int, nargs="*", default=None, help="subset of D to run")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true", help="no per-run log lines")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    dims = a.dims or list(QUICK_ORACLES if a.quick else ORACLES)
    if a.quick:
        a.out = a.out / "quick"  # git-ignored: a smoke test, not a result
    ckpt = a.out / "ckpt"
    ckpt.mkdir(parents=True, exist_ok=True)
    log = (lambda s: None) if a.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    allres: dict[int, dict[str, Any]] = {}
    print(f"# Compounding benchmark{' (--quick: NOT a result)' if a.quick else ''}\n")
    import ncmle_prob

    print(f"Library: {ncmle_prob.__file__}; options of "
          f"score_corrected_ancestral: {sorted(samplers.options('score_corrected_ancestral'))}\n")
    for d in dims:
        b = Bench(d, a.quick, ckpt, log)
        t_models, models = _model_table(b)
        print(t_models)
        t_tune, tuning, best, best_tw = tune(b)
        print(t_tune)
        t_test, tested = test(b, best, best_tw)
        print(t_test)
        texts = [t_models, t_tune, t_test]
        res = {"library": ncmle_prob.__file__,
               "oracle": b.spec.to_json(), "train": b.train_spec.__dict__, "models": models,
               "budget": b.budget.__dict__, "tuning": tuning, **tested}
        if b.budget.speed:
            t_speed, points = speed(b, tuning)
            print(t_speed)
            texts.append(t_speed)
            res["speed"] = points
            floor = summary({0: tested["floors"]["0.0"]}, "energy")[0]
            speed_figure(points, floor, a.out / f"speed_d{d}.png")
        allres[d] = res
        md = "\n".join(texts)
        for suffix, body in (("md", md), ("rst", md_to_rst(md))):
            tpath = a.out / f"tables_d{d}.{suffix}"
            tpath.with_suffix(".tmp").write_text(body)
            os.replace(tpath.with_suffix(".tmp"), tpath)
        path = a.out / f"d{d}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=1, default=str))
        os.replace(tmp, path)
    prefix_figure(allres, a.out / "prefix_kl.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
