"""``ncmle restore``: denoise or inpaint images with a trained checkpoint as the prior, and
write a before/after PNG.

Every argument, the checkpoint, the input images and the output path are checked before the
posterior sampling starts; the sampling itself is :mod:`ncmle_prob.infer.inverse`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    CLIError,
    HelpFormatter,
    check_output_file,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    say,
)

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["add_parser", "load_images", "make_mask", "parse_digits_spec", "run"]

DIGITS_PREFIX = "digits:"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Registers ``ncmle restore`` on a sub-parser action."""
    p = sub.add_parser(
        "restore", help="denoise or inpaint images with a trained model as the prior",
        description="Posterior sampling (MALA over the Pyro model x ~ p(x | sigma_p), "
                    "y ~ N(Ax, tau^2)) with a trained checkpoint as the prior; writes a PNG "
                    "with one labelled row each for the clean image (with --corrupt), the "
                    "observation and the restored image.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--task", choices=("denoise", "inpaint"), required=True,
                   help="denoise: y = x + noise; inpaint: some pixels are hidden")
    p.add_argument("--checkpoint", required=True, help="checkpoint file of a trained model")
    p.add_argument("--input", required=True,
                   help="images: a .pt or .npy tensor (N, D) or (N, C, H, W) in [-1, 1], a .png "
                        "(grey, scaled to [-1, 1]), or digits:I,J,... (digits test images, "
                        "0 <= I < 359)")
    p.add_argument("--corrupt", action="store_true",
                   help="the input is clean: add the noise / apply the mask first")
    p.add_argument("--noise-std", type=positive_float, default=0.3,
                   help="observation noise (denoise: must exceed --prior-sigma) or noise on "
                        "observed pixels (inpaint)")
    p.add_argument("--mask", default="center",
                   help="inpaint: observed pixels; 'center', 'left', 'top' hide that region, "
                        "'random:P' hides a fraction P")
    p.add_argument("--prior-sigma", type=nonnegative_float, default=0.1,
                   help="noise level the prior is bound to (a density also for grid data)")
    p.add_argument("--kernel", default="mala", choices=("mala", "annealed_langevin", "nuts"),
                   help="MCMC kernel of the posterior sampling")
    p.add_argument("--num-samples", type=positive_int, default=200,
                   help="posterior draws per image")
    p.add_argument("--warmup", type=nonnegative_int, default=300, help="warm-up steps per image")
    p.add_argument("--out", default="restore.png", help="PNG path")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="seed of the corruption and the sampler")
    p.set_defaults(run=run)
    return p


def parse_digits_spec(spec: str, size: int) -> list[int]:
    """The indices of ``digits:I,J,...``, each in ``[0, size)``.

    Example:
        >>> from ncmle_prob.cli.restore import parse_digits_spec
        >>> parse_digits_spec("digits:0,5", 359)
        [0, 5]
        >>> parse_digits_spec("digits:-1", 359)
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: --input digits:-1: index -1 is out of range; ...
    """
    body = spec[len(DIGITS_PREFIX):]
    try:
        idx = [int(i) for i in body.split(",")]
    except ValueError:
        raise CLIError(f"--input {spec}: digits:I,J,... needs integer indices") from None
    bad = [i for i in idx if not 0 <= i < size]
    if bad:
        raise CLIError(
            f"--input {spec}: index {bad[0]} is out of range; the digits test set has {size} "
            f"images (0 to {size - 1})"
        )
    return idx


def _image_values(x: Tensor) -> int:
    """Values per image of an ``(N, D)``, ``(N, C, H, W)`` or single ``(H, W)`` tensor."""
    if x.dim() == 2:
        return int(x.shape[1])
    if x.dim() == 4:
        return int(math.prod(x.shape[1:]))
    return -1


def load_images(spec: str, features: int) -> Tensor:
    """Images ``(N, features)`` from a file or ``digits:I,J``; see ``ncmle restore --help``.

    Raises:
        CLIError: a missing or unreadable file, an index out of range, or images that do not
            have ``features`` values each (the model's event size).
    """
    import torch

    if spec.startswith(DIGITS_PREFIX):
        from ..data.digits import load_digits

        test = load_digits().flatten().test
        idx = parse_digits_spec(spec, test.shape[0])
        if test.shape[1] != features:
            raise CLIError(
                f"--input {spec}: digits images have {test.shape[1]} pixels, but the checkpoint "
                f"models {features} values"
            )
        return test[idx]
    path = Path(spec)
    if not path.is_file():
        raise CLIError(f"--input {spec}: no such file")
    if path.suffix == ".pt":
        try:
            x = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CLIError(f"--input {spec}: not a readable tensor file") from e
    elif path.suffix == ".npy":
        import numpy as np

        try:
            x = torch.as_tensor(np.load(path, allow_pickle=False))
        except ValueError as e:
            raise CLIError(f"--input {spec}: not a readable .npy array") from e
    elif path.suffix == ".png":
        from matplotlib.image import imread

        img = torch.as_tensor(imread(str(path)), dtype=torch.float32)
        if img.dim() == 3:
            img = img[..., :3].mean(-1)
        x = (img[None] * 2 - 1).reshape(1, -1)
    else:
        raise CLIError(f"--input {spec}: expected .pt, .npy, .png or digits:I,J")
    if not isinstance(x, torch.Tensor):
        raise CLIError(f"--input {spec} does not hold a tensor")
    per_image = _image_values(x)
    if per_image != features:
        raise CLIError(
            f"--input {spec} has shape {tuple(x.shape)}; the checkpoint models images of "
            f"{features} values: expected (N, {features}) or (N, C, H, W) with C*H*W = {features}"
        )
    x = x.float().reshape(-1, features)
    if not torch.isfinite(x).all():
        raise CLIError(f"--input {spec} contains NaN or inf")
    return x


def make_mask(spec: str, shape: tuple[int, int], generator: torch.Generator) -> Tensor:
    """Boolean ``(H*W,)`` mask of *observed* pixels from ``center``, ``left``, ``top`` or
    ``random:P`` (fraction P hidden)."""
    import torch

    h, w = shape
    m = torch.ones(h, w, dtype=torch.bool)
    if spec == "center":
        m[h // 4 : h - h // 4, w // 4 : w - w // 4] = False
    elif spec == "left":
        m[:, : w // 2] = False
    elif spec == "top":
        m[: h // 2] = False
    elif spec.startswith("random:"):
        try:
            frac = float(spec.split(":", 1)[1])
        except ValueError:
            raise CLIError(f"--mask {spec}: random:P needs a number P") from None
        if not 0 < frac < 1:
            raise CLIError(f"--mask random:P needs 0 < P < 1, got {frac}")
        m = (torch.rand(h, w, generator=generator) >= frac)
    else:
        raise CLIError(f"--mask must be center, left, top or random:P, got {spec!r}")
    return m.reshape(-1)


def _check_args(args: argparse.Namespace) -> None:
    """Argument-level checks, before anything is imported or loaded."""
    if args.task == "denoise" and not args.noise_std > args.prior_sigma:
        raise CLIError(
            f"--noise-std ({args.noise_std:g}) must exceed --prior-sigma ({args.prior_sigma:g}) "
            "for denoising: the prior already accounts for noise of std --prior-sigma"
        )
    if args.task == "inpaint" and args.prior_sigma == 0:
        raise CLIError("--prior-sigma must be > 0 for MCMC (at 0 the prior of grid data is "
                       "discrete)")
    if args.task == "inpaint":
        import torch

        make_mask(args.mask, (4, 4), torch.Generator())


def run(args: argparse.Namespace) -> int:
    """Runs ``ncmle restore``; returns the exit status."""
    _check_args(args)
    out_path = check_output_file("--out", args.out)
    import pyro
    import torch

    from ..infer.inverse import denoise, inpaint, psnr
    from ..training import load_checkpoint, load_model
    from .plots import image_grid

    device = torch.device(args.device)
    meta = load_checkpoint(args.checkpoint).meta
    model = load_model(args.checkpoint, device=device)
    features = int(math.prod(model.event_shape))
    if args.input.startswith(DIGITS_PREFIX) and meta.get("dataset") not in (None, "digits"):
        raise CLIError(f"--input {args.input}: {args.checkpoint} was trained on "
                       f"{meta['dataset']}, not digits")
    image_shape = meta.get("image_shape")
    side = math.isqrt(features)
    if image_shape and len(image_shape) == 3 and image_shape[0] == 1:
        shape = (int(image_shape[1]), int(image_shape[2]))
    else:
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
    restored = out.mean.detach()
    observed = "noisy" if args.task == "denoise" else "masked"
    rows = [(r, lab) for r, lab in ((clean, "clean"), (y, observed), (restored, "restored"))
            if r is not None]
    title = f"{args.task} (posterior mean of {args.num_samples} {args.kernel} draws)"
    if clean is not None:
        before = float(psnr(y, clean).mean())
        after = float(psnr(restored, clean).mean())
        title += f"\nPSNR {before:.1f} dB -> {after:.1f} dB"
        say(f"PSNR observed {before:.2f} dB, restored {after:.2f} dB")
    tiles = torch.cat([r for r, _ in rows]).reshape(-1, 1, *shape)
    path = image_grid(tiles, out_path, title=title, cols=x.shape[0],
                      row_labels=[lab for _, lab in rows])
    say(f"wrote {path}")
    return 0
