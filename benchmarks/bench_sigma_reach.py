"""Issue 17's table: can MADE learn the noisy family in every dimension, old layout vs new?

A 3-D ``NoisyGaussian`` with clean variances 0.36, 0.25, 0.14 (correlated), MADE with 64 hidden
units, NCMLE with the default noise-level prior, fresh oracle draws every step; then at
σ ∈ {0, 0.1, 0.3, 1}: Var(x_i) of 20 000 ancestral draws per dimension beside the truth, and
the exact KL(q_σ ‖ p_θ(·|σ)) by Monte Carlo with its standard error.

    python benchmarks/bench_sigma_reach.py --steps 2000 --out benchmarks/results/sigma_reach.json

``--speed`` times instead ``log_prob`` and ``score`` of the two layouts at matched depth (same
shapes, so the same arithmetic), interleaved in one process: the ratio old / new per size,
median over rounds.
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


def speed(rounds: int = 7) -> None:
    """Median time ratio old layout / new layout (> 1: the new one is faster)."""
    import statistics

    for d, h, b in [(64, 256, 1024), (196, 512, 256), (784, 1024, 256)]:
        x = torch.randn(b, d)
        sig = torch.rand(b)
        models = {lay: MADE(d, h, layout=lay).eval() for lay in ("no_sigma_units", "default")}
        for lay in models:
            models[lay].load_state_dict(models["default"].state_dict())
        times: dict[str, dict[str, list[float]]] = {k: {"log_prob": [], "score": []}
                                                    for k in models}
        for _ in range(rounds):
            for lay, m in models.items():
                dist = m()
                with torch.no_grad():
                    t0 = time.perf_counter()
                    dist.log_prob(x, sig)
                    times[lay]["log_prob"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                dist.score(x, sig)
                times[lay]["score"].append(time.perf_counter() - t0)
        for what in ("log_prob", "score"):
            old = statistics.median(times["no_sigma_units"][what])
            new = statistics.median(times["default"][what])
            print(f"D={d} H={h} B={b} {what}: old {old * 1e3:.2f} ms, new {new * 1e3:.2f} ms, "
                  f"old/new {old / new:.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--families", default="gaussian,gaussian_mixture")
    ap.add_argument("--layouts", default="no_sigma_units,default")
    ap.add_argument("--out", default=None)
    ap.add_argument("--speed", action="store_true", help="time the layouts instead")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.speed:
        speed()
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
