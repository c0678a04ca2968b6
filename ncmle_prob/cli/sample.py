"""``ncmle sample``: draw from a checkpoint with any registered sampler; write a PNG."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

from .common import (
    CLIError,
    HelpFormatter,
    check_output_file,
    make_generator,
    nonnegative_float,
    parse_options,
    positive_int,
    sampler_names,
    say,
)

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = ["add_parser", "draw", "run"]


def _method_help() -> str:
    # evaluated only when --help is printed: listing the registry imports torch
    return "sampler of ncmle_prob.samplers.available(): " + ", ".join(sampler_names())


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``ncmle sample``."""
    p = sub.add_parser(
        "sample", help="draw samples and write an image grid or scatter PNG",
        description="Sample from a trained checkpoint at noise level σ with a sampler of the "
                    "registry (ncmle_prob.samplers); images become a grid PNG, 2-D data a "
                    "scatter PNG.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint file (last.pt)")
    p.add_argument("--num", "-n", type=positive_int, default=64, help="number of samples")
    p.add_argument("--sigma", type=nonnegative_float, default=0.0,
                   help="noise level of the target")
    p.add_argument("--method", default="ancestral", help=_method_help)  # type: ignore[arg-type]
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
    out = check_output_file("--out", args.out)
    options = parse_options(args.method, args.option)
    from ..training import load_checkpoint, load_model, resolve_device

    meta = load_checkpoint(args.checkpoint).meta
    model = load_model(args.checkpoint, ema=not args.no_ema, device=resolve_device(args.device))
    features = math.prod(getattr(model, "event_shape", ()) or (0,))
    side = math.isqrt(features)
    shape = meta.get("image_shape") or (
        [1, side, side] if side * side == features and side > 2 else None
    )  # checkpoints written by fit() without image metadata: square grey images
    if not shape and features != 2:
        raise CLIError(f"cannot plot samples of {features} values (not images, not 2-D)")
    x = draw(model, args.num, args.sigma, args.method, options, args.seed)
    from .plots import image_grid, scatter_plot

    title = f"{args.num} samples, {args.method}, σ={args.sigma:g}"
    if shape:
        path = image_grid(x.reshape(x.shape[0], *shape), out, title=title)
    else:
        path = scatter_plot(x.reshape(-1, 2), out, title=title)
    say(f"wrote {args.num} samples to {path}")
    return 0
