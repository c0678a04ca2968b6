"""The paper's three image tables in miniature: MLE vs NCMLE PixelCNN++ on digits / MNIST.

1. test bits/dim at σ = 0 (paper: NCMLE ≤ MLE);
2. bits/dim of test images perturbed at several σ (paper: MLE collapses, NCMLE holds) + plot;
3. FCD / KID of samples — MLE+ancestral, NCMLE+ancestral, NCMLE+annealed Langevin,
   NCMLE+score-corrected ancestral — with wall time per sample, beside the real-vs-real floor.

Protocol (honest measurement): the training split is cut into train / validation (last 10%);
MLE and NCMLE get the same architecture, optimiser, number of updates and the same early
stopping rule (keep the checkpoint with the best validation bits/dim at σ = 0, evaluated every
``--eval-every`` updates). Sampler settings (σ_start, step size) are chosen by FCD against the
*validation* images; the test split is touched only for the final numbers. Everything is
repeated over ``--seeds`` and reported as mean ± standard error.

Usage::

    python examples/image_experiments.py --quick                 # CI smoke run, digits
    python examples/image_experiments.py --dataset digits        # the digits tables
    python examples/image_experiments.py --dataset mnist --device cuda --filters 64 \\
        --resnets 3 --steps 20000 --num-samples 1000 --seeds 3   # MNIST (GPU)

Writes ``results.json``, ``robustness.png`` and ``samples_<method>.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ncmle_prob import samplers
from ncmle_prob.data import load_digits, load_mnist
from ncmle_prob.metrics import image_scores
from ncmle_prob.models.pixelcnnpp import PixelCNNPP
from ncmle_prob.objectives import NoiseLevelPrior, bits_per_dim, ncmle_loss

SIGMAS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def mean_bpd(model: PixelCNNPP, x: torch.Tensor, sigma: float, batch: int = 256) -> float:
    """Mean bits/dim of ``x`` at ``sigma`` (log mass at σ = 0, density converted to the bin
    width for σ > 0, see :func:`ncmle_prob.objectives.bits_per_dim`)."""
    model.eval()
    with torch.no_grad():
        vals = [bits_per_dim(model(sigma), x[i : i + batch]) for i in range(0, len(x), batch)]
    return float(torch.cat(vals).mean())


def mle_noisy_bpd(model: PixelCNNPP, x: torch.Tensor, sigma: float, batch: int = 256) -> float:
    """Bits/dim of noisy ``x`` under an MLE model used as it was trained: its σ = 0
    conditionals, read as the continuous logistic-mixture density (the discretized family's
    density form), converted to the bin width like every σ > 0 density."""
    if sigma == 0:
        return mean_bpd(model, x, 0.0, batch)
    model.eval()
    d, fam = math.prod(x.shape[1:]), model.family
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i : i + batch]
            zeros = torch.zeros(len(xb), dtype=xb.dtype, device=xb.device)
            params = model.conditional_params(xb, zeros)
            s = torch.full_like(xb, sigma)
            lp = fam.log_prob(params, xb, s).reshape(len(xb), -1).sum(-1)
            out.append(-(lp + d * math.log(fam.bin_width)) / (d * math.log(2)))
    return float(torch.cat(out).mean())


def train(args: argparse.Namespace, data: dict[str, torch.Tensor], prior: NoiseLevelPrior,
          seed: int) -> tuple[PixelCNNPP, dict[str, Any]]:
    """Adam, ``args.steps`` updates, early stopping on validation bits/dim at σ = 0."""
    torch.manual_seed(seed)
    g = torch.Generator(args.device).manual_seed(seed)
    model = PixelCNNPP(data["train"].shape[1:], filters=args.filters, resnets=args.resnets,
                       components=args.components, bins=data["bins"], dropout=args.dropout)
    model = model.to(args.device)
    opt = torch.optim.Adam(model.parameters(), args.lr)
    best, best_state, best_step, history = math.inf, None, 0, []
    n, t0 = data["train"].shape[0], time.perf_counter()
    for step in range(1, args.steps + 1):
        model.train()
        idx = torch.randint(0, n, (args.batch,), generator=g, device=args.device)
        loss = ncmle_loss(model, data["train"][idx], prior, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            val = mean_bpd(model, data["val"], 0.0)
            history.append((step, val))
            if val < best:
                best, best_step = val, step
                best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)  # type: ignore[arg-type]
    model.eval()
    return model, {"best_val_bpd": best, "best_step": best_step, "history": history,
                   "train_seconds": time.perf_counter() - t0}


def draw(model: PixelCNNPP, method: str, n: int, seed: int, opts: dict[str, Any],
         device: str) -> tuple[torch.Tensor, float]:
    g = torch.Generator(device).manual_seed(seed)
    t = time.perf_counter()
    x = samplers.sample(model(0.0), n, method, generator=g, **opts)
    return x, (time.perf_counter() - t) / n


def sampler_grid(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Candidate settings searched on validation (quick mode: a small grid)."""
    small = args.quick or args.grid == "small"
    starts = (0.1, 0.3) if small else (0.1, 0.2, 0.3, 0.5, 1.0)
    eps = (2e-5, 1e-4) if small else (1e-5, 3e-5, 1e-4, 3e-4)
    steps = args.langevin_steps
    sca = [{"sigma_start": s, "step_size": e, "steps_per_level": steps, "num_levels": 5}
           for s in starts for e in eps]
    ald = [{"sigma_max": 1.0, "step_size": e, "steps_per_level": steps, "num_levels": 8}
           for e in eps]
    return {"annealed_langevin": ald, "score_corrected_ancestral": sca}


def save_grid(x: torch.Tensor, path: Path, title: str) -> None:
    """Up to 64 samples as a titled grid with gaps between tiles (the package's grid helper)."""
    from ncmle_prob.cli.plots import image_grid

    image_grid(x[:64], path, title=title)


def plot_robustness(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name in ("mle", "ncmle"):
        m = res["robustness"][name]
        ax.errorbar(SIGMAS, m["mean"], yerr=m["se"], marker="o", label=name.upper())
    ax.set_xscale("symlog", linthresh=0.02)
    ax.set_xlabel("noise level σ of the test images")
    ax.set_ylabel("test bits/dim")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _ms(vals: list[float]) -> dict[str, float]:
    t = torch.tensor(vals, dtype=torch.float64)
    se = float(t.std() / math.sqrt(len(vals))) if len(vals) > 1 else float("nan")
    return {"mean": float(t.mean()), "se": se, "values": vals}  # type: ignore[dict-item]


def run(args: argparse.Namespace) -> dict[str, Any]:
    raw = load_digits() if args.dataset == "digits" else load_mnist(args.data_dir)
    n_val = raw.train.shape[0] // 10
    dev = args.device
    data = {"train": raw.train[:-n_val].to(dev), "val": raw.train[-n_val:].to(dev),
            "test": raw.test.to(dev), "bins": raw.bins}
    if args.quick:
        data["test"] = data["test"][:200]
    priors = {"mle": NoiseLevelPrior.mle(),
              "ncmle": NoiseLevelPrior(p_zero=0.2, sigma_min=0.01, sigma_max=1.0)}
    methods = ["mle+ancestral", "ncmle+ancestral", "ncmle+annealed_langevin",
               "ncmle+score_corrected_ancestral"]
    per_seed: list[dict[str, Any]] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rec: dict[str, Any] = {"seed": seed, "train": {}, "bpd": {}, "robust": {}, "samples": {},
                               "tuning": {}}
        models = {}
        for name, prior in priors.items():
            models[name], rec["train"][name] = train(args, data, prior, seed)
            rec["bpd"][name] = mean_bpd(models[name], data["test"], 0.0)
            print(f"[seed {seed}] {name}: best val bpd {rec['train'][name]['best_val_bpd']:.3f} "
                  f"at step {rec['train'][name]['best_step']}; test bpd {rec['bpd'][name]:.3f}",
                  flush=True)
        rec["robust"]["mle"] = [mle_noisy_bpd(models["mle"], _noisy(data["test"], s, seed), s)
                                for s in SIGMAS]
        rec["robust"]["ncmle"] = [mean_bpd(models["ncmle"], _noisy(data["test"], s, seed), s)
                                  for s in SIGMAS]
        print(f"[seed {seed}] robustness mle {rec['robust']['mle']} ncmle "
              f"{rec['robust']['ncmle']}", flush=True)
        # Tune sampler settings on validation images (FCD), never on test.
        chosen: dict[str, dict[str, Any]] = {"ancestral": {}}
        for method, grid in sampler_grid(args).items():
            scores = []
            for opts in grid:
                try:
                    x, _ = draw(models["ncmle"], method, args.tune_samples, 10_000 + seed,
                                opts, dev)
                    f = image_scores(x, data["val"], args.dataset, repeats=1,
                                     kid_subsets=5)["fcd"]
                except (samplers.SamplerDivergenceError, ValueError) as e:
                    f = math.inf
                    print(f"  {method} {opts}: diverged ({e})")
                scores.append(f)
                print(f"  tune {method} {opts}: val FCD {f:.3f}", flush=True)
            rec["tuning"][method] = list(zip(grid, scores))
            chosen[method] = grid[min(range(len(grid)), key=scores.__getitem__)]
        for m in methods:
            name, method = m.split("+")
            x, t = draw(models[name], method, args.num_samples, 20_000 + seed, chosen[method],
                        dev)
            s = image_scores(x, data["test"], args.dataset, seed=seed)
            s["seconds_per_sample"] = t
            s["options"] = chosen[method]  # type: ignore[assignment]
            rec["samples"][m] = s
            print(f"[seed {seed}] {m}: FCD {s['fcd']:.3f} (floor {s['fcd_floor']:.3f}) "
                  f"KID {s['kid']:.4f} (floor {s['kid_floor']:.4f}) {t * 1e3:.1f} ms/sample",
                  flush=True)
            if seed == args.first_seed and args.out:
                save_grid(x, Path(args.out) / f"samples_{m.replace('+', '_')}.png",
                          title=f"{name.upper()} + {method.replace('_', ' ')}: "
                                f"{min(64, x.shape[0])} samples, σ=0\n"
                                f"(FCD {s['fcd']:.1f}, floor {s['fcd_floor']:.1f})")
        per_seed.append(rec)
    res: dict[str, Any] = {"config": vars(args), "sigmas": list(SIGMAS), "per_seed": per_seed}
    res["bpd"] = {k: _ms([r["bpd"][k] for r in per_seed]) for k in priors}
    res["robustness"] = {k: {"mean": [_ms([r["robust"][k][i] for r in per_seed])["mean"]
                                      for i in range(len(SIGMAS))],
                             "se": [_ms([r["robust"][k][i] for r in per_seed])["se"]
                                    for i in range(len(SIGMAS))]} for k in priors}
    res["samples"] = {m: {key: _ms([r["samples"][m][key] for r in per_seed])
                          for key in ("fcd", "kid", "fcd_floor", "kid_floor",
                                      "seconds_per_sample")} for m in methods}
    if args.out:
        out = Path(args.out)
        _atomic_write(out / "results.json", json.dumps(res, indent=1, default=str).encode())
        plot_robustness(res, out / "robustness.png")
    return res


def _noisy(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator(x.device).manual_seed(1000 + seed)
    return x + sigma * torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    p.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: auto)")
    p.add_argument("--quick", action="store_true", help="CI smoke run (small everything)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first..first+seeds-1")
    p.add_argument("--grid", choices=["small", "full"], default="full",
                   help="sampler settings searched on validation")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--filters", type=int, default=32)
    p.add_argument("--resnets", type=int, default=1)
    p.add_argument("--components", type=int, default=5)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--num-samples", type=int, default=300)
    p.add_argument("--tune-samples", type=int, default=150)
    p.add_argument("--langevin-steps", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="ncmle-output/images")
    a = p.parse_args(argv)
    if a.quick:
        a.seeds, a.steps, a.eval_every = 1, min(a.steps, 200), 100
        a.num_samples, a.tune_samples, a.langevin_steps = 100, 60, 5
        a.filters, a.resnets = min(a.filters, 16), 1
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
    return a


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run(parse(argv))


if __name__ == "__main__":
    torch.set_num_threads(max(1, int(os.environ.get("NCMLE_THREADS", "1"))))
    main()
