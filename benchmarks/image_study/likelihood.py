"""Stage ``likelihood``: test bits/dim against σ of every finished run, paired over seeds.

Every run is evaluated on the same noisy test images (the noise is keyed by ``(seed, σ)`` in
:func:`ncmle_prob.training.evaluate_bits_per_dim`), so the NCMLE − MLE differences of one seed
are paired twice: same training seed, same evaluation noise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ncmle_prob.data import load_dataset
from ncmle_prob.training import evaluate_bits_per_dim, load_checkpoint, load_model

from .plan import Run, Study
from .stats import paired

__all__ = ["best_checkpoint", "likelihood", "stop_facts"]


def best_checkpoint(study: Study, root: Path, run: Run) -> Path | None:
    """The run's early-stopped weights (``best.pt``), else ``last.pt``; ``None`` if untrained."""
    folder = study.run_dir(root, run)
    for name in ("best.pt", "last.pt"):
        if (folder / name).exists():
            return folder / name
    return None


def stop_facts(study: Study, root: Path, run: Run) -> dict[str, Any]:
    """Where the run stands: its last step, the best step and why it stopped (from ``last.pt``)."""
    last = study.run_dir(root, run) / "last.pt"
    if not last.exists():
        return {"trained": False}
    ck = load_checkpoint(last)
    meta = ck.meta or {}
    return {"trained": True, "step": ck.step, "best_step": meta.get("best_step"),
            "stop_reason": meta.get("stop_reason"),
            "finished": (study.run_dir(root, run) / "DONE").exists()
            or meta.get("stop_reason") is not None,
            "best_validation_bits_per_dim": meta.get("best_bits_per_dim")}


def likelihood(study: Study, root: Path, out: Path) -> dict[str, Any]:
    """Writes ``out/likelihood.json``: bits/dim per run and σ, and the paired comparisons."""
    test = load_dataset(study.data, split="test", flatten=True).tensor()
    old_path = out / "likelihood.json"
    old = json.loads(old_path.read_text())["runs"] if old_path.exists() else {}
    per_run: dict[str, Any] = {}
    for run in study.runs:
        path = best_checkpoint(study, root, run)
        facts = stop_facts(study, root, run)
        if path is None:
            per_run[run.name] = facts
            continue
        kept = old.get(run.name, {})
        if (kept.get("finished") and facts["finished"] and kept.get("step") == facts["step"]
                and kept.get("checkpoint") == str(path)):
            per_run[run.name] = kept  # a finished run's numbers do not change: not redone
            continue
        torch.manual_seed(0)
        model = load_model(path)
        with torch.no_grad():
            bpd = evaluate_bits_per_dim(model, test, study.sigmas, batch_size=500)
        per_run[run.name] = {**facts, "checkpoint": str(path),
                             "bits_per_dim": {str(s): v for s, v in bpd.items()}}
        print(f"{run.name}: " + ", ".join(f"σ={s:g} {v:.4f}" for s, v in bpd.items())
              + f" (step {facts.get('step')}, best {facts.get('best_step')}, "
              f"stop: {facts.get('stop_reason')})", flush=True)
    comparisons: dict[str, Any] = {}
    seeds = sorted({r.seed for r in study.runs})
    for s in study.sigmas:
        diffs = []
        for seed in seeds:
            ra, rb = per_run.get(f"ncmle-s{seed}", {}), per_run.get(f"mle-s{seed}", {})
            a = ra.get("bits_per_dim", {}).get(str(s))
            b = rb.get("bits_per_dim", {}).get(str(s))
            if a is not None and b is not None and ra["finished"] and rb["finished"]:
                diffs.append(a - b)
        entry: dict[str, Any] = {"differences": diffs}
        if len(diffs) >= 2:
            entry.update(paired(diffs).to_json())
        comparisons[str(s)] = entry
    result = {"data": study.data, "test_images": len(test), "runs": per_run,
              "ncmle_minus_mle": comparisons}
    out.mkdir(parents=True, exist_ok=True)
    (out / "likelihood.json").write_text(json.dumps(result, indent=1))
    return result
