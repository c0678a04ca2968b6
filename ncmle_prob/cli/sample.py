"""``ncmle sample``: draw from a checkpoint with any registered sampler; write a PNG grid (or
scatter) and, for image models, the samples as ``.npz``."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import (
    CLIError,
    HelpFormatter,
    add_run_args,
    check_figure_file,
    check_output_file,
    make_generator,
    nonnegative_float,
    parse_options,
    positive_int,
    resolve_checkpoint,
    sampler_names,
    say,
    show_progress,
)
from .report import noisy_levels_warning

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = ["add_parser", "draw", "run", "save_npz"]


def _method_help() -> str:
    # evaluated only when --help is printed: listing the registry imports torch
    return "sampler of ncmle_prob.samplers.available(): " + ", ".join(sampler_names())


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``ncmle sample``."""
    p = sub.add_parser(
        "sample", help="draw samples and write an image grid or scatter PNG",
        description="Sample from a trained checkpoint at noise level σ with a sampler of the "
                    "registry (ncmle_prob.samplers); images become a grid PNG and an .npz "
                    "(samples in [-1, 1], and their grid levels at σ = 0), 2-D data a scatter "
                    "PNG.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint file (last.pt) or pretrained:NAME (a shipped "
                                      "model, see 'ncmle pretrained')")
    p.add_argument("--num", "-n", type=positive_int, default=64, help="number of samples")
    p.add_argument("--sigma", type=nonnegative_float, default=0.0,
                   help="noise level of the target; pyro_mala and pyro_langevin need a density, "
                        "so σ > 0 on grid data (a discretized family at σ = 0 is a mass)")
    p.add_argument("--method", default="ancestral", help=_method_help)  # type: ignore[arg-type]
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="sampler option (repeatable); see ncmle_prob.samplers.options(NAME)")
    p.add_argument("--out", default="samples.png",
                   help="figure path: .png, .jpg/.jpeg, .pdf or .svg (checked before any work)")
    p.add_argument("--npz", default=None, metavar="PATH",
                   help="image models: .npz path (default: --out with .npz; '' for none)")
    p.add_argument("--no-ema", action="store_true", help="use raw instead of averaged weights")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    add_run_args(p, "draws")
    p.set_defaults(run=run)


def draw(model: nn.Module, num: int, sigma: float, method: str, options: dict[str, Any],
         seed: int, *, batch_size: int | None = None, progress: bool = False) -> Tensor:
    """``num`` samples of ``model(sigma)`` with the named sampler of the registry, in batches
    of ``batch_size`` draws (unless ``options`` sets ``batch_size``), with a progress bar of
    the draws (draws/s, ETA) if ``progress``."""
    from .. import samplers

    dist = model(sigma)
    g = make_generator(seed, dist.device)
    if batch_size is not None:
        options = {"batch_size": batch_size, **options}
    return samplers.sample(dist, num, method=method, generator=g, progress=progress, **options)


def save_npz(path: str | Path, x: Tensor, *, bins: int | None, sigma: float, method: str,
             checkpoint: str) -> Path:
    """Writes samples ``(N, C, H, W)`` atomically as ``.npz``: ``samples`` (float32 in
    [-1, 1]), ``levels`` (integers ``0..bins-1``, at σ = 0 on grid data only), ``sigma``,
    ``method``, ``checkpoint``.

    Example:
        >>> import tempfile, pathlib, numpy as np, torch
        >>> from ncmle_prob.cli.sample import save_npz
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.npz"
        >>> _ = save_npz(p, torch.tensor([[[[-1.0, 1.0]]]]), bins=17, sigma=0.0,
        ...              method="ancestral", checkpoint="last.pt")
        >>> np.load(p)["levels"].tolist()
        [[[[0, 16]]]]
    """
    import io

    import numpy as np

    from .._io import atomic_write

    arrays: dict[str, Any] = {"samples": x.detach().float().cpu().numpy(),
                              "sigma": np.float64(sigma), "method": np.str_(method),
                              "checkpoint": np.str_(checkpoint)}
    if bins is not None and sigma == 0:
        levels = ((x.detach().double().cpu() + 1) * (bins - 1) / 2).round().clamp(0, bins - 1)
        arrays["levels"] = levels.numpy().astype(np.uint8 if bins <= 256 else np.int32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def run(args: argparse.Namespace) -> int:
    """Runs ``ncmle sample``."""
    source, args.checkpoint = args.checkpoint, resolve_checkpoint(args.checkpoint, "sample")
    out = check_figure_file("--out", args.out)
    npz = None
    if args.npz != "":
        npz = check_output_file("--npz", args.npz or Path(args.out).with_suffix(".npz"))
    options = parse_options(args.method, args.option)
    from ..training import load_checkpoint, load_model, resolve_device

    ck = load_checkpoint(args.checkpoint)
    meta = ck.meta
    warning = noisy_levels_warning(ck.train_config, meta, [args.method], args.sigma)
    if warning:
        print(f"ncmle: {warning}", file=sys.stderr, flush=True)
    model = load_model(args.checkpoint, ema=not args.no_ema, device=resolve_device(args.device))
    features = math.prod(getattr(model, "event_shape", ()) or (0,))
    side = math.isqrt(features)
    shape = meta.get("image_shape") or (
        [1, side, side] if side * side == features and side > 2 else None
    )  # checkpoints written by fit() without image metadata: square grey images
    if not shape and features != 2:
        raise CLIError(f"cannot plot samples of {features} values (not images, not 2-D)")
    x = draw(model, args.num, args.sigma, args.method, options, args.seed,
             batch_size=args.batch_size, progress=show_progress(args.quiet))
    from .plots import image_grid, scatter_plot

    title = f"{args.num} samples, {args.method}, σ={args.sigma:g}"
    if shape:
        images = x.reshape(x.shape[0], *shape)
        path = image_grid(images, out, title=title)
        if npz is not None:
            bins = meta.get("bins")
            saved = save_npz(npz, images, bins=bins, sigma=args.sigma, method=args.method,
                             checkpoint=source)
            say(f"wrote {args.num} samples to {saved}")
    else:
        path = scatter_plot(x.reshape(-1, 2), out, title=title)
    say(f"wrote {args.num} samples to {path}")
    return 0
