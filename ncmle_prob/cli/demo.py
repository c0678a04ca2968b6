"""``ncmle demo``: MLE vs NCMLE on the embedded digits, the README's main job."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from ..training.checkpoint import atomic_write
from .common import RunData, load_run_data, say
from .evaluate import format_table
from .train import add_model_args, build_made, build_prior

__all__ = ["add_parser", "run"]

TABLE_SIGMAS = (0.0, 0.05, 0.2)
PLOT_SIGMAS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def _default_out() -> str:
    return os.environ.get("NCMLE_OUTPUT_DIR", "ncmle-output")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``ncmle demo``."""
    p = sub.add_parser(
        "demo", help="train MLE and NCMLE on digits; table, robustness plot, samples",
        description="Train the same MADE (discretized logistic mixture, 17 levels) by MLE and by "
                    "NCMLE on scikit-learn's 8x8 digits, print test bits/dim at σ = 0, 0.05 "
                    "and 0.2, and write a robustness plot and sample grids.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default=_default_out(),
                   help="output folder ($NCMLE_OUTPUT_DIR if set, else ./ncmle-output)")
    p.add_argument("--quick", action="store_true", help="tiny CI-sized run (seconds)")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps per model")
    p.add_argument("--batch-size", type=int, default=64, help="batch size")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--ema", type=float, default=0.995, help="EMA decay of the weights")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_model_args(p)
    p.set_defaults(run=run)


def _has_sampler(name: str) -> bool:
    try:
        from .. import samplers
    except ImportError:
        return False
    return name in samplers.available()


def _train_one(
    args: argparse.Namespace, data: RunData, objective: str, out: Path
) -> torch.nn.Module:
    from ..training import fit

    torch.manual_seed(args.seed)
    model = build_made(args, data)
    say(f"training {objective.upper()} ({args.steps} steps)...")
    fit(
        model, data.train, prior=build_prior(args, objective), steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, ema=args.ema, device=args.device,
        bins=data.bins, checkpoint_dir=out / objective, checkpoint_every=max(args.steps // 4, 1),
        seed=args.seed, progress=not args.quiet,
        meta={"dataset": "digits", "objective": objective, "image_shape": [1, 8, 8]},
    )
    return model


def run(args: argparse.Namespace) -> int:
    """Runs ``ncmle demo``."""
    from ..training import evaluate_bits_per_dim
    from .plots import image_grid, robustness_plot
    from .sample import draw

    if args.quick:
        args.steps, args.hidden, args.blocks = min(args.steps, 40), min(args.hidden, 32), 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_run_data("digits")
    test = data.test if not args.quick else data.test[:128]
    start = time.perf_counter()
    results, samples = {}, {}
    for objective in ("mle", "ncmle"):
        model = _train_one(args, data, objective, out)
        dev = next(model.parameters()).device
        results[objective.upper()] = evaluate_bits_per_dim(
            model, test.to(dev), PLOT_SIGMAS, bins=data.bins, seed=args.seed
        )
        n = 64 if not args.quick else 16
        samples[f"{objective}"] = draw(model, n, 0.0, "ancestral", {}, args.seed)
        if objective == "ncmle" and _has_sampler("score_corrected_ancestral"):
            opts = {"steps_per_level": 2, "num_levels": 2} if args.quick else {}
            samples["ncmle_score_corrected"] = draw(
                model, n, 0.0, "score_corrected_ancestral", opts, args.seed
            )
    say(f"\ntest bits/dim on digits (8x8, 17 levels; {test.shape[0]} test images), "
        f"{time.perf_counter() - start:.0f} s")
    say(format_table({k: {s: v[s] for s in TABLE_SIGMAS} for k, v in results.items()}))
    written = [robustness_plot(results, out / "robustness.png",
                               title="digits: test bits/dim vs noise level")]
    for key, x in samples.items():
        how = "score-corrected ancestral" if key.endswith("corrected") else "ancestral"
        written.append(image_grid(x.reshape(-1, 1, 8, 8), out / f"samples_{key}.png",
                                  title=f"{key.split('_')[0].upper()} samples ({how}, σ=0)"))
    payload = json.dumps({k: {repr(s): v for s, v in r.items()} for k, r in results.items()},
                         indent=2)
    written.append(atomic_write(out / "results.json", lambda f: f.write(payload.encode())))
    say("\nwrote:")
    for p in written + [out / "mle" / "last.pt", out / "ncmle" / "last.pt"]:
        say(f"  {p}")
    return 0
