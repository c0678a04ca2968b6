"""``ncmle sample``: draw from a checkpoint with any registered sampler; write a PNG."""

from __future__ import annotations

import argparse
import math
from typing import Any

from torch import Tensor, nn

from .common import CLIError, make_generator, parse_options, say

__all__ = ["add_parser", "draw", "run"]


def _sampler_names() -> list[str]:
    from .. import (
        infer,  # noqa: F401  (registers the Pyro MCMC kernels as samplers)
        samplers,
    )

    return samplers.available()


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``ncmle sample``."""
    p = sub.add_parser(
        "sample", help="draw samples and write an image grid or scatter PNG",
        description="Sample from a trained checkpoint at noise level σ with a sampler of the "
                    "registry (ncmle_prob.samplers); images become a grid PNG, 2-D data a "
                    "scatter PNG.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint file (last.pt)")
    p.add_argument("--num", "-n", type=int, default=64, help="number of samples")
    p.add_argument("--sigma", type=float, default=0.0, help="noise level of the target")
    p.add_argument("--method", default="ancestral",
                   help="sampler: " + ", ".join(_sampler_names()))
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="sampler option (repeatable); see ncmle_prob.samplers.options(NAME)")
    p.add_argument("--out", default="samples.png", help="PNG path")
    p.add_argument("--no-ema", action="store_true", help="use raw instead of averaged weights")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.set_defaults(run=run)


def draw(model: nn.Module, num: int, sigma: float, method: str, options: dict[str, Any],
         seed: int) -> Tensor:
    """``num`` samples of ``model(sigma)`` with the named sampler of the registry."""
    from .. import samplers

    dist = model(sigma)
    g = make_generator(seed, dist.device)
    return samplers.sample(dist, num, method=method, generator=g, **options)


def run(args: argparse.Namespace) -> int:
    """Runs ``ncmle sample``."""
    from ..training import load_checkpoint, load_model, resolve_device

    if args.num < 1:
        raise CLIError(f"--num must be >= 1, got {args.num}")
    if args.sigma < 0 or args.sigma != args.sigma:
        raise CLIError(f"--sigma must be >= 0, got {args.sigma}")
    options = parse_options(args.method, args.option)
    meta = load_checkpoint(args.checkpoint).meta
    model = load_model(args.checkpoint, ema=not args.no_ema, device=resolve_device(args.device))
    x = draw(model, args.num, args.sigma, args.method, options, args.seed)
    from .plots import image_grid, scatter_plot

    title = f"{args.method}, σ={args.sigma:g}"
    side = math.isqrt(x[0].numel())
    shape = meta.get("image_shape") or (
        [1, side, side] if side * side == x[0].numel() and side > 2 else None
    )  # checkpoints written by fit() without image metadata: square grey images
    if shape:
        path = image_grid(x.reshape(x.shape[0], *shape), args.out, title=title)
    elif x.dim() == 2 and x.shape[1] == 2:
        path = scatter_plot(x, args.out, title=title)
    else:
        raise CLIError(f"cannot plot samples of shape {tuple(x.shape[1:])} (not images, not 2-D)")
    say(f"wrote {args.num} samples to {path}")
    return 0
