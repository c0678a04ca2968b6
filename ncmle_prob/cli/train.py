"""``ncmle train``: train a MADE by NCMLE (or MLE) on a named data set."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    DATASETS,
    CLIError,
    HelpFormatter,
    RunData,
    check_data_args,
    check_output_dir,
    decay,
    load_run_data,
    parse_floats,
    positive_float,
    positive_int,
    probability,
    say,
)

if TYPE_CHECKING:
    from ..models import MADE
    from ..objectives import NoiseLevelPrior

__all__ = ["add_model_args", "add_parser", "build_made", "build_prior", "check_prior_args", "run"]

CHECKPOINT = "last.pt"


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Model and prior options shared by ``train`` and ``demo``."""
    g = p.add_argument_group("model (MADE)")
    g.add_argument("--family", default=None,
                   choices=("gaussian", "gaussian_mixture", "logistic_mixture",
                            "discretized_logistic_mixture"),
                   help="conditional family (default: discretized_logistic_mixture for image "
                        "data, logistic_mixture for 2-D toys)")
    g.add_argument("--components", type=positive_int, default=None,
                   help="mixture components (default: 3 for images, 8 for toys)")
    g.add_argument("--hidden", type=positive_int, default=256, help="hidden width")
    g.add_argument("--blocks", type=positive_int, default=2, help="residual masked blocks")
    g = p.add_argument_group("noise-level prior")
    g.add_argument("--p-zero", type=probability, default=0.2, help="probability of σ = 0")
    g.add_argument("--sigma-min", type=positive_float, default=0.01, help="smallest σ > 0")
    g.add_argument("--sigma-max", type=positive_float, default=0.5, help="largest σ")


def check_prior_args(args: argparse.Namespace) -> None:
    """``--sigma-min`` must be below ``--sigma-max`` (checked before any work)."""
    if args.sigma_min >= args.sigma_max:
        raise CLIError(
            f"--sigma-min ({args.sigma_min:g}) must be smaller than --sigma-max "
            f"({args.sigma_max:g})"
        )


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``ncmle train``."""
    p = sub.add_parser(
        "train", help="train a model by NCMLE or MLE",
        description="Train a noise-conditional MADE; writes OUT/last.pt (atomic, resumable; an "
                    "existing OUT/last.pt is replaced unless --resume). Launch with torchrun "
                    "--nproc_per_node=K for data-parallel training.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--data", default="digits", metavar="NAME",
                   help="data set: " + ", ".join(DATASETS))
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder of the IDX files (mnist and fashion_mnist only)")
    p.add_argument("--bins", type=positive_int, default=None,
                   help="re-quantise images to this many levels")
    p.add_argument("--objective", choices=("ncmle", "mle"), default="ncmle",
                   help="NCMLE (noise prior below) or plain MLE (σ = 0 only)")
    add_model_args(p)
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=positive_int, default=2000,
                   help="total optimizer steps (with --resume: counted from step 0, not added)")
    g.add_argument("--batch-size", type=positive_int, default=64, help="global batch size")
    g.add_argument("--lr", type=positive_float, default=2e-3, help="Adam learning rate")
    g.add_argument("--grad-clip", type=positive_float, default=None,
                   help="clip the gradient norm (default: no clipping)")
    g.add_argument("--ema", type=decay, default=None,
                   help="EMA decay of the weights (default: no EMA)")
    g.add_argument("--amp", choices=("bf16", "fp16"), default=None,
                   help="autocast (CUDA only; default: off)")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    g.add_argument("--seed", type=int, default=0, help="seed of init, data order and noise")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="ncmle-runs/model", metavar="DIR",
                   help="output folder (OUT/last.pt)")
    g.add_argument("--checkpoint-every", type=positive_int, default=500,
                   help="steps between checkpoints")
    resume = g.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.pt; an error if there is none")
    resume.add_argument("--resume-or-start", action="store_true",
                        help="continue from OUT/last.pt if it exists, else start fresh (and say "
                             "so)")
    g.add_argument("--eval-sigmas", default="0,0.05,0.2", help="σ list evaluated at the end")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def build_prior(args: argparse.Namespace, objective: str) -> NoiseLevelPrior:
    """The NoiseLevelPrior of the arguments (``mle``: point mass at 0)."""
    from ..objectives import NoiseLevelPrior

    if objective == "mle":
        return NoiseLevelPrior.mle()
    return NoiseLevelPrior(p_zero=args.p_zero, sigma_min=args.sigma_min, sigma_max=args.sigma_max)


def build_made(args: argparse.Namespace, data: RunData) -> MADE:
    """A MADE sized for ``data`` from the model arguments."""
    from ..models import MADE

    image = data.image_shape is not None
    family = args.family or ("discretized_logistic_mixture" if image else "logistic_mixture")
    components = args.components or (3 if image else 8)
    bins = data.bins if family == "discretized_logistic_mixture" else None
    if family == "discretized_logistic_mixture" and bins is None:
        raise CLIError(
            f"--family discretized_logistic_mixture needs grid (image) data, not --data {data.name}"
        )
    return MADE(
        features=data.train.shape[1], hidden_features=args.hidden, num_blocks=args.blocks,
        family=family, components=components, bins=bins,
    )


def _start_step(args: argparse.Namespace, out: Path) -> int | None:
    """The step to resume from (``None``: start fresh), checked before any work."""
    ckpt = out / CHECKPOINT
    if not (args.resume or args.resume_or_start):
        return None
    if not ckpt.is_file():
        if args.resume:
            raise CLIError(
                f"--resume: no checkpoint {ckpt} to continue from; use --resume-or-start to "
                "start fresh when there is none"
            )
        say(f"--resume-or-start: no {ckpt} yet, starting from step 0")
        return None
    from ..training import load_checkpoint

    return load_checkpoint(ckpt).step


def run(args: argparse.Namespace) -> int:
    """Runs ``ncmle train``."""
    sigmas = parse_floats(args.eval_sigmas, "eval-sigmas")
    check_data_args(args.data, args.data_dir)
    check_prior_args(args)
    out = check_output_dir("--out", args.out, CHECKPOINT)
    start = _start_step(args, out)
    if start is not None and start >= args.steps:
        say(f"checkpoint {out / CHECKPOINT} is already at step {start} >= --steps {args.steps}: "
            "nothing to train (raise --steps to continue)")
        return 0
    data = load_run_data(args.data, args.data_dir, args.bins)
    import torch

    from ..training import fit

    torch.manual_seed(args.seed)
    model = build_made(args, data)
    meta = {"dataset": args.data, "data_dir": args.data_dir, "objective": args.objective,
            "image_shape": list(data.image_shape) if data.image_shape else None}
    history = fit(
        model, data.train, prior=build_prior(args, args.objective), steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, grad_clip=args.grad_clip, ema=args.ema,
        amp=args.amp, device=args.device, eval_data=data.test, eval_sigmas=sigmas,
        bins=data.bins, checkpoint_dir=out, checkpoint_every=args.checkpoint_every,
        resume=start is not None, seed=args.seed, progress=not args.quiet, meta=meta,
    )
    res = history.last_eval
    done = (f"steps {start} -> {args.steps} (resumed)" if start is not None
            else f"{args.steps} steps")
    say(f"trained {args.objective.upper()} on {args.data} for {done}; test bits/dim: "
        + ", ".join(f"σ={s:g}: {v:.4f}" for s, v in res.items()))
    say(f"checkpoint: {out / CHECKPOINT}")
    return 0
