"""``ncmle restore``: denoise or inpaint images with a trained checkpoint as the prior, and
write a before/after PNG.

Hook into the ``ncmle`` command with ``add_restore_subparser(sub)`` (``sub`` the
``add_subparsers()`` action); the parsed arguments carry ``run`` = :func:`run_restore`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import Tensor

from .inverse import denoise, inpaint, psnr

__all__ = ["add_restore_subparser", "load_images", "make_mask", "rows_canvas", "run_restore"]


def add_restore_subparser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Registers ``ncmle restore`` on a sub-parser action."""
    p = sub.add_parser(
        "restore", help="denoise or inpaint images with a trained model as the prior",
        description="Posterior sampling (MALA over the Pyro model x ~ p(x | sigma_p), "
                    "y ~ N(Ax, tau^2)) with a trained checkpoint as the prior; writes a PNG "
                    "with the observation and the restored image (and the clean one with "
                    "--corrupt).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--task", choices=("denoise", "inpaint"), required=True)
    p.add_argument("--checkpoint", required=True, help="checkpoint file of a trained model")
    p.add_argument("--input", required=True,
                   help="images: a .pt or .npy tensor (N, D) or (N, C, H, W) in [-1, 1], a .png "
                        "(grey, scaled to [-1, 1]), or digits:I,J,... (digits test images)")
    p.add_argument("--corrupt", action="store_true",
                   help="the input is clean: add the noise / apply the mask first")
    p.add_argument("--noise-std", type=float, default=0.3,
                   help="observation noise (denoise) or noise on observed pixels (inpaint)")
    p.add_argument("--mask", default="center",
                   help="inpaint: observed pixels; 'center', 'left', 'top' hide that region, "
                        "'random:P' hides a fraction P")
    p.add_argument("--prior-sigma", type=float, default=0.1,
                   help="noise level the prior is bound to (a density also for grid data)")
    p.add_argument("--kernel", default="mala", choices=("mala", "annealed_langevin", "nuts"))
    p.add_argument("--num-samples", type=int, default=200, help="posterior draws per image")
    p.add_argument("--warmup", type=int, default=300, help="warm-up steps per image")
    p.add_argument("--out", default="restore.png", help="PNG path")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run_restore)
    return p


def load_images(spec: str, features: int) -> Tensor:
    """Images ``(N, features)`` from a file or ``digits:I,J``; see ``ncmle restore --help``."""
    if spec.startswith("digits:"):
        from ..data.digits import load_digits

        test = load_digits().flatten().test
        try:
            idx = [int(i) for i in spec[len("digits:"):].split(",")]
        except ValueError:
            raise ValueError(
                f"--input digits:I,J,... needs integer indices, got {spec!r}"
            ) from None
        x = test[idx]
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"--input {spec}: no such file")
        if path.suffix == ".pt":
            x = torch.load(path, map_location="cpu", weights_only=True)
        elif path.suffix == ".npy":
            import numpy as np

            x = torch.as_tensor(np.load(path, allow_pickle=False))
        elif path.suffix == ".png":
            from matplotlib.image import imread

            img = torch.as_tensor(imread(str(path)), dtype=torch.float32)
            if img.dim() == 3:
                img = img[..., :3].mean(-1)
            x = img[None] * 2 - 1
        else:
            raise ValueError(f"--input {spec}: expected .pt, .npy, .png or digits:I,J")
    if not isinstance(x, Tensor):
        raise TypeError(f"--input {spec} does not hold a tensor")
    x = x.float().reshape(-1, features) if x.numel() % features == 0 else x
    if x.dim() != 2 or x.shape[1] != features:
        raise ValueError(
            f"--input {spec} has {x.numel()} values; expected N images of {features} values"
        )
    return x


def make_mask(spec: str, shape: tuple[int, int], generator: torch.Generator) -> Tensor:
    """Boolean ``(H*W,)`` mask of *observed* pixels from ``center``, ``left``, ``top`` or
    ``random:P`` (fraction P hidden)."""
    h, w = shape
    m = torch.ones(h, w, dtype=torch.bool)
    if spec == "center":
        m[h // 4 : h - h // 4, w // 4 : w - w // 4] = False
    elif spec == "left":
        m[:, : w // 2] = False
    elif spec == "top":
        m[: h // 2] = False
    elif spec.startswith("random:"):
        frac = float(spec.split(":", 1)[1])
        if not 0 < frac < 1:
            raise ValueError(f"--mask random:P needs 0 < P < 1, got {frac}")
        m = (torch.rand(h, w, generator=generator) >= frac)
    else:
        raise ValueError(f"--mask must be center, left, top or random:P, got {spec!r}")
    return m.reshape(-1)


def run_restore(args: argparse.Namespace) -> int:
    """Runs ``ncmle restore``; returns the exit status."""
    import pyro

    from ..cli.plots import image_grid
    from ..training import load_model

    device = torch.device(args.device)
    model = load_model(args.checkpoint, device=device)
    features = int(model.event_shape[0])
    side = math.isqrt(features)
    shape = (side, side) if side * side == features else (1, features)
    x = load_images(args.input, features).to(device)
    g = torch.Generator().manual_seed(args.seed)
    pyro.set_rng_seed(args.seed)
    prior = model(args.prior_sigma)
    opts = {"kernel": args.kernel, "num_samples": args.num_samples,
            "warmup_steps": args.warmup}
    mask = make_mask(args.mask, shape, g).to(device) if args.task == "inpaint" else None
    if args.corrupt:
        clean = x
        if args.task == "denoise":
            y = x + args.noise_std * torch.randn(x.shape, generator=g).to(device)
        else:
            y = torch.where(mask, x, torch.zeros_like(x))
    else:
        clean, y = None, x
    if args.task == "denoise":
        out = denoise(prior, y, args.noise_std, **opts)
    else:
        out = inpaint(prior, y, mask, args.noise_std, **opts)
    rows = [r for r in (clean, y, out.mean.detach()) if r is not None]
    canvas = rows_canvas(rows, shape)
    title = f"{args.task}: " + ("clean / observed / restored" if clean is not None
                                else "observed / restored")
    if clean is not None:
        before = float(psnr(y, clean).mean())
        after = float(psnr(out.mean.detach(), clean).mean())
        title += f"  (PSNR {before:.1f} -> {after:.1f} dB)"
        print(f"PSNR observed {before:.2f} dB, restored {after:.2f} dB")
    path = image_grid(canvas[None], args.out, title=title)
    print(f"wrote {path}")
    return 0


def rows_canvas(rows: list[Tensor], shape: tuple[int, int]) -> Tensor:
    """One grey canvas ``(1, H', W')``: row ``r`` holds the images ``rows[r]`` ``(N, H*W)``."""
    h, w = shape
    n = rows[0].shape[0]
    canvas = torch.ones(1, len(rows) * (h + 1) + 1, n * (w + 1) + 1)
    for r, imgs in enumerate(rows):
        for i in range(n):
            top, left = 1 + r * (h + 1), 1 + i * (w + 1)
            canvas[0, top : top + h, left : left + w] = imgs[i].reshape(h, w).float().cpu()
    return canvas
