r"""Stages ``select`` and ``test``: sampler settings scored on classifier features.

``select`` draws ``select_samples`` images with every setting of every family from the seed-0
models and scores them against the *validation* images (the last images of the train split,
held out of training): FCD, precision, recall and class TV, with the FCD's bootstrap spread
over the samples. The setting with the lowest validation FCD is kept for each family.

``test`` draws ``test_samples`` images with each kept setting from every seed's model, once,
and scores them against test images ``[0, test_reference)`` with
:func:`ncmle_prob.metrics.image_scores`: every metric beside its real-vs-real floor at the same
set sizes. The controls use test images ``[test_reference, test_reference + control_starts)``,
which the metrics' real set does not contain:

* (a) the score-corrected setting's correction started from real images plus
  :math:`\sigma_\text{start}` noise (what the corrector does to the right law at the start);
* (b) the same correction started from MLE ancestral draws plus :math:`\sigma_\text{start}`
  noise (can it repair another model's samples?);
* (c) at :math:`\sigma_\text{start}` itself: NCMLE's ancestral draws of
  :math:`p_\theta(\cdot\mid\sigma_\text{start})` against MLE draws plus noise, both scored
  against real test images plus the same noise (is NCMLE's law at the start better than noised
  MLE samples?).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ncmle_prob import samplers
from ncmle_prob.data import load_dataset
from ncmle_prob.metrics import image_features, image_scores, load_classifier
from ncmle_prob.metrics.classes import class_tv
from ncmle_prob.metrics.fcd import fcd
from ncmle_prob.metrics.manifold import precision_recall
from ncmle_prob.samplers.engine import at_level
from ncmle_prob.training import load_model

from .likelihood import best_checkpoint, stop_facts
from .plan import Run, Setting, Study, settings

__all__ = ["draw", "langevin_time_at_start", "select", "test"]

TEST_METRICS = ("fcd", "kid", "precision", "recall", "class_tv")
BOOTSTRAP = 50


def _images(x: Tensor) -> Tensor:
    """Flat ``(N, D)`` draws as ``(N, 1, √D, √D)`` images."""
    side = math.isqrt(x.shape[-1])
    return x.reshape(-1, 1, side, side).float()


def langevin_time_at_start(info: samplers.SampleInfo) -> float:
    """:math:`S` spent at :math:`\\sigma_\\text{start}` (the first level): ``T`` × its step."""
    if not info.sigmas or not info.step_sizes or info.corrector in (None, "none"):
        return 0.0
    return float(info.steps_per_level * info.step_sizes[0])


#: (model id, σ_start, n, seed) -> (start draws, generator state after them, seconds)
_STARTS: dict[tuple[int, float, int, int], tuple[Tensor, Tensor, float]] = {}
#: samplers that start from an ancestral draw at ``sigma_start`` and then only refine it
_FROM_START = frozenset({"score_corrected_ancestral", "self_denoising"})


def _start(model: torch.nn.Module, sigma_start: float, n: int, seed: int
           ) -> tuple[Tensor, torch.Generator, float]:
    """The ancestral draw at ``sigma_start`` that the sampler itself would make first (same
    generator, same calls), computed once and shared by every setting with that start: the
    settings are then compared on common random numbers, and the costly D sequential passes
    are paid once. Its time is added to every setting's time."""
    key = (id(model), sigma_start, n, seed)
    if key not in _STARTS:
        g = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        with torch.no_grad():
            x0 = at_level(model(torch.tensor(0.0)), sigma_start).sample((n,), generator=g)
        _STARTS[key] = (x0, g.get_state(), time.perf_counter() - t0)
    x0, state, seconds = _STARTS[key]
    g = torch.Generator()
    g.set_state(state)
    return x0.clone(), g, seconds


def draw(model: torch.nn.Module, setting: Setting, n: int, seed: int) -> tuple[Tensor, dict]:
    """``n`` samples of ``model`` at σ = 0 with ``setting``, and the facts of the run.

    A setting that starts from an ancestral draw at ``sigma_start`` gets the same draws as
    ``samplers.sample(..., generator=Generator().manual_seed(seed))`` would make (see
    :func:`_start`)."""
    dist = model(torch.tensor(0.0))
    opts = setting.kwargs()
    t0 = time.perf_counter()
    if setting.method in _FROM_START:
        sampler = samplers.get(setting.method, **opts)
        x0, g, start_seconds = _start(model, float(sampler.sigma_start), n, seed)
        t0 = time.perf_counter() - start_seconds
        if setting.method == "self_denoising":
            x = sampler.denoise(dist, x0, 0.0)
        else:
            x = sampler.refine(dist, x0, generator=g)
        info = sampler.info
    else:
        g = torch.Generator().manual_seed(seed)
        x, info = samplers.sample(dist, n, setting.method, generator=g, return_info=True,
                                  **opts)
    seconds = time.perf_counter() - t0
    facts = {"seconds": seconds, "samples_per_s": n / seconds,
             "langevin_time": float(info.langevin_time),
             "langevin_time_at_start": langevin_time_at_start(info),
             "score_evals": int(info.score_evals),
             "acceptance": (None if info.acceptance_rates is None
                            else sum(info.acceptance_rates) / len(info.acceptance_rates))}
    return x.detach(), facts


def _validation(study: Study, root: Path, run: Run) -> Tensor:
    from ncmle_prob.training import load_checkpoint

    size = int(load_checkpoint(study.run_dir(root, run) / "last.pt").meta["validation_size"])
    train = load_dataset(study.data, split="train", flatten=True).tensor()
    return train[-size:]


def _feature_scores(net: Any, real: tuple[Tensor, Tensor], x: Tensor, seed: int
                    ) -> dict[str, float]:
    fr, pr = real
    ff, pf = image_features(net, x)
    g = torch.Generator().manual_seed(seed)
    boot = [fcd(fr, ff[torch.randint(len(ff), (len(ff),), generator=g)])
            for _ in range(BOOTSTRAP)]
    mean = sum(boot) / len(boot)
    p, r = precision_recall(fr, ff)
    return {"fcd": fcd(fr, ff),
            "fcd_bootstrap_sd": math.sqrt(sum((b - mean) ** 2 for b in boot) / (len(boot) - 1)),
            "precision": p, "recall": r, "class_tv": class_tv(pr, pf)}


def _load(study: Study, root: Path, objective: str, seed: int) -> torch.nn.Module | None:
    """The run's kept weights, or ``None`` while it has not stopped (a run still training is
    never scored: its best weights so far are not the study's model)."""
    path = best_checkpoint(study, root, Run(objective, seed))
    if path is None or not stop_facts(study, root, Run(objective, seed))["finished"]:
        return None
    torch.manual_seed(0)
    return load_model(path)


def select(study: Study, root: Path, out: Path, shard: tuple[int, int] | None = None
           ) -> dict[str, Any]:
    """Writes ``out/select.json``: every setting's validation scores and each family's pick.

    With ``shard=(i, n)`` only every n-th setting from the i-th is scored, into
    ``out/select-{i}of{n}.json`` (several processes at once); a later run without ``shard``
    takes the shards' scores over and scores what is left."""
    name = "select.json" if shard is None else f"select-{shard[0]}of{shard[1]}.json"
    path = out / name
    done: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"settings": {}}
    if shard is None:
        for part in sorted(out.glob("select-*of*.json")):
            done["settings"].update(json.loads(part.read_text())["settings"])
        skip: set[str] = set()
    else:  # what the merged file or another shard already holds is not scored again
        skip = {k for other in [out / "select.json", *out.glob("select-*of*.json")]
                if other.exists() and other != path
                for k in json.loads(other.read_text())["settings"]}
    net = load_classifier(study.data)
    real = _validation(study, root, Run("ncmle", 0))
    real_feats = image_features(net, _images(real))
    done["validation_images"] = len(real)
    models = {obj: _load(study, root, obj, 0) for obj in ("mle", "ncmle")}
    jobs = [("mle", Setting("ancestral", "ancestral"))] + [("ncmle", s) for s in settings(study)]
    if shard is not None:
        jobs = jobs[shard[0]::shard[1]]
    for objective, setting in jobs:
        key = f"{objective}/{setting.label}"
        if key in done["settings"] or key in skip or models[objective] is None:
            continue
        if setting.method not in samplers.available():
            print(f"select {key}: skipped, no sampler {setting.method!r} in this version",
                  flush=True)
            continue
        x, facts = draw(models[objective], setting, study.select_samples, seed=1)
        scores = _feature_scores(net, real_feats, _images(x), seed=2)
        done["settings"][key] = {"objective": objective, "family": setting.family,
                                 "method": setting.method, "options": dict(setting.options),
                                 **facts, **scores}
        print(f"select {key}: FCD {scores['fcd']:.3f} ± {scores['fcd_bootstrap_sd']:.3f}, "
              f"precision {scores['precision']:.3f}, recall {scores['recall']:.3f}, "
              f"{facts['samples_per_s']:.1f} samples/s", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(done, indent=1))  # a killed stage resumes here
    picks = {}
    for family in study.families:
        cands = {k: v for k, v in done["settings"].items()
                 if v["family"] == family and v["objective"] == "ncmle"}
        if cands:
            best = min(cands, key=lambda k: cands[k]["fcd"])
            picks[family] = best
    done["picks"] = picks
    path.write_text(json.dumps(done, indent=1))
    return done


def _setting_of(entry: dict[str, Any]) -> Setting:
    return Setting(entry["family"], entry["method"], tuple(entry["options"].items()))


def test(study: Study, root: Path, out: Path, seeds: list[int] | None = None
         ) -> dict[str, Any]:
    """Writes ``out/test.json``: each pick on every seed against the test images, and the
    controls (a)–(c); resumable like :func:`select`. With ``seeds`` only those seeds, into
    ``out/test-s{seeds}.json`` (several processes at once; the report merges them)."""
    chosen = json.loads((out / "select.json").read_text())
    name = "test.json" if seeds is None else f"test-s{'-'.join(map(str, seeds))}.json"
    path = out / name
    done: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"scores": {}}
    test_x = load_dataset(study.data, split="test", flatten=True).tensor()
    real = _images(test_x[: study.test_reference])
    starts = test_x[study.test_reference: study.test_reference + study.control_starts]
    n = study.test_samples
    opts = {"metrics": TEST_METRICS, "repeats": study.repeats, "seed": 3,
            "num_reference": study.test_reference - n}

    def save() -> None:
        path.write_text(json.dumps(done, indent=1))

    jobs = [("mle", Setting("ancestral", "ancestral"))] + [
        ("ncmle", _setting_of(chosen["settings"][k])) for k in chosen["picks"].values()]
    for seed in sorted({r.seed for r in study.runs} if seeds is None else set(seeds)):
        models = {obj: _load(study, root, obj, seed) for obj in ("mle", "ncmle")}
        for objective, setting in jobs:
            key = f"{objective}/{setting.label}/s{seed}"
            if key in done["scores"] or models[objective] is None:
                continue
            x, facts = draw(models[objective], setting, n, seed=100 + seed)
            s = image_scores(_images(x), real, study.data, **opts)
            done["scores"][key] = {"objective": objective, "family": setting.family,
                                   "setting": setting.label, "seed": seed, **facts, **s}
            print(f"test {key}: FCD {s['fcd']:.3f} (floor {s['fcd_floor']:.3f}), precision "
                  f"{s['precision']:.3f}, recall {s['recall']:.3f}", flush=True)
            save()
        if seed == 0:
            _controls(study, models, chosen, starts, real, done, opts, save)
    return done


def _controls(study: Study, models: dict[str, Any], chosen: dict[str, Any], starts: Tensor,
              real: Tensor, done: dict[str, Any], opts: dict[str, Any], save: Any) -> None:
    if models["mle"] is None or models["ncmle"] is None:
        return
    corrected = [k for f, k in chosen["picks"].items() if f.startswith("score-corrected")]
    if not corrected:
        return
    best = min(corrected, key=lambda k: chosen["settings"][k]["fcd"])
    setting = _setting_of(chosen["settings"][best])
    s0 = float(setting.kwargs().get("sigma_start", 0.3))
    n = len(starts)
    g = torch.Generator().manual_seed(7)
    controls = done.setdefault("controls", {"setting": setting.label, "sigma_start": s0})
    mle_x = samplers.sample(models["mle"](torch.tensor(0.0)), n, "ancestral", generator=g)
    noisy = {"real": starts + s0 * torch.randn(starts.shape, generator=g),
             "mle": mle_x + s0 * torch.randn(mle_x.shape, generator=g)}
    opts_small = {**opts, "num_reference": len(real) - n}
    for name, x0 in (("a: from real + noise", noisy["real"]),
                     ("b: from MLE draws + noise", noisy["mle"])):
        if name in controls:
            continue
        sampler = samplers.get(setting.method, **setting.kwargs())
        t0 = time.perf_counter()
        x = sampler.refine(models["ncmle"](torch.tensor(0.0)), x0, generator=g)
        controls[name] = {"seconds": time.perf_counter() - t0,
                          **image_scores(_images(x), real, study.data, **opts_small)}
        save()
    if "c: at sigma_start" not in controls:
        ncmle_start = samplers.sample(models["ncmle"](torch.tensor(s0)), n, "ancestral",
                                      generator=g)
        real_noisy = real + s0 * torch.randn(real.shape, generator=g)
        controls["c: at sigma_start"] = {
            "ncmle ancestral at sigma_start": image_scores(
                _images(ncmle_start), real_noisy, study.data, **opts_small),
            "mle draws + noise": image_scores(
                _images(noisy["mle"]), real_noisy, study.data, **opts_small),
        }
        save()


def grids(study: Study, root: Path, out: Path, n: int = 36) -> Path | None:
    """Writes ``out/samples.png``: ``n`` samples of MLE ancestral and of each family's pick
    (seed-0 models), side by side with titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = json.loads((out / "select.json").read_text())
    jobs = [("MLE ancestral", "mle", Setting("ancestral", "ancestral"))] + [
        (f"NCMLE {family}", "ncmle", _setting_of(chosen["settings"][k]))
        for family, k in chosen["picks"].items()]
    models = {obj: _load(study, root, obj, 0) for obj in ("mle", "ncmle")}
    if any(m is None for m in models.values()):
        return None
    side = math.isqrt(n)
    fig, axes = plt.subplots(1, len(jobs), figsize=(2.6 * len(jobs), 3.0))
    for ax, (title, objective, setting) in zip(axes, jobs):
        x, _ = draw(models[objective], setting, side * side, seed=0)
        img = _images(x)[:, 0]
        h, w = img.shape[-2:]
        tiles = img.reshape(side, side, h, w).permute(0, 2, 1, 3).reshape(side * h, side * w)
        ax.imshow(((tiles + 1) / 2).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        label = setting.label.replace("score_corrected_ancestral", "sc").replace(
            "self_denoising", "sd").replace("sigma_start", "σ₀").replace(
            "steps_per_level", "T").replace("corrector=", "")
        ax.set_title(f"{title}\n{label}", fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    path = out / "samples.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
