"""``ncmle restore``: denoise, inpaint or deblur images with a trained checkpoint (MADE or
PixelCNN++) as the prior, and write a before/after PNG; one MALA chain per image, all images
batched in one tensor.

Every argument, the checkpoint, the input images and the output path are checked before the
posterior sampling starts; the sampling itself is :mod:`ncmle_prob.infer.inverse`.
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

from .common import (
    CLIError,
    HelpFormatter,
    add_run_args,
    check_figure_file,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    resolve_checkpoint,
    say,
    show_progress,
)

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["HELP_KERNELS", "add_parser", "blur_matrix", "check_kernel", "load_images", "make_mask",
           "parse_digits_spec", "run"]

DIGITS_PREFIX = "digits:"
TEST_PREFIX = "test:"


#: The built-in restore kernels named in ``--help`` (the parser imports no torch, so it cannot
#: read :data:`~ncmle_prob.infer.RESTORE_KERNELS`; a test keeps the two equal).
HELP_KERNELS = ("batched_mala", "mcmc_mala", "mcmc_annealed_langevin", "mcmc_nuts")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Registers ``ncmle restore`` on a sub-parser action."""
    p = sub.add_parser(
        "restore", help="denoise, inpaint or deblur images with a trained model as the prior",
        description="Posterior sampling (MALA over the Pyro model x ~ p(x | sigma_p), "
                    "y ~ N(Ax, tau^2)) with a trained checkpoint as the prior; writes a PNG "
                    "with one labelled row each for the clean image (with --corrupt), the "
                    "observation and the restored image.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--task", choices=("denoise", "inpaint", "deblur"), required=True,
                   help="denoise: y = x + noise; inpaint: some pixels are hidden; deblur: "
                        "y = box blur of x + noise")
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint file of a trained model, or pretrained:NAME (a shipped "
                        "model of images, see 'ncmle pretrained')")
    p.add_argument("--input", required=True,
                   help="images: a .pt or .npy tensor (N, D) or (N, C, H, W) in [-1, 1], a "
                        ".png/.jpg image of the checkpoint's size and channels, test:I,J,... "
                        "(test images of the checkpoint's data set) or digits:I,J,... (digits "
                        "test images, 0 <= I < 359)")
    p.add_argument("--data", default=None, metavar="SPEC",
                   help="test:I,J: read the test images from this copy of the checkpoint's data "
                        "(default: the data spec the checkpoint stores, folders by absolute "
                        "path)")
    p.add_argument("--corrupt", action="store_true",
                   help="the input is clean: add the noise / apply the mask first")
    p.add_argument("--noise-std", type=positive_float, default=0.3,
                   help="observation noise (denoise: must exceed --prior-sigma) or noise on "
                        "observed pixels (inpaint)")
    p.add_argument("--mask", default="center",
                   help="inpaint: observed pixels; 'center', 'left', 'top' hide that region, "
                        "'random:P' hides a fraction P")
    p.add_argument("--blur-size", type=positive_int, default=3, metavar="K",
                   help="deblur: side of the K x K box blur (odd)")
    p.add_argument("--prior-sigma", type=nonnegative_float, default=0.1,
                   help="noise level the prior is bound to (a density also for grid data)")
    p.add_argument("--kernel", default="batched_mala", metavar="NAME",
                   help="posterior sampler, a restore kernel of ncmle_prob.infer: "
                        f"{HELP_KERNELS[0]} (all images' MALA chains in one batch), or one Pyro "
                        f"MCMC per image: {', '.join(HELP_KERNELS[1:])} (the names of before "
                        "0.2, mala, annealed_langevin and nuts, still work, deprecated)")
    p.add_argument("--num-samples", type=positive_int, default=200,
                   help="posterior draws per image")
    p.add_argument("--warmup", type=nonnegative_int, default=300, help="warm-up steps per image")
    p.add_argument("--out", default="restore.png",
                   help="figure path: .png, .jpg/.jpeg, .pdf or .svg (checked before any work)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the corruption and the sampler")
    add_run_args(p, "images")
    p.set_defaults(run=run)
    return p


def parse_digits_spec(spec: str, size: int, *, prefix: str = "digits:",
                      what: str = "digits test set") -> list[int]:
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
    body = spec[len(prefix):]
    try:
        idx = [int(i) for i in body.split(",")]
    except ValueError:
        raise CLIError(f"--input {spec}: {prefix}I,J,... needs integer indices") from None
    bad = [i for i in idx if not 0 <= i < size]
    if bad:
        raise CLIError(
            f"--input {spec}: index {bad[0]} is out of range; the {what} has {size} "
            f"images (0 to {size - 1})"
        )
    return idx


def _test_images(spec: str, meta: dict[str, Any], features: int) -> Tensor:
    """``test:I,J,...``: images of the checkpoint's own test split."""
    import torch

    from .images import checkpoint_data_error, load_image_data, spec_from_meta

    kw = spec_from_meta(meta)
    override = meta.get("data_override")
    if override is not None:
        kw["spec"] = override
    if kw["spec"] is None:
        raise CLIError(f"--input {spec}: the checkpoint does not say which data it was trained "
                       "on; pass --data SPEC or a file")
    name = kw.pop("spec")
    try:
        data = load_image_data(name, flatten=True, train=False, **kw)
    except CLIError as e:
        if override is None:
            raise checkpoint_data_error(e, name, "the checkpoint") from e
        raise
    idx = parse_digits_spec(spec, len(data.test), prefix=TEST_PREFIX,
                            what=f"{data.spec} test set")
    x = data.test[idx]
    if x.shape[1] != features:
        raise CLIError(f"--input {spec}: {data.spec} images have {x.shape[1]} values, but the "
                       f"checkpoint models {features}")
    return torch.as_tensor(x)


def load_images(spec: str, features: int, *, image_shape: tuple[int, ...] | None = None,
                meta: dict[str, Any] | None = None) -> Tensor:
    """Images ``(N, features)`` from a file, ``test:I,J`` or ``digits:I,J``; see
    ``ncmle restore --help``.

    Raises:
        CLIError: a missing or unreadable file, an index out of range, or images that do not
            have ``features`` values each (the model's event size), or a picture of another
            size or colour than ``image_shape``.
    """

    if spec.startswith(TEST_PREFIX):
        return _test_images(spec, meta or {}, features)
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
    from ..data import DataFileError, read_images

    try:
        return read_images(spec, features, image_shape)  # type: ignore[arg-type]
    except FileNotFoundError as e:
        from ..data import catalogue

        head = spec.partition(":")[0]
        hint = (f"; test images of the checkpoint's data are {TEST_PREFIX}I,J,... (not "
                f"{head}:I,J,...)" if ":" in spec and head in catalogue.names() else "")
        raise CLIError(f"--input {e}{hint}") from e
    except DataFileError as e:
        raise CLIError(f"--input {e}") from e


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
    if args.task in ("inpaint", "deblur") and args.prior_sigma == 0:
        raise CLIError("--prior-sigma must be > 0 for MCMC (at 0 the prior of grid data is "
                       "discrete)")
    if args.task == "deblur" and args.blur_size % 2 == 0:
        raise CLIError(f"--blur-size must be odd, got {args.blur_size}")
    if args.task == "inpaint":
        import torch

        make_mask(args.mask, (4, 4), torch.Generator())
    check_kernel(args.kernel)


def check_kernel(name: str) -> None:
    """``--kernel`` must name a restore kernel of :data:`~ncmle_prob.infer.RESTORE_KERNELS` (an
    old name warns), checked before any model or image is loaded.

    Example:
        >>> from ncmle_prob.cli.restore import check_kernel
        >>> check_kernel("mala_fast")
        Traceback (most recent call last):
        ...
        ncmle_prob.cli.common.CLIError: --kernel: unknown restore kernel 'mala_fast'; ...
    """
    from .._deprecated import restore_kernel
    from ..infer import RESTORE_KERNELS

    if restore_kernel(name) not in RESTORE_KERNELS:
        raise CLIError(f"--kernel: unknown restore kernel {name!r}; choose from "
                       f"{', '.join(RESTORE_KERNELS.names())}")


def blur_matrix(image_shape: tuple[int, int, int], size: int) -> Tensor:
    """The ``(D, D)`` matrix of a ``size x size`` box blur of each channel (zero padding).

    Example:
        >>> from ncmle_prob.cli.restore import blur_matrix
        >>> A = blur_matrix((2, 4, 4), 3)
        >>> A.shape, float(A[5].sum()), float(A[5, 16:].abs().sum())  # channels stay apart
        (torch.Size([32, 32]), 1.0, 0.0)
    """
    import torch

    from ..infer.inverse import blur_operator

    c, h, w = image_shape
    one = blur_operator((h, w), torch.full((size, size), 1.0 / size**2))
    return torch.block_diag(*([one] * c))


def _image_shape(meta: dict[str, Any], event: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` of the checkpoint's images (square grey for old MADE checkpoints)."""
    if len(event) == 3:
        return (int(event[0]), int(event[1]), int(event[2]))
    shape = meta.get("image_shape")
    if shape and len(shape) == 3:
        return (int(shape[0]), int(shape[1]), int(shape[2]))
    features = int(math.prod(event))
    side = math.isqrt(features)
    return (1, side, side) if side * side == features else (1, 1, features)


def run(args: argparse.Namespace) -> int:
    """Runs ``ncmle restore``; returns the exit status."""
    args.checkpoint = resolve_checkpoint(args.checkpoint, "restore")
    _check_args(args)
    out_path = check_figure_file("--out", args.out)
    import pyro
    import torch

    from ..infer.inverse import deblur, inpaint, psnr
    from ..infer.inverse import remove_noise as denoise
    from ..training import load_checkpoint, load_model, resolve_device
    from .plots import image_grid

    device = resolve_device(args.device)
    meta = load_checkpoint(args.checkpoint).meta
    if args.data is not None:
        meta = {**meta, "data_override": args.data}
    model = load_model(args.checkpoint, device=device)
    event = tuple(int(s) for s in model.event_shape)
    features = int(math.prod(event))
    if args.input.startswith(DIGITS_PREFIX) and meta.get("dataset") not in (None, "digits"):
        raise CLIError(f"--input {args.input}: {args.checkpoint} was trained on "
                       f"{meta['dataset']}, not digits")
    c, h, w = _image_shape(meta, event)
    x = load_images(args.input, features, image_shape=(c, h, w), meta=meta).to(device)
    g = torch.Generator().manual_seed(args.seed)
    pyro.set_rng_seed(args.seed)
    prior = model(args.prior_sigma)
    opts: dict[str, Any] = {"kernel": args.kernel, "num_samples": args.num_samples,
                            "warmup_steps": args.warmup, "batch_size": args.batch_size,
                            "progress": show_progress(args.quiet)}
    from .._deprecated import restore_kernel
    from ..infer import RESTORE_KERNELS

    if RESTORE_KERNELS.get(restore_kernel(args.kernel)).batched:
        opts["seed"] = args.seed
    mask = None
    if args.task == "inpaint":
        mask = make_mask(args.mask, (h, w), g).reshape(1, h, w).expand(c, h, w)
        mask = mask.reshape(event).to(device)
    blur = blur_matrix((c, h, w), args.blur_size).to(x) if args.task == "deblur" else None
    if args.corrupt:
        clean = x
        noise = args.noise_std * torch.randn(x.shape, generator=g).to(device)
        if args.task == "denoise":
            y = x + noise
        elif args.task == "deblur":
            y = x @ blur.T + noise  # type: ignore[union-attr]
        else:
            y = torch.where(mask.reshape(-1), x, torch.zeros_like(x))  # type: ignore[union-attr]
    else:
        clean, y = None, x
    if args.task == "denoise":
        out = denoise(prior, y, args.noise_std, **opts)
    elif args.task == "deblur":
        out = deblur(prior, y, blur, args.noise_std, **opts)  # type: ignore[arg-type]
    else:
        out = inpaint(prior, y, mask, args.noise_std, **opts)  # type: ignore[arg-type]
    restored = out.mean.detach().reshape(x.shape)
    observed = {"denoise": "noisy", "inpaint": "masked", "deblur": "blurred"}[args.task]
    rows = [(r, lab) for r, lab in ((clean, "clean"), (y, observed), (restored, "restored"))
            if r is not None]
    title = f"{args.task} (posterior mean of {args.num_samples} {args.kernel} draws)"
    if clean is not None:
        before = psnr(clean, y)
        after = psnr(clean, restored)
        title += f"\nPSNR {float(before.mean()):.1f} dB -> {float(after.mean()):.1f} dB"
        say(f"PSNR observed {float(before.mean()):.2f} dB, restored {float(after.mean()):.2f} dB "
            f"(mean of {x.shape[0]} images; per image: "
            + ", ".join(f"{float(a):.1f}" for a in after) + ")")
    tiles = torch.cat([r for r, _ in rows]).reshape(-1, c, h, w)
    path = image_grid(tiles, out_path, title=title, cols=x.shape[0],
                      row_labels=[lab for _, lab in rows])
    say(f"wrote {path}")
    return 0
