"""One prepared GPU run (issue 10, item 6): MNIST 28x28 PixelCNN++, MLE vs NCMLE, end to end.

Steps, each timed, all through the Python API:

1. the CUDA test subset: ``NCMLE_TEST_DEVICE=<device> pytest -q -x`` on :data:`CUDA_TESTS`
   (a subprocess with its own time limit; its outcome goes into the JSON, a failure does not
   stop the run);
2. training a PixelCNN++ by MLE and by NCMLE with :func:`ncmle_prob.training.fit` for a fixed
   wall-clock budget each (bf16 autocast on CUDA; ``--compile`` tries ``torch.compile`` and
   falls back with a message). The budget becomes a step count from a short calibration run
   that is then resumed from its checkpoint, so the optimizer state carries on;
3. test bits/dim at σ = 0 of both models;
4. ``--samples`` draws per model with the cached ancestral sampler and the score-corrected
   sampler (:func:`ncmle_prob.samplers.sample`), samples/s of each;
5. FCD, KID, precision/recall, class-histogram TV and the confident fraction in the shipped
   MNIST classifier's feature space, each beside its real-vs-real floor at the same set sizes
   (:func:`ncmle_prob.metrics.image_scores`, test split).

Prints a table and writes a JSON (atomically). On one H200::

    python benchmarks/gpu_images.py --device cuda --out gpu_images.json   # < 8 min

CPU smoke run (< 60 s on an idle core; tiny network on 14x14 MNIST, a few steps, no test
subset)::

    python benchmarks/gpu_images.py --device cpu --quick --out /tmp/gpu_images.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ncmle_prob import samplers
from ncmle_prob.data import load_mnist
from ncmle_prob.metrics import downsample_images, image_scores
from ncmle_prob.models import PixelCNNPP
from ncmle_prob.objectives import NoiseLevelPrior, bits_per_dim
from ncmle_prob.training import fit

ROOT = Path(__file__).resolve().parents[1]
#: Tests that take the ``device`` fixture (NCMLE_TEST_DEVICE) and finish in about a minute.
CUDA_TESTS = (
    "tests/test_exactness.py",
    "tests/test_samplers_model.py",
    "tests/test_training.py",
    "tests/test_infer_restore_batched.py",
)
METRICS = ("fcd", "kid", "precision", "recall", "class_tv", "confident")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_tests(device: torch.device, limit: float) -> dict[str, Any]:
    """The CUDA test subset in a subprocess (its output tail and exit code are recorded)."""
    env = {**os.environ, "NCMLE_TEST_DEVICE": str(device), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", *CUDA_TESTS]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=limit, check=False)
        code, tail = res.returncode, (res.stdout + res.stderr)[-1500:]
    except subprocess.TimeoutExpired as e:
        code, tail = -1, f"timed out after {limit:.0f} s: {str(e.stdout)[-1000:]}"
    out = {"command": " ".join(cmd), "returncode": code, "seconds": time.perf_counter() - t0,
           "tail": tail}
    print(f"tests: exit {code} in {out['seconds']:.0f} s\n{tail[-400:]}", flush=True)
    return out


def build(args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    return PixelCNNPP((1, args.size, args.size), filters=args.filters, resnets=args.resnets,
                      components=args.components, bins=256, dropout=0.0).to(device)


def maybe_compile(model: torch.nn.Module, wanted: bool) -> torch.nn.Module:
    """Compiles the network's ``conditional_params`` (the heavy part) in place, so the model
    keeps its class and its checkpoints still rebuild with ``load_model``; falls back to eager
    mode with one line when compilation fails."""
    if not wanted:
        return model
    eager = model.conditional_params
    try:
        compiled = torch.compile(eager)
        dev = next(model.parameters()).device
        shape = (2, *model.event_shape)
        compiled(torch.zeros(shape, device=dev), torch.full((2,), 0.1, device=dev))
        model.conditional_params = compiled  # type: ignore[method-assign]
    except Exception as e:  # inductor raises many kinds (no compiler, unsupported op, ...)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        print(f"torch.compile unavailable here ({type(e).__name__}: {first}); using eager mode")
    return model


def train(
    name: str, prior: NoiseLevelPrior, data: Any, args: argparse.Namespace,
    device: torch.device, ckpt: Path,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Trains for ``args.budget`` seconds: calibration steps, then resume to the budget."""
    model = build(args, device)
    net = maybe_compile(model, args.compile)
    amp = "bf16" if device.type == "cuda" else None
    common = {"prior": prior, "batch_size": args.batch, "lr": args.lr, "amp": amp,
              "device": device, "checkpoint_dir": ckpt / name, "progress": False,
              "log_every": max(1, args.calib // 2), "seed": args.seed, "grad_clip": 1.0}
    _sync(device)
    t0 = time.perf_counter()
    fit(net, data.train, steps=args.calib, **common)
    _sync(device)
    t_cal = time.perf_counter() - t0
    per_step = t_cal / args.calib
    steps = max(args.calib + 1, int(args.budget / per_step))
    t1 = time.perf_counter()
    hist = fit(net, data.train, steps=steps, resume=True, **common)
    _sync(device)
    t_train = time.perf_counter() - t1
    rate = (steps - args.calib) * args.batch / t_train
    info = {"steps": steps, "seconds": t_cal + t_train, "images_per_s": rate,
            "final_loss": hist.losses[-1][1] if hist.losses else math.nan}
    print(f"{name}: {steps} steps in {info['seconds']:.0f} s, {rate:.0f} images/s", flush=True)
    return model.eval(), info


@torch.no_grad()
def test_bpd(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> float:
    vals = [bits_per_dim(model(0.0), x[i : i + 500].to(device)) for i in range(0, len(x), 500)]
    return float(torch.cat(vals).mean())


def draw(model: torch.nn.Module, method: str, n: int, args: argparse.Namespace,
         device: torch.device) -> tuple[torch.Tensor, float]:
    opts: dict[str, Any] = {}
    if method == "score_corrected_ancestral":
        opts = {"sigma_start": args.sigma_start, "num_levels": args.levels,
                "steps_per_level": args.steps_per_level}
    g = torch.Generator(device=device).manual_seed(args.seed + 1)
    _sync(device)
    t0 = time.perf_counter()
    x = samplers.sample(model(0.0), n, method=method, generator=g, **opts)
    _sync(device)
    return x.detach(), n / (time.perf_counter() - t0)


def _atomic_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, default=str)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="CPU smoke run (< 60 s)")
    p.add_argument("--budget", type=float, default=90.0, help="training seconds per model")
    p.add_argument("--calib", type=int, default=30, help="calibration steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--filters", type=int, default=64)
    p.add_argument("--resnets", type=int, default=2)
    p.add_argument("--components", type=int, default=5)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--sigma-start", type=float, default=0.3)
    p.add_argument("--levels", type=int, default=6)
    p.add_argument("--steps-per-level", type=int, default=20)
    p.add_argument("--compile", action="store_true", help="try torch.compile")
    p.add_argument("--tests", choices=("run", "skip"), default="run")
    p.add_argument("--test-limit", type=float, default=120.0, help="seconds for the tests")
    p.add_argument("--size", type=int, choices=(28, 14), default=28,
                   help="image side: MNIST 28x28, or 2x2-pooled 14x14 (classifier mnist14)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="gpu_images.json")
    args = p.parse_args(argv)
    if args.quick:
        args.budget, args.calib, args.batch, args.filters, args.resnets = 3.0, 2, 16, 8, 1
        args.components, args.samples, args.levels, args.steps_per_level = 2, 12, 2, 2
        args.tests, args.size = "skip", 14
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda given but torch.cuda.is_available() is False")
    t_start = time.perf_counter()
    res: dict[str, Any] = {"config": vars(args), "device": str(device),
                           "torch": torch.__version__}
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.tests == "run":
        res["tests"] = run_tests(device, args.test_limit)
    data = load_mnist()
    classifier = "mnist"
    if args.size == 14:
        data = replace(data, train=downsample_images(data.train, 2), image_shape=(1, 14, 14),
                       test=downsample_images(data.test, 2))
        classifier = "mnist14"
    test = data.test[:1000] if args.quick else data.test
    priors = {"mle": NoiseLevelPrior.mle(), "ncmle": NoiseLevelPrior()}
    models: dict[str, torch.nn.Module] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, prior in priors.items():
            models[name], res[f"train_{name}"] = train(name, prior, data, args, device,
                                                       Path(tmp))
    res["bits_per_dim"] = {k: test_bpd(m, test[:200] if args.quick else test, device)
                           for k, m in models.items()}
    rows = []
    res["samples"] = {}
    metric_device = device if device.type == "cuda" else None
    for name, model in models.items():
        for method in ("ancestral", "score_corrected_ancestral"):
            x, rate = draw(model, method, args.samples, args, device)
            s = image_scores(x, test, classifier, metrics=METRICS, repeats=3, seed=args.seed,
                             device=metric_device)
            s["samples_per_s"] = rate
            res["samples"][f"{name}+{method}"] = s
            rows.append((f"{name}+{method}", s, rate))
            print(f"{name}+{method}: {rate:.1f} samples/s, FCD {s['fcd']:.2f} (floor "
                  f"{s['fcd_floor']:.2f} ± {s['fcd_floor_std']:.2f})", flush=True)
    res["seconds"] = time.perf_counter() - t_start
    print(f"\n| model+sampler | bits/dim | FCD | FCD floor | KID | KID floor | precision | "
          f"recall | class TV | confident | samples/s |\n|{'---|' * 11}")
    for key, s, rate in rows:
        bpd = res["bits_per_dim"][key.split("+")[0]]
        print(f"| {key} | {bpd:.3f} | {s['fcd']:.2f} | {s['fcd_floor']:.2f} ± "
              f"{s['fcd_floor_std']:.2f} | {s['kid']:.4f} | {s['kid_floor']:.4f} ± "
              f"{s['kid_floor_std']:.4f} | {s['precision']:.3f} | {s['recall']:.3f} | "
              f"{s['class_tv']:.3f} | {s['confident']:.3f} | {rate:.1f} |")
    for name in models:
        print(f"train {name}: {res[f'train_{name}']['images_per_s']:.0f} images/s, "
              f"{res[f'train_{name}']['steps']} steps")
    print(f"total {res['seconds']:.0f} s; sets: {args.samples} samples vs "
          f"{len(test) - args.samples} reference test images per resplit")
    _atomic_json(Path(args.out), res)
    return res


if __name__ == "__main__":
    main()
