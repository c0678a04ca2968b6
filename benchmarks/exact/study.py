"""The stages of one oracle (one overlap), each cached as JSON so that a killed run resumes.

Per overlap Δ, in ``<out>/d{D}_gap{Δ}/``:

1. ``oracle.json``: the nearest-template distance at several σ, the oracle's own class
   confidence at σ_start, :math:`-H(q)` and the oracle-vs-oracle floors;
2. ``train/{mle,ncmle}_s{seed}/``: the models (:mod:`.train`), with ``history.json``;
3. ``kl_s{seed}.json``: exact KL at σ = 0 and σ_ref of both models, and the compounding
   profiles (teacher-forced and model-prefix) of both;
4. ``val.json``: the sampler curve on the first training seed's models, on validation
   reference draws; the settings of each sampler family are selected here, by the rule of
   ``DECISION_RULE.md`` (lowest energy distance), and never on test draws;
5. ``test_s{seed}.json``: the selected settings and the controls, once, on fresh test draws.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ncmle_prob import samplers
from ncmle_prob.distributions import NoisyGaussianMixture
from ncmle_prob.models import MADE
from ncmle_prob.training import atomic_write

from .config import Config
from .metrics import (
    class_switch_rate,
    conditional_kl_profile,
    forward_kl,
    neg_entropy,
    sample_metrics,
)
from .oracle import make_oracle, nearest_distance, posterior
from .train import OBJECTIVES, train_model

Log = Callable[[str], None]


def _gen(*key: int) -> torch.Generator:
    seed = 0
    for k in key:
        seed = (seed * 1_000_003 + int(k)) % (2**62)
    return torch.Generator().manual_seed(seed)


def _cached(path: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    t0, c0 = time.perf_counter(), time.process_time()
    out = compute()
    out["wall_seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - c0
    atomic_write(path, lambda f: f.write(json.dumps(out, indent=1).encode()))
    return out


def folder_name(cfg: Config, overlap: float) -> str:
    return f"d{cfg.features}_gap{overlap:g}"


# ------------------------------------------------------------------------------ the curve
def curve_configs(cfg: Config) -> list[dict[str, Any]]:
    """Every configuration of the sampler curve as ``{family, method, options}``: each is
    one call of a registered sampler with public options (``tarflow`` and ``itarflow`` are
    the presets of ``self_denoising`` with K = 1 and 10)."""
    out: list[dict[str, Any]] = []
    for s in cfg.sigma_starts:
        for k in cfg.sd_steps:
            if k == 1:
                out.append({"family": "tarflow", "method": "tarflow",
                            "options": {"sigma_start": s}})
            else:
                out.append({"family": "self_denoising", "method": "self_denoising",
                            "options": {"sigma_start": s, "steps": k}})
        for c in cfg.correctors:
            for t in cfg.steps:
                out.append({"family": f"score_corrected_{c}",
                            "method": "score_corrected_ancestral",
                            "options": {"sigma_start": s, "num_levels": cfg.num_levels,
                                        "steps_per_level": t, "corrector": c}})
    return out


def label(entry: dict[str, Any]) -> str:
    o = entry["options"]
    if entry["family"] == "tarflow":
        return f"tarflow σs={o['sigma_start']:g}"
    if entry["family"] == "self_denoising":
        return f"self-denoising K={o['steps']} σs={o['sigma_start']:g}"
    return f"{o['corrector']} T={o['steps_per_level']} σs={o['sigma_start']:g}"


def run_from_start(
    model: MADE, entry: dict[str, Any], start: Tensor, generator: torch.Generator
) -> tuple[Tensor, dict[str, float]]:
    """Runs the configuration's steps from ``start`` (draws at its σ_start) through the
    sampler's public refine/denoise method; returns the draws and the cost."""
    sampler = samplers.get(entry["method"], **entry["options"])
    dist = model(0.0)
    if entry["method"] == "score_corrected_ancestral":
        x = sampler.refine(dist, start.float(), generator=generator)
    else:
        x = sampler.denoise(dist, start.float())
    info = sampler.info
    assert info is not None
    t = info.steps_per_level
    s_start = float(info.step_sizes[0]) * t if info.step_sizes else 0.0
    return x, {"S_start": s_start, "S_total": float(info.langevin_time),
               "score_evals": int(info.score_evals)}


def evaluate(
    q: NoisyGaussianMixture, model: MADE, entry: dict[str, Any], start: Tensor,
    reference: Tensor, generator: torch.Generator,
) -> dict[str, Any]:
    """One configuration from ``start``: sample metrics at σ = 0, cost, class switches."""
    c0 = time.process_time()
    x, cost = run_from_start(model, entry, start, generator)
    res = sample_metrics(x, q, 0.0, reference)
    res.update(cost)
    res["switch"] = class_switch_rate(q, start, entry["options"]["sigma_start"], x)
    res["cpu_seconds"] = time.process_time() - c0
    return {"label": label(entry), **entry, **res}


def ancestral(model: MADE, n: int, sigma: float, generator: torch.Generator) -> Tensor:
    return samplers.sample(model(0.0), n, "ancestral", sigma=sigma, generator=generator).double()


def floor(q: NoisyGaussianMixture, n: int, reference: Tensor, sigma: float,
          *key: int) -> dict[str, float]:
    """Mean metrics of 3 sets of ``n`` exact oracle draws against ``reference``."""
    runs = [sample_metrics(q.at(sigma).sample((n,), generator=_gen(*key, r)), q, sigma,
                           reference) for r in range(3)]
    return {k: sum(r[k] for r in runs) / 3 for k in runs[0]}


# ------------------------------------------------------------------------------ stages
def run_overlap(cfg: Config, overlap: float, out: Path, log: Log) -> dict[str, Any]:
    """All stages of one overlap; returns what the report needs."""
    folder = out / folder_name(cfg, overlap)
    folder.mkdir(parents=True, exist_ok=True)
    oi = round(overlap * 100)
    q = make_oracle(cfg.features, cfg.components, overlap, cfg.sigma_ref)
    cov = q.clean_covariances[0]

    def oracle_stage() -> dict[str, Any]:
        xs = q.at(cfg.sigma_ref).sample((cfg.n_ref,), generator=_gen(oi, 1))
        conf = posterior(q, xs, cfg.sigma_ref).max(-1).values
        h, h_se = neg_entropy(q, 0.0, cfg.n_kl, _gen(oi, 2))
        return {
            "overlap": overlap,
            "nearest_distance": {f"{s:g}": nearest_distance(q.locs, cov, s)
                                 for s in (0.0, *cfg.sigma_starts)},
            "class_confidence_at_ref": float(conf.mean()),
            "ambiguous_at_ref": float((conf < 0.9).double().mean()),
            "neg_entropy": h, "neg_entropy_se": h_se,
        }

    oracle = _cached(folder / "oracle.json", oracle_stage)
    log(f"[Δ={overlap:g}] nearest distance at σ: {oracle['nearest_distance']}, oracle class "
        f"confidence at σ_ref {oracle['class_confidence_at_ref']:.3f}")

    models: dict[tuple[str, int], MADE] = {}
    runs: list[dict[str, Any]] = []
    for seed in cfg.seeds:
        for obj in OBJECTIVES:
            m, rec = train_model(q, obj, seed, cfg, folder / "train" / f"{obj}_s{seed}", log)
            models[obj, seed] = m
            runs.append(rec)

    kls = []
    for seed in cfg.seeds:
        def kl_stage(seed: int = seed) -> dict[str, Any]:
            res: dict[str, Any] = {}
            oracle_x = q.sample((cfg.n_test,), generator=_gen(oi, 3, seed))
            for obj in OBJECTIVES:
                m = models[obj, seed]
                kl0 = forward_kl(m, q, 0.0, cfg.n_kl, _gen(oi, 4, seed))
                klr = forward_kl(m, q, cfg.sigma_ref, cfg.n_kl, _gen(oi, 5, seed))
                own = ancestral(m, cfg.n_test, 0.0, _gen(oi, 6, seed))
                tf = conditional_kl_profile(m, q, oracle_x, _gen(oi, 7, seed))
                mp = conditional_kl_profile(m, q, own, _gen(oi, 8, seed))
                res[obj] = {"kl0": kl0, "kl_ref": klr, "teacher_forced": tf, "model_prefix": mp}
            return res

        kls.append(_cached(folder / f"kl_s{seed}.json", kl_stage))
    log(f"[Δ={overlap:g}] KL(q||p) at σ=0: " + ", ".join(
        f"{o} {sum(k[o]['kl0'][0] for k in kls) / len(kls):.2f}" for o in OBJECTIVES))

    # ---- validation curve (first training seed), selection
    def val_stage() -> dict[str, Any]:
        seed = cfg.seeds[0]
        n = cfg.n_val_draws
        ref = q.sample((cfg.n_ref,), generator=_gen(oi, 10))
        ncmle, mle = models["ncmle", seed], models["mle", seed]
        rows = []
        for obj, m in (("mle", mle), ("ncmle", ncmle)):
            c0 = time.process_time()
            x = ancestral(m, n, 0.0, _gen(oi, 11, seed, len(rows)))
            rows.append({"label": f"{obj} ancestral", "family": f"{obj}_ancestral",
                         **sample_metrics(x, q, 0.0, ref), "S_start": 0.0, "S_total": 0.0,
                         "score_evals": 0, "cpu_seconds": time.process_time() - c0})
        starts = {s: ancestral(ncmle, n, s, _gen(oi, 12, seed, int(s * 1000)))
                  for s in cfg.sigma_starts}
        for i, entry in enumerate(curve_configs(cfg)):
            r = evaluate(q, ncmle, entry, starts[entry["options"]["sigma_start"]], ref,
                         _gen(oi, 13, seed, i))
            rows.append(r)
            log(f"[Δ={overlap:g} val] {r['label']}: energy {r['energy']:.4f} plausible "
                f"{r['plausible']:.3f} switch {r['switch']:.3f} S {r['S_start']:.2f}/"
                f"{r['S_total']:.2f}")
        floor_val = floor(q, n, ref, 0.0, oi, 14)
        selected = {}
        for fam in {r["family"] for r in rows if "options" in r}:
            best = min((r for r in rows if r["family"] == fam), key=lambda r: r["energy"])
            selected[fam] = {k: best[k] for k in ("family", "method", "options", "label")}
        sc = [r for r in rows if r["family"].startswith("score_corrected")]
        selected["score_corrected_best"] = {
            k: min(sc, key=lambda r: r["energy"])[k] for k in ("family", "method", "options",
                                                                "label")}
        return {"rows": rows, "floor": floor_val, "selected": selected, "n": n}

    val = _cached(folder / "val.json", val_stage)

    # ---- test, once per training seed
    tests = []
    for seed in cfg.seeds:
        def test_stage(seed: int = seed) -> dict[str, Any]:
            n = cfg.n_test
            ref = q.sample((cfg.n_ref,), generator=_gen(oi, 20, seed))
            ncmle, mle = models["ncmle", seed], models["mle", seed]
            res: dict[str, Any] = {"methods": {}, "controls": {}}
            mle_x = ancestral(mle, n, 0.0, _gen(oi, 21, seed))
            res["methods"]["mle_ancestral"] = sample_metrics(mle_x, q, 0.0, ref)
            res["methods"]["ncmle_ancestral"] = sample_metrics(
                ancestral(ncmle, n, 0.0, _gen(oi, 22, seed)), q, 0.0, ref)
            starts: dict[float, Tensor] = {}
            sel = val["selected"]
            for i, fam in enumerate(sorted(sel)):
                entry = sel[fam]
                s = entry["options"]["sigma_start"]
                if s not in starts:
                    starts[s] = ancestral(ncmle, n, s, _gen(oi, 23, seed, int(s * 1000)))
                if fam == "score_corrected_best":
                    continue  # the same run as its family's
                res["methods"][fam] = evaluate(q, ncmle, entry, starts[s], ref,
                                               _gen(oi, 24, seed, i))
                log(f"[Δ={overlap:g} test s{seed}] {fam}: energy "
                    f"{res['methods'][fam]['energy']:.4f}")
            best = sel["score_corrected_best"]
            s = best["options"]["sigma_start"]
            exact = q.at(s).sample((n,), generator=_gen(oi, 25, seed))
            noised = mle_x + s * torch.randn(mle_x.shape, generator=_gen(oi, 26, seed),
                                             dtype=mle_x.dtype)
            res["controls"]["a_exact_start"] = evaluate(q, ncmle, best, exact, ref,
                                                        _gen(oi, 27, seed))
            res["controls"]["b_mle_plus_noise"] = evaluate(q, ncmle, best, noised, ref,
                                                           _gen(oi, 28, seed))
            ref_s = q.at(s).sample((cfg.n_ref,), generator=_gen(oi, 29, seed))
            res["controls"]["c_at_sigma_start"] = {
                "sigma_start": s,
                "ncmle_ancestral": sample_metrics(starts[s], q, s, ref_s),
                "mle_plus_noise": sample_metrics(noised, q, s, ref_s),
                "floor": floor(q, n, ref_s, s, oi, 30, seed),
            }
            res["floor"] = floor(q, n, ref, 0.0, oi, 31, seed)
            return res

        tests.append(_cached(folder / f"test_s{seed}.json", test_stage))
        log(f"[Δ={overlap:g}] test seed {seed} done")
    return {"overlap": overlap, "oracle": oracle, "runs": runs, "kl": kls, "val": val,
            "tests": tests, "folder": str(folder)}
