"""Issue 17's table: can MADE learn the noisy family in every dimension, old layout vs new?

A 3-D ``NoisyGaussian`` with clean variances 0.36, 0.25, 0.14 (correlated), MADE with 64 hidden
units, NCMLE with the default noise-level prior, fresh oracle draws every step; then at
σ ∈ {0, 0.1, 0.3, 1}: Var(x_i) of 20 000 ancestral draws per dimension beside the truth, and
the exact KL(q_σ ‖ p_θ(·|σ)) by Monte Carlo with its standard error.

    python benchmarks/bench_sigma_reach.py --steps 2000 --out benchmarks/results/sigma_reach.json

``--time WHAT D H B CALLS`` (WHAT = log_prob or score) runs only a loop of CALLS calls of the
default ``MADE(D, H)`` on a batch of B: time it as a whole process under two checkouts (e.g.
``PYTHONPATH=old python benchmarks/bench_sigma_reach.py --time log_prob 64 256 1024 600``
against the same with ``PYTHONPATH=new``, with ``/usr/bin/time``, pairs alternated) to compare
the MADE of two commits; Python start-up and import (about 2 s) are part of every run.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ncmle_prob.distributions import NoisyGaussian
from ncmle_prob.models import MADE
from ncmle_prob.testing import fit_report, train_on_oracle


def oracle() -> NoisyGaussian:
    std = torch.tensor([0.6, 0.5, 0.374])  # variances 0.36, 0.25, 0.14
    corr = torch.tensor([[1.0, 0.5, 0.2], [0.5, 1.0, 0.4], [0.2, 0.4, 1.0]])
    return NoisyGaussian(torch.tensor([0.3, -0.2, 0.1]), corr * std[:, None] * std[None, :])


def time_loop(what: str, d: int, h: int, b: int, calls: int) -> None:
    """``calls`` calls of ``log_prob`` (no grad, eval mode) or ``score`` of ``MADE(d, h)``."""
    if what not in ("log_prob", "score"):
        raise SystemExit(f"--time: WHAT must be log_prob or score, got {what!r}")
    torch.manual_seed(0)
    dist = MADE(d, h).eval()()
    x, sigma = torch.randn(b, d), torch.rand(b)
    for _ in range(calls):
        if what == "log_prob":
            with torch.no_grad():
                dist.log_prob(x, sigma)
        else:
            dist.score(x, sigma)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--families", default="gaussian,gaussian_mixture")
    ap.add_argument("--layouts", default="no_sigma_units,default")
    ap.add_argument("--out", default=None)
    ap.add_argument("--time", nargs=5, metavar=("WHAT", "D", "H", "B", "CALLS"), default=None,
                    help="only run a timing loop (see the module docstring)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.time is not None:
        what, *sizes = args.time
        time_loop(what, *(int(v) for v in sizes))
        return
    q = oracle()
    rows = []
    for family in args.families.split(","):
        for layout in args.layouts.split(","):
            torch.manual_seed(0)
            extra = {"components": 4} if "mixture" in family else {}
            model = MADE(3, 64, family=family, layout=layout, **extra)
            t0 = time.perf_counter()
            train_on_oracle(model, q, steps=args.steps, seed=0)
            secs = time.perf_counter() - t0
            for r in fit_report(model, q):
                rows.append({"family": family, "layout": layout, "sigma": r.sigma,
                             "kl": r.kl, "kl_stderr": r.kl_stderr, "var": r.var.tolist(),
                             "true_var": r.true_var.tolist(), "train_s": secs})
                v = ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(r.var, r.true_var))
                print(f"{family:17s} {layout:15s} sigma={r.sigma:<4} KL={r.kl:.4f}"
                      f"±{r.kl_stderr:.4f}  Var model/true: {v}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"steps": args.steps, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
