"""Training throughput: NCMLE vs MLE on the same model, fit vs a hand loop, and DDP scaling.

Run: ``python benchmarks/bench_training.py [--steps 150] [--threads 1]``.

* NCMLE vs MLE: the same MADE (digits, 64 dims, discretized logistic mixture) trained by
  ``fit`` with ``NoiseLevelPrior()`` and with ``NoiseLevelPrior.mle()``; runs are interleaved
  and the median of the repeats is reported, so machine load affects both alike. Goal ≥ 0.95×.
* fit vs a bare ``ncmle_loss`` + Adam loop: the overhead of fit's bookkeeping.
* DDP: the same global batch on 1 process vs 2 torchrun processes (gloo, 1 thread each).
* GPU: when CUDA is available, examples/s of MADE on the GPU (bf16 autocast too).
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
from pathlib import Path

import torch

from ncmle_prob.data import load_digits
from ncmle_prob.models import MADE
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


def _model() -> MADE:
    torch.manual_seed(0)
    return MADE(64, hidden_features=256, family="discretized_logistic_mixture", components=3,
                bins=17)


def _fit_rate(x: torch.Tensor, prior: NoiseLevelPrior, steps: int, batch: int,
              device: str = "cpu", amp: str | None = None) -> float:
    model = _model()
    fit(model, x, prior=prior, steps=5, batch_size=batch, progress=False, device=device)  # warm
    t = time.perf_counter()
    fit(model, x, prior=prior, steps=steps, batch_size=batch, progress=False, device=device,
        amp=amp)
    if device != "cpu":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t)


def _loop_rate(x: torch.Tensor, prior: NoiseLevelPrior, steps: int, batch: int) -> float:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = load_digits().flatten().train
    print(f"MADE 64-d, hidden 256, discretized logistic mixture; batch {args.batch}, "
          f"{args.steps} steps, {args.threads} thread(s), median of {args.repeats}")
    rates: dict[str, list[float]] = {"mle": [], "ncmle": [], "loop_mle": [], "loop_ncmle": []}
    for _ in range(args.repeats):
        rates["mle"].append(_fit_rate(x, NoiseLevelPrior.mle(), args.steps, args.batch))
        rates["ncmle"].append(_fit_rate(x, NoiseLevelPrior(), args.steps, args.batch))
        rates["loop_mle"].append(_loop_rate(x, NoiseLevelPrior.mle(), args.steps, args.batch))
        rates["loop_ncmle"].append(_loop_rate(x, NoiseLevelPrior(), args.steps, args.batch))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"fit MLE              {med['mle']:9.0f} examples/s")
    print(f"fit NCMLE            {med['ncmle']:9.0f} examples/s")
    print(f"hand loop MLE        {med['loop_mle']:9.0f} examples/s")
    print(f"hand loop NCMLE      {med['loop_ncmle']:9.0f} examples/s")
    print(f"  NCMLE / MLE (loop) {med['loop_ncmle'] / med['loop_mle']:9.3f}x")
    print(f"NCMLE / MLE          {med['ncmle'] / med['mle']:9.3f}x   (goal >= 0.95)")
    print(f"fit / hand loop      {med['ncmle'] / med['loop_ncmle']:9.3f}x")
    one = _ddp_rate(1, args.steps, args.batch)
    two = _ddp_rate(2, args.steps, args.batch)
    print(f"DDP 1 process        {one:9.0f} examples/s")
    print(f"DDP 2 processes      {two:9.0f} examples/s   (gloo, same global batch)")
    print(f"DDP scaling          {two / one:9.3f}x   ({os.cpu_count()} CPU cores here)")
    if torch.cuda.is_available():
        xg = x.cuda()
        for amp in (None, "bf16"):
            for prior, name in ((NoiseLevelPrior.mle(), "MLE"), (NoiseLevelPrior(), "NCMLE")):
                r = _fit_rate(xg, prior, args.steps, 1024, device="cuda", amp=amp)
                print(f"GPU {name:5s} amp={amp!s:5s} {r:9.0f} examples/s (batch 1024)")
    else:
        print("GPU: not run (CUDA not available)")


if __name__ == "__main__":
    main()
