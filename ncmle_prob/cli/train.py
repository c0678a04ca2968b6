"""``ncmle train``: train a MADE or a PixelCNN++ by NCMLE (or MLE) on a data set or a data spec."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._registry import NamedRegistry
from ..data import catalogue as _catalogue
from ..models import catalogue as _models
from .common import (
    CLIError,
    HelpFormatter,
    RunData,
    _idx_names,
    check_data_args,
    check_output_dir,
    decay,
    nonnegative_float,
    nonnegative_int,
    parse_floats,
    positive_float,
    positive_int,
    probability,
    say,
)
from .images import add_image_data_args, check_data_spec, check_event_shape
from .report import half_bin_note
from .runs import (
    RunLock,
    check_fresh_run,
    check_resume_model,
    check_resume_options,
    clean_stale_temporaries,
)
from .train_data import TrainData, legacy_made_data, load_train_data

if TYPE_CHECKING:
    from ..models import MADE, PixelCNNPP
    from ..objectives import NoiseLevelPrior
    from .images import ImageRun

__all__ = ["MODEL_BUILDERS", "add_model_args", "add_parser", "build_made", "build_pixelcnnpp",
           "build_prior", "check_prior_args", "run"]

CHECKPOINT = "last.pt"

#: How ``ncmle train`` builds each network of the model catalogue from its arguments
#: (``builder(args, data)``; ``data`` is a :class:`RunData` of flat vectors for a ``"vector"``
#: network, an :class:`~ncmle_prob.cli.images.ImageRun` for an ``"image"`` one). A test keeps
#: its names equal to :func:`ncmle_prob.models.catalogue.names`.
MODEL_BUILDERS = NamedRegistry("model builder")


def add_model_args(p: argparse.ArgumentParser, title: str = "model (MADE)") -> None:
    """Model and prior options shared by ``train`` and ``demo``."""
    g = p.add_argument_group(title)
    g.add_argument("--family", default=None,
                   choices=("gaussian", "gaussian_mixture", "logistic_mixture",
                            "discretized_logistic_mixture"),
                   help="conditional family (default: discretized_logistic_mixture for image "
                        "data, logistic_mixture for 2-D toys)")
    g.add_argument("--components", type=positive_int, default=None,
                   help="mixture components (default: MADE 3 for images, 8 for toys; "
                        "PixelCNN++ 5)")
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
        description="Train a noise-conditional MADE or PixelCNN++; writes OUT/last.pt (atomic, "
                    "resumable), and with --sample-every OUT/samples_stepN.png. A folder that "
                    "already holds last.pt needs --resume (continue it, with the same "
                    "optimiser and noise options) or --overwrite (replace it); a training "
                    "locks its folder (OUT/.ncmle.lock) while it runs. Ctrl-C stops after the "
                    "current step and writes OUT/last.pt (continue with --resume). Launch with "
                    "torchrun --nproc_per_node=K for data-parallel training.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", choices=_models.names(), default=_models.names()[0],
                   help="network: " + "; ".join(f"{r.name}: {r.description}"
                                                for r in _models.CATALOGUE))
    p.add_argument("--data", default="digits", metavar="SPEC",
                   help="data set: " + ", ".join(_catalogue.names()) + ", folder:PATH (PNG/JPEG "
                        "images) or npy:PATH (.npy/.npz array)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder of the IDX files (" + _idx_names() + " only)")
    p.add_argument("--bins", type=positive_int, default=None,
                   help="grid levels of data and model (default: the data's own; fewer "
                        "re-quantise, more than the data have is an error)")
    add_image_data_args(p.add_argument_group("folder images"))
    p.add_argument("--objective", choices=("ncmle", "mle"), default="ncmle",
                   help="NCMLE (noise prior below) or plain MLE (σ = 0 only)")
    add_model_args(p, "model (MADE; --family and --components also PixelCNN++)")
    g = p.add_argument_group("model (PixelCNN++)")
    g.add_argument("--filters", type=positive_int, default=64, help="feature maps per block")
    g.add_argument("--resnets", type=positive_int, default=2,
                   help="gated resnet blocks per stage")
    g.add_argument("--dropout", type=dropout, default=0.0, help="dropout in the gated blocks")
    g.add_argument("--max-downsample", type=nonnegative_int, default=2,
                   help="at most this many 2x down-samplings")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=positive_int, default=2000,
                   help="total optimizer steps (with --resume: counted from step 0, not added)")
    g.add_argument("--batch-size", type=positive_int, default=64,
                   help="global batch size (at most the number of training examples: a "
                        "larger one is lowered to it, with a note)")
    g.add_argument("--lr", type=positive_float, default=2e-3, help="Adam learning rate")
    g.add_argument("--grad-clip", type=positive_float, default=None,
                   help="clip the gradient norm (default: no clipping)")
    g.add_argument("--ema", type=decay, default=None,
                   help="EMA decay of the weights (default: no EMA)")
    g.add_argument("--amp", choices=("bf16", "fp16"), default=None,
                   help="autocast (CUDA only; default: off)")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the loss (a one-line error where it does not work)")
    g.add_argument("--num-workers", type=nonnegative_int, default=0,
                   help="DataLoader workers reading the data (0: in the main process)")
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
    resume.add_argument("--overwrite", action="store_true",
                        help="replace the run in OUT (its last.pt) by a fresh one")
    g.add_argument("--eval-sigmas", default="0,0.05,0.2",
                   help="σ list of the validation and test bits/dim")
    g.add_argument("--eval-every", type=positive_int, default=None, metavar="N",
                   help="validation bits/dim every N steps, for model selection (default: "
                        "never)")
    g.add_argument("--validation-size", type=nonnegative_int, default=None, metavar="N",
                   help="validation examples: the last N of the train split, held out of "
                        "training (default: with --eval-every a tenth of it, at most 1000; "
                        "else none)")
    g.add_argument("--patience", type=positive_int, default=None, metavar="P",
                   help="early stopping: stop once P validation evaluations in a row have not "
                        "improved the validation bits/dim at the first --eval-sigmas; the model "
                        "ends with the best evaluated weights (also OUT/best.pt). Needs "
                        "--eval-every (default: off)")
    g.add_argument("--min-delta", type=nonnegative_float, default=None, metavar="D",
                   help="with --patience: a decrease of the validation bits/dim by more than D "
                        "counts as an improvement (default: 0)")
    g.add_argument("--test-size", "--eval-size", type=positive_int, default=1000, metavar="N",
                   dest="test_size",
                   help="test examples reported at the end: the first N of the test split "
                        "(--eval-size is a deprecated alias)")
    g.add_argument("--sample-every", type=positive_int, default=None, metavar="N",
                   help="image data: write OUT/samples_stepN.png every N steps (default: never)")
    g.add_argument("--sample-num", type=positive_int, default=16,
                   help="samples per grid of --sample-every")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def dropout(text: str) -> float:
    """argparse type: a dropout probability in ``[0, 1)``."""
    value = probability(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def build_prior(args: argparse.Namespace, objective: str) -> NoiseLevelPrior:
    """The NoiseLevelPrior of the arguments (``mle``: point mass at 0)."""
    from ..objectives import NoiseLevelPrior

    if objective == "mle":
        return NoiseLevelPrior.mle()
    return NoiseLevelPrior(p_zero=args.p_zero, sigma_min=args.sigma_min, sigma_max=args.sigma_max)


@MODEL_BUILDERS.register("made")
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


@MODEL_BUILDERS.register("pixelcnnpp")
def build_pixelcnnpp(args: argparse.Namespace, data: ImageRun) -> PixelCNNPP:
    """A PixelCNN++ for the images of ``data`` from the model arguments."""
    from ..models import PixelCNNPP

    if len(data.event_shape) != 3:
        raise CLIError(f"--model pixelcnnpp needs images (C, H, W), but --data {data.spec} has "
                       f"examples of shape {data.event_shape}")
    family = args.family or "discretized_logistic_mixture"
    if family == "discretized_logistic_mixture" and data.bins is None:
        raise CLIError(f"--family discretized_logistic_mixture needs grid data; --data "
                       f"{data.spec} is continuous (pass --bins or another --family)")
    return PixelCNNPP(
        data.event_shape, filters=args.filters, resnets=args.resnets, family=family,  # type: ignore[arg-type]
        components=args.components or 5, bins=data.bins, max_downsample=args.max_downsample,
        dropout=args.dropout,
    )


def _now_options(args: argparse.Namespace, data_size: int | None) -> dict[str, Any]:
    """This command's values of the ``train_config`` keys a resume must keep."""
    import dataclasses

    batch = args.batch_size if data_size is None else min(args.batch_size, data_size)
    now = {"lr": args.lr, "batch_size": batch, "grad_clip": args.grad_clip, "ema": args.ema,
           "amp": args.amp, "seed": args.seed, "patience": args.patience,
           "min_delta": args.min_delta or 0.0,
           "prior": dataclasses.asdict(build_prior(args, args.objective))}
    if args.patience is not None:  # what early stopping watches, and how often
        now.update(eval_every=args.eval_every,
                   monitor=parse_floats(args.eval_sigmas, "eval-sigmas")[0])
    return now


def _start_step(args: argparse.Namespace, out: Path) -> int | None:
    """The step to resume from (``None``: start fresh), checked before any work: the
    checkpoint must hold ``--model`` and have been trained with the same options."""
    ckpt = out / CHECKPOINT
    if not (args.resume or args.resume_or_start):
        check_fresh_run(out, CHECKPOINT, args)
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

    ck = load_checkpoint(ckpt)
    check_resume_model(ckpt, ck.model_class, ck.meta, args.model)
    before = dict(ck.train_config)
    if before.get("patience") is not None and args.patience is None:  # the run's own
        args.patience = before["patience"]
        args.min_delta = before.get("min_delta") if args.min_delta is None else args.min_delta
        args.eval_every = args.eval_every or before.get("eval_every")
    now = _now_options(args, before.get("data_size"))
    if before.get("patience") is None:
        before.pop("eval_every", None)
        before.pop("monitor", None)
    if "validation_size" in ck.meta:
        if args.validation_size is None:  # the run's own split, whatever --eval-every says
            args.validation_size = ck.meta["validation_size"]
            if args.eval_every and not args.validation_size:
                say(f"note: --eval-every: {ckpt} was started without a validation split, so "
                    "there is none to evaluate (a resume keeps the run's split)")
        before["validation_size"] = ck.meta["validation_size"]
        now["validation_size"] = args.validation_size
    check_resume_options(ckpt, before, now, ck.meta.get("objective"), args.objective)
    return ck.step


def _check_resume(args: argparse.Namespace, ckpt: Path, model: Any, bins: int | None) -> None:
    """The checkpoint to continue must be of this model and these data (one line if not)."""
    from ..training import load_checkpoint

    meta = load_checkpoint(ckpt).meta
    shape = meta.get("event_shape")
    if shape is not None and tuple(shape) != tuple(model.event_shape):
        from .images import ImageRun

        fake = ImageRun(args.data, None, None, bins, tuple(model.event_shape), {})  # type: ignore[arg-type]
        check_event_shape(str(ckpt), tuple(shape), fake)
    if meta.get("bins") is not None and bins is not None and meta["bins"] != bins:
        raise CLIError(f"--bins {bins} does not match {ckpt}: it was trained on {meta['bins']} "
                       "levels")


def _build_model(args: argparse.Namespace, data: TrainData) -> Any:
    import torch

    torch.manual_seed(args.seed)
    meta, run = data.meta, data.image_run
    build = MODEL_BUILDERS.get(args.model)
    if _models.lookup(args.model).input == "image":
        return build(args, run)
    if run is not None:
        return build(args, RunData(args.data, torch.zeros(1, *run.event_shape),
                                   torch.zeros(0), data.bins, tuple(meta["image_shape"])))
    return build(args, RunData(args.data, data.train, data.test, data.bins, meta["image_shape"]))


def _check_early_stopping_args(args: argparse.Namespace) -> None:
    """``--patience`` needs validation evaluations; ``--min-delta`` needs ``--patience``."""
    if args.patience is None:
        if args.min_delta is not None:
            raise CLIError("--min-delta is an option of early stopping: pass --patience too")
        return
    if not args.eval_every:
        raise CLIError(f"--patience {args.patience} needs validation evaluations: pass "
                       "--eval-every N (validation bits/dim every N steps)")
    if args.validation_size == 0:
        raise CLIError(f"--patience {args.patience} needs a validation split, but "
                       "--validation-size is 0")


def _bits(res: dict[float, float]) -> str:
    return ", ".join(f"σ={float(k):g}: {v:.4f}" for k, v in res.items())


def run(args: argparse.Namespace) -> int:
    """Runs ``ncmle train``."""
    sigmas = parse_floats(args.eval_sigmas, "eval-sigmas")
    if legacy_made_data(args):
        check_data_args(args.data, args.data_dir)
    else:
        check_data_spec(args.data, args.data_dir)
    check_prior_args(args)
    out = check_output_dir("--out", args.out, CHECKPOINT)
    start = _start_step(args, out)
    _check_early_stopping_args(args)
    if start is not None and start >= args.steps:
        say(f"checkpoint {out / CHECKPOINT} is already at step {start} >= --steps {args.steps}: "
            "nothing to train (raise --steps to continue)")
        return 0
    data = load_train_data(args)
    bins = data.bins
    model = _build_model(args, data)
    if start is not None:
        _check_resume(args, out / CHECKPOINT, model, bins)
    if args.patience is not None and data.validation is None:
        raise CLIError(f"--patience {args.patience}: --data {args.data} leaves no validation "
                       "examples (pass --validation-size N)")
    image_shape = data.meta.get("image_shape")
    if args.sample_every and not image_shape:
        raise CLIError(f"--sample-every writes image grids; --data {args.data} is not images")
    import torch

    from ..training import FitConfig, Trainer, evaluate_bits_per_dim
    from ..training.distributed import setup, teardown
    from .run_loop import InterruptedRun, SampleWriter, StopOnInterrupt, try_compile

    meta = {**data.meta, "objective": args.objective, "model": args.model}
    config = FitConfig(
        prior=build_prior(args, args.objective), steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, grad_clip=args.grad_clip, ema=args.ema, amp=args.amp, device=args.device,
        eval_sigmas=sigmas, eval_every=args.eval_every, patience=args.patience,
        min_delta=args.min_delta or 0.0, bins=bins, checkpoint_dir=out,
        checkpoint_every=args.checkpoint_every, resume=start is not None, seed=args.seed,
        progress=not args.quiet, num_workers=args.num_workers, meta=meta,
    )
    ctx = setup(config.device)
    lock = RunLock(out)
    stop = StopOnInterrupt()
    try:
        if ctx.is_main:
            lock.acquire()
            if start is None:
                check_fresh_run(out, CHECKPOINT, args)  # another run may have begun meanwhile
            clean_stale_temporaries(out, CHECKPOINT)
        trainer = Trainer(model, data.train, config, ctx, eval_data=data.validation)
        if args.compile:
            try_compile(trainer)
        samples = SampleWriter(trainer, out, args.sample_every or 0, args.sample_num,
                               args.seed, image_shape)

        def callback(step: int, info: dict[str, float]) -> None:
            evals = trainer.history.evals
            if args.quiet and evals and evals[-1]["step"] == step:  # no bar to print it on
                say(f"step {step}: validation bits/dim " + _bits(evals[-1]["bits_per_dim"]))
            samples(step)
            stop.check(trainer)

        trainer.callback = callback
        held_out = (f"{len(data.validation)} validation, " if data.validation is not None
                    else "")
        say(f"training {args.model} ({args.objective.upper()}) on {args.data}: "
            f"{sum(p.numel() for p in model.parameters())} weights, steps "
            f"{start or 0} -> {args.steps}, {len(data.train)} training, {held_out}"
            f"{len(data.test)} test examples, device {ctx.device}")
        with stop.installed():
            try:
                trainer.run()
            except InterruptedRun:
                path = trainer.checkpoint()
                say(f"\ninterrupted at step {trainer.step_count}: checkpoint {path} (continue "
                    "with --resume)")
                return 130
        res: dict[float, float] = {}
        if ctx.is_main:
            test = data.test.to(ctx.device) if isinstance(data.test, torch.Tensor) else data.test
            res = evaluate_bits_per_dim(model, test, sigmas, bins=bins, seed=args.seed)
    finally:
        lock.release()
        teardown(ctx)
    hist = trainer.history
    end = hist.stopped_step if hist.stopped_step is not None else args.steps
    done = (f"steps {start} -> {end} (resumed)" if start is not None else f"{end} steps")
    if hist.stop_reason and hist.stop_reason.startswith("early stopping") and hist.best:
        say(f"early stopping at step {end}: best step {hist.best_step}, validation bits/dim "
            f"(σ={hist.best['sigma']:g}) {hist.best['bits_per_dim']:.4f}; the model (and "
            f"{out / 'best.pt'}) holds the best step's weights")
        done += f" of --steps {args.steps}, stopped early"
    evals = trainer.history.evals
    held = evals[-1] if evals else None  # the evaluation of the weights the model now holds
    restored = (hist.best is not None and args.patience is not None
                and trainer.config.restore_best)
    if restored:
        held = next((e for e in evals if e["step"] == hist.best_step), held)
    if held:
        at = f" at step {held['step']}, the weights kept" if restored else ""
        say(f"validation bits/dim ({len(data.validation)} examples{at}): "
            f"{_bits(held['bits_per_dim'])}")
    kept = f"; test bits/dim of step {hist.best_step}'s weights" if restored else \
        "; test bits/dim"
    say(f"trained {args.objective.upper()} on {args.data} for {done}{kept} "
        f"({len(data.test)} examples): {_bits(res)}")
    note = half_bin_note(sigmas, bins)
    if note:
        say(note)
    if samples.written:
        say(f"sample grids: {samples.written[0].parent}/samples_step*.png "
            f"({len(samples.written)})")
    say(f"checkpoint: {out / CHECKPOINT}")
    return 0
