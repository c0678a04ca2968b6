"""Training throughput, paired in one run: fit vs a hand loop (MADE and PixelCNN++), NCMLE vs
MLE, streaming from a folder vs in-memory tensors, DDP scaling, and the GPU when present.

Run: ``python benchmarks/bench_training.py [--quick] [--sections ...] [--threads 1]``.

* ``made``: the same MADE (digits, 64 dims, discretized logistic mixture) trained by ``fit``
  with ``NoiseLevelPrior()`` and ``NoiseLevelPrior.mle()``, and a bare ``ncmle_loss`` + Adam
  loop. Goal: NCMLE / MLE ≥ 0.95×.
* ``pixelcnn``: images/s of ``fit`` against a hand-written loop (random batch, ``ncmle_loss``,
  Adam) on the same small :class:`~ncmle_prob.models.PixelCNNPP` (digits 8×8). Goal ≥ 0.95×.
* ``stream``: ``fit`` on a folder of PNGs (:func:`ncmle_prob.data.load_dataset`
  ``"folder:..."``, decoded per item by 2 DataLoader workers) against ``fit`` on the same
  images as an in-memory tensor, same PixelCNN++. Goal ≥ 0.9× with workers.
* ``ddp``: the same global batch on 1 process vs 2 torchrun processes (gloo, 1 thread each).
* ``gpu``: examples/s of MADE and PixelCNN++ on CUDA (bf16 autocast too), when available.

Runs are interleaved and the median of the repeats is reported, so machine load affects both
sides of each ratio alike; on a shared machine the figures are provisional.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ncmle_prob.data import load_dataset, load_digits
from ncmle_prob.models import MADE, PixelCNNPP
from ncmle_prob.objectives import NoiseLevelPrior, ncmle_loss
from ncmle_prob.training import fit

WORKER = textwrap.dedent(
    """
    import statistics, sys, torch
    from ncmle_prob.data import load_digits
    from ncmle_prob.models import MADE
    from ncmle_prob.training import fit
    torch.set_num_threads(1)
    steps, batch = int(sys.argv[1]), int(sys.argv[2])
    x = load_digits().flatten().train
    torch.manual_seed(0)
    model = MADE(64, hidden_features=256, family="discretized_logistic_mixture", components=3,
                 bins=17)
    h = fit(model, x, steps=steps, batch_size=batch, progress=False, log_every=10)
    rate = statistics.median(r["examples_per_s"] for r in h.train[1:])
    import os
    if os.environ.get("RANK", "0") == "0":
        print(f"RATE {rate:.1f}", flush=True)
    """
)


def _made() -> MADE:
    torch.manual_seed(0)
    return MADE(64, hidden_features=256, family="discretized_logistic_mixture", components=3,
                bins=17)


def _pixelcnn(shape: tuple[int, int, int] = (1, 8, 8)) -> PixelCNNPP:
    torch.manual_seed(0)
    return PixelCNNPP(shape, filters=32, resnets=1, components=3, bins=17)


def _sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


def _fit_rate(make: Callable[[], torch.nn.Module], x: object, prior: NoiseLevelPrior,
              steps: int, batch: int, device: str = "cpu", amp: str | None = None,
              **options: object) -> float:
    model = make()
    fit(model, x, prior=prior, steps=3, batch_size=batch, progress=False, device=device,
        amp=amp, **options)  # warm-up (allocator, autotuning, worker start-up code paths)
    _sync(device)
    t = time.perf_counter()
    fit(model, x, prior=prior, steps=steps, batch_size=batch, progress=False, device=device,
        amp=amp, log_every=steps, **options)
    _sync(device)
    return steps * batch / (time.perf_counter() - t)


def _loop_rate(make: Callable[[], torch.nn.Module], x: torch.Tensor, prior: NoiseLevelPrior,
               steps: int, batch: int) -> float:
    """What a user writes by hand: a random batch, ncmle_loss, Adam."""
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # the same warm-up as fit's
        opt.zero_grad()
        ncmle_loss(model, x[torch.randint(x.shape[0], (batch,), generator=g)], prior).backward()
        opt.step()
    t = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(x.shape[0], (batch,), generator=g)
        opt.zero_grad()
        ncmle_loss(model, x[idx], prior).backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t)


def _ddp_rate(nproc: int, steps: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "worker.py"
        script.write_text(WORKER)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if nproc == 1:
            cmd = [sys.executable, str(script)]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                   f"--nproc_per_node={nproc}", str(script)]
        out = subprocess.run(cmd + [str(steps), str(batch)], env=env, capture_output=True,
                             text=True, check=True).stdout
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("RATE")))


def _write_pngs(images: torch.Tensor, folder: Path, bins: int) -> None:
    """Images on the grid of ``bins`` levels as 8-bit PNGs whose levels map back exactly."""
    import numpy as np
    from PIL import Image

    levels = torch.round((images + 1) * (bins - 1) / 2).long()  # 0..bins-1
    u8 = (levels * 255 // (bins - 1)).to(torch.uint8).numpy()
    for i, a in enumerate(u8):
        Image.fromarray(np.ascontiguousarray(a[0]), "L").save(folder / f"{i:05d}.png")


def _median(rates: dict[str, list[float]]) -> dict[str, float]:
    return {k: statistics.median(v) for k, v in rates.items() if v}


def bench_made(args: argparse.Namespace) -> list[str]:
    x = load_digits().flatten().train
    rates: dict[str, list[float]] = {"mle": [], "ncmle": [], "loop_ncmle": []}
    for _ in range(args.repeats):
        rates["mle"].append(_fit_rate(_made, x, NoiseLevelPrior.mle(), args.steps, args.batch))
        rates["ncmle"].append(_fit_rate(_made, x, NoiseLevelPrior(), args.steps, args.batch))
        rates["loop_ncmle"].append(_loop_rate(_made, x, NoiseLevelPrior(), args.steps,
                                              args.batch))
    m = _median(rates)
    print(f"\nMADE 64-d, hidden 256; batch {args.batch}, {args.steps} steps")
    print(f"  fit MLE              {m['mle']:9.0f} examples/s")
    print(f"  fit NCMLE            {m['ncmle']:9.0f} examples/s")
    print(f"  hand loop NCMLE      {m['loop_ncmle']:9.0f} examples/s")
    print(f"  NCMLE / MLE          {m['ncmle'] / m['mle']:9.3f}x   (goal >= 0.95)")
    print(f"  fit / hand loop      {m['ncmle'] / m['loop_ncmle']:9.3f}x")
    return [_goal("MADE NCMLE / MLE", m["ncmle"] / m["mle"], 0.95),
            _goal("MADE fit / hand loop", m["ncmle"] / m["loop_ncmle"], 0.95)]


def bench_pixelcnn(args: argparse.Namespace) -> list[str]:
    x = load_digits().train  # (1438, 1, 8, 8), 17 levels
    rates: dict[str, list[float]] = {"fit": [], "loop": []}
    steps = max(args.steps // 5, 4)
    for _ in range(args.repeats):
        rates["fit"].append(_fit_rate(_pixelcnn, x, NoiseLevelPrior(), steps, args.batch))
        rates["loop"].append(_loop_rate(_pixelcnn, x, NoiseLevelPrior(), steps, args.batch))
    m = _median(rates)
    print(f"\nPixelCNN++ 1x8x8, 32 filters, 1 resnet; batch {args.batch}, {steps} steps")
    print(f"  fit                  {m['fit']:9.0f} images/s")
    print(f"  hand loop            {m['loop']:9.0f} images/s")
    print(f"  fit / hand loop      {m['fit'] / m['loop']:9.3f}x   (goal >= 0.95)")
    return [_goal("PixelCNN++ fit / hand loop", m["fit"] / m["loop"], 0.95)]


def bench_stream(args: argparse.Namespace) -> list[str]:
    x = load_digits().train
    rates: dict[str, list[float]] = {"tensor": [], "folder": []}
    steps = max(args.steps // 5, 4)
    with tempfile.TemporaryDirectory() as d:
        _write_pngs(x, Path(d), 17)
        folder = load_dataset(f"folder:{d}", split="all", bins=17)
        assert torch.equal(folder.tensor(), x), "PNG round trip must be exact"
        for _ in range(args.repeats):
            rates["tensor"].append(_fit_rate(_pixelcnn, x, NoiseLevelPrior(), steps, args.batch))
            rates["folder"].append(_fit_rate(_pixelcnn, folder, NoiseLevelPrior(), steps,
                                             args.batch, num_workers=args.workers))
    m = _median(rates)
    print(f"\nStreaming: PixelCNN++ as above, {len(x)} PNGs, {args.workers} workers")
    print(f"  fit on tensors       {m['tensor']:9.0f} images/s")
    print(f"  fit on folder        {m['folder']:9.0f} images/s")
    print(f"  folder / tensors     {m['folder'] / m['tensor']:9.3f}x   (goal >= 0.9)")
    return [_goal("folder / tensors", m["folder"] / m["tensor"], 0.9)]


def bench_ddp(args: argparse.Namespace) -> list[str]:
    one = _ddp_rate(1, args.steps, args.batch)
    two = _ddp_rate(2, args.steps, args.batch)
    print(f"\nDDP (MADE), {os.cpu_count()} CPU cores here")
    print(f"  1 process            {one:9.0f} examples/s")
    print(f"  2 processes          {two:9.0f} examples/s   (gloo, same global batch)")
    print(f"  scaling              {two / one:9.3f}x")
    return []


def bench_gpu(args: argparse.Namespace) -> list[str]:
    if not torch.cuda.is_available():
        print("\nGPU: not run (CUDA not available)")
        return []
    print("\nGPU")
    x = load_digits().flatten().train.cuda()
    for amp in (None, "bf16"):
        for prior, name in ((NoiseLevelPrior.mle(), "MLE"), (NoiseLevelPrior(), "NCMLE")):
            r = _fit_rate(_made, x, prior, args.steps, 1024, device="cuda", amp=amp)
            print(f"  MADE {name:5s} amp={amp!s:5s} {r:9.0f} examples/s (batch 1024)")
    xi = load_digits().train.cuda()
    for amp in (None, "bf16"):
        r = _fit_rate(_pixelcnn, xi, NoiseLevelPrior(), args.steps, 256, device="cuda", amp=amp)
        print(f"  PixelCNN++ amp={amp!s:5s} {r:9.0f} images/s (batch 256)")
    return []


def _goal(name: str, value: float, target: float) -> str:
    return f"{name:28s} {value:6.3f}x  goal >= {target}  {'met' if value >= target else 'MISSED'}"


SECTIONS = {"made": bench_made, "pixelcnn": bench_pixelcnn, "stream": bench_stream,
            "ddp": bench_ddp, "gpu": bench_gpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (stream)")
    parser.add_argument("--sections", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test of the script (few steps, one repeat), not a figure")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 20, 1
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), median of {args.repeats}; provisional on a shared machine")
    goals: list[str] = []
    for name in args.sections:
        goals += SECTIONS[name](args)
    if goals:
        print("\nGoals")
        for line in goals:
            print("  " + line)


if __name__ == "__main__":
    main()
