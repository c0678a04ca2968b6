"""``fit``: the NCMLE training loop (CPU, CUDA, torchrun/DDP; EMA, AMP, clipping, resume)."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from ..objectives import NoiseLevelPrior
from .checkpoint import check_compatible, load_checkpoint, save_checkpoint
from .distributed import DistContext, setup, teardown
from .ema import EMA
from .evaluation import evaluate_bits_per_dim
from .history import History
from .loss import NoisedNLL
from .noise import draw_noise, keyed_seed

__all__ = ["NonFiniteLossError", "fit"]

CHECKPOINT_NAME = "last.pt"
_AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient became NaN/inf; training stopped before updating the weights."""


def _check_data(name: str, data: object, event_shape: torch.Size) -> Tensor:
    if not isinstance(data, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor (N, *event_shape), got {type(data).__name__}"
        )
    if not data.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {data.dtype}")
    if tuple(data.shape[1:]) != tuple(event_shape) or data.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (N, {', '.join(map(str, event_shape))}) with N >= 1, got "
            f"{tuple(data.shape)}"
        )
    bad = ~torch.isfinite(data.reshape(data.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        rows = bad.nonzero().flatten()
        raise ValueError(
            f"{name} has NaN/inf values in {len(rows)} example(s), first at index {int(rows[0])}"
        )
    return data


def _seed_global_rng(seed: int, device: torch.device) -> None:
    """Seeds torch's default generators (CPU, and ``device`` if CUDA) for dropout."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.default_generators[device.index or 0].manual_seed(seed)


def _positive_int(name: str, value: object, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _resume_path(resume: bool | str | Path, checkpoint_dir: Path | None) -> Path | None:
    if resume is False or resume is None:
        return None
    if resume is True:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir (where last.pt is looked for)")
        path = checkpoint_dir / CHECKPOINT_NAME
        return path if path.exists() else None
    return Path(resume)


def fit(
    model: nn.Module,
    train_data: Tensor,
    *,
    prior: NoiseLevelPrior | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
    ema: float | None = None,
    amp: str | None = None,
    device: str | torch.device | None = "cpu",
    eval_data: Tensor | None = None,
    eval_sigmas: Sequence[float] = (0.0,),
    eval_every: int | None = None,
    bins: int | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool | str | Path = False,
    seed: int = 0,
    log_every: int = 10,
    progress: bool = True,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> History:
    """Trains ``model`` by NCMLE (plain MLE with ``prior=NoiseLevelPrior.mle()``).

    Each step draws a global batch of ``batch_size`` examples (an epoch is a
    :class:`~torch.utils.data.DistributedSampler` permutation seeded by ``seed`` and the epoch),
    one :math:`\\sigma_n \\sim \\pi` and :math:`\\varepsilon_n` per example from a generator keyed
    by ``(seed, step)`` (see :mod:`ncmle_prob.training.noise`), and takes an Adam step on

    .. math::

        \\hat{\\mathcal L} = -\\frac1B \\sum_{n=1}^{B}
        \\log p_\\theta(x_{0,n} + \\sigma_n \\varepsilon_n \\mid \\sigma_n).

    Under ``torchrun`` the same call trains with DDP: each of the K processes takes rows
    ``rank::K`` of the global batch and its noise, so the run matches a single process up to
    float reduction order. Only rank 0 logs, evaluates and writes checkpoints. Inside ``fit``
    torch's global RNG (dropout) is reseeded from ``(seed, rank, step)`` at each step under
    :func:`torch.random.fork_rng`, so the caller's RNG is untouched and a resumed run is
    bit-identical to an uninterrupted one on CPU.

    Args:
        model: a module whose call returns a noise-conditional distribution (e.g. ``MADE``).
        train_data: clean data ``(N, *event_shape)``, finite.
        prior: noise-level prior (default ``NoiseLevelPrior()``).
        steps: number of optimizer steps (exclusive with ``epochs``).
        epochs: number of passes over the data (incomplete last batches are dropped).
        batch_size: global batch size (divisible by the number of processes).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        grad_clip: clip the global gradient norm to this value.
        ema: decay of an exponential moving average of the weights; the model ends with the
            averaged weights (the raw ones stay in the checkpoint for resuming).
        amp: ``"bf16"`` or ``"fp16"`` autocast (CUDA only).
        device: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        eval_data: clean held-out data for bits/dim evaluations.
        eval_sigmas: noise levels at which to evaluate.
        eval_every: evaluate every this many steps (and always at the end).
        bins: grid levels of the data (bits/dim bin width); default: the family's ``bins``.
        checkpoint_dir: where ``last.pt`` is written atomically.
        checkpoint_every: checkpoint every this many steps (and always at the end).
        resume: ``True`` to continue from ``checkpoint_dir/last.pt`` when it exists, or a path.
        seed: seed of the data order, the noise and dropout.
        log_every: steps per logged window (history and progress bar).
        progress: show a tqdm bar (rank 0 only).
        callback: called as ``callback(step, info)`` after every optimizer step.
        meta: JSON-able facts stored with checkpoints (e.g. the data set's name).

    Returns:
        The :class:`History` (on every rank; evaluations only on rank 0).

    Raises:
        NonFiniteLossError: the loss or gradient became NaN/inf; the weights are those of the
            last good step and the last checkpoint is left as it was.

    Example:
        >>> from ncmle_prob.models import MADE
        >>> _ = torch.manual_seed(0)
        >>> model = MADE(features=2, hidden_features=16)
        >>> hist = fit(model, torch.randn(256, 2), steps=20, batch_size=64, progress=False,
        ...            eval_data=torch.randn(64, 2), eval_sigmas=[0.0, 0.3])
        >>> len(hist.losses), sorted(hist.last_eval)
        (2, [0.0, 0.3])
    """
    prior = NoiseLevelPrior() if prior is None else prior
    if not isinstance(prior, NoiseLevelPrior):
        raise TypeError(f"prior must be a NoiseLevelPrior, got {type(prior).__name__}")
    if (steps is None) == (epochs is None):
        raise ValueError(
            f"give exactly one of steps and epochs, got steps={steps!r}, epochs={epochs!r}"
        )
    _positive_int("steps", steps)
    _positive_int("epochs", epochs)
    _positive_int("batch_size", batch_size, allow_none=False)
    _positive_int("log_every", log_every, allow_none=False)
    _positive_int("eval_every", eval_every)
    _positive_int("checkpoint_every", checkpoint_every)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if grad_clip is not None and not (math.isfinite(grad_clip) and grad_clip > 0):
        raise ValueError(f"grad_clip must be a positive finite number or None, got {grad_clip!r}")
    if amp not in (None, "bf16", "fp16"):
        raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    event_shape = torch.Size(getattr(model, "event_shape", train_data.shape[1:]))
    train_data = _check_data("train_data", train_data, event_shape)
    if eval_data is not None:
        eval_data = _check_data("eval_data", eval_data, event_shape)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    resume_from = _resume_path(resume, ckpt_dir)

    ctx = setup(device)
    try:
        if amp is not None and ctx.device.type != "cuda":
            raise ValueError(f"amp={amp!r} needs a CUDA device, got device {ctx.device}")
        if batch_size % ctx.world_size:
            raise ValueError(
                f"batch_size={batch_size} must be divisible by the number of processes "
                f"({ctx.world_size})"
            )
        return _train(**locals())
    finally:
        teardown(ctx)


def _train(*, model: nn.Module, ctx: DistContext, **kw: Any) -> History:
    dev = ctx.device
    model.to(dev)
    train_data = kw["train_data"].to(dev)
    eval_data = kw["eval_data"].to(dev) if kw["eval_data"] is not None else None
    prior, seed, B = kw["prior"], int(kw["seed"]), int(kw["batch_size"])
    b = B // ctx.world_size
    sampler = DistributedSampler(
        range(train_data.shape[0]), num_replicas=ctx.world_size, rank=ctx.rank,
        shuffle=True, seed=seed,
    )
    per_epoch = len(sampler) // b
    if per_epoch == 0:
        raise ValueError(
            f"batch_size={B} is larger than the training set ({train_data.shape[0]} examples)"
        )
    total = kw["steps"] if kw["steps"] is not None else kw["epochs"] * per_epoch
    opt = torch.optim.Adam(model.parameters(), lr=kw["lr"], weight_decay=kw["weight_decay"])
    ema = EMA(model, kw["ema"]) if kw["ema"] is not None else None
    amp = kw["amp"]
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    history, step = History(), 0
    train_config = {
        "prior": dataclasses.asdict(prior), "batch_size": B, "lr": kw["lr"], "seed": seed,
        "weight_decay": kw["weight_decay"], "grad_clip": kw["grad_clip"], "ema": kw["ema"],
        "amp": amp, "world_size": ctx.world_size, "steps": total,
    }
    ckpt_dir: Path | None = kw["ckpt_dir"]
    ckpt_path = ckpt_dir / CHECKPOINT_NAME if ckpt_dir is not None else None
    last_good: tuple[Path, int] | None = None
    if kw["resume_from"] is not None:
        ck = load_checkpoint(kw["resume_from"], map_location=dev)
        check_compatible(ck, model)
        model.load_state_dict(ck.model)
        if ck.optimizer is not None:
            opt.load_state_dict(ck.optimizer)
        if ema is not None and ck.ema is not None:
            ema.load_state_dict(ck.ema)
        if scaler is not None and ck.scaler is not None:
            scaler.load_state_dict(ck.scaler)
        step, history = ck.step, History.from_json(ck.history)
        last_good = (ck.path, ck.step)

    loss_fn: nn.Module = NoisedNLL(model, kw["bins"])
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        loss_fn = DistributedDataParallel(
            loss_fn, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    eval_model = copy.deepcopy(model) if ema is not None else model
    meta = {**(kw["meta"] or {}), "bins": kw["bins"], "event_shape": list(train_data.shape[1:])}

    def checkpoint() -> None:
        nonlocal last_good
        if ckpt_path is not None and ctx.is_main:
            save_checkpoint(
                ckpt_path, model, optimizer=opt, ema=ema.state_dict() if ema else None,
                scaler=scaler, step=step, train_config=train_config,
                history=history.to_json(), meta=meta,
            )
            last_good = (ckpt_path, step)

    def evaluate() -> None:
        if eval_data is None or not ctx.is_main:
            return
        if ema is not None:
            ema.copy_to(eval_model)
        res = evaluate_bits_per_dim(
            eval_model, eval_data, kw["eval_sigmas"], bins=kw["bins"], seed=seed
        )
        history.evals.append({"step": step, "bits_per_dim": {repr(k): v for k, v in res.items()}})
        if not bar.disable:
            shown = ", ".join(f"σ={k:g}: {v:.4f}" for k, v in res.items())
            bar.write(f"step {step}: eval bits/dim {shown}")

    def stop(what: str, value: float) -> None:
        where = (f"the last good checkpoint is {last_good[0]} (step {last_good[1]})"
                 if last_good else "no checkpoint was written (pass checkpoint_dir= to keep one)")
        raise NonFiniteLossError(
            f"training stopped: the {what} became {value} at step {step + 1}; the weights were "
            f"not updated and {where}. Lower lr, set grad_clip, or check the data"
        )

    from tqdm import tqdm

    bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True,
               disable=not (kw["progress"] and ctx.is_main), desc="ncmle fit")
    window: list[Tensor] = []
    t0, n_win = time.perf_counter(), 0
    order: Tensor | None = None
    order_epoch = -1
    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        while step < total:
            epoch, k = divmod(step, per_epoch)
            if epoch != order_epoch:
                sampler.set_epoch(epoch)
                order = torch.tensor(list(sampler), dtype=torch.long, device=dev)
                order_epoch = epoch
            x0 = train_data[order[k * b : (k + 1) * b]]
            sigma, noise = draw_noise(
                prior, B, x0.shape[1:], seed=seed, step=step, rank=ctx.rank,
                world_size=ctx.world_size, dtype=x0.dtype, device=dev,
            )
            _seed_global_rng(keyed_seed(seed, f"rng:{ctx.rank}", step), dev)
            with torch.autocast(dev.type, dtype=_AMP.get(amp), enabled=amp is not None):
                loss, bpd = loss_fn(x0, sigma, noise)
            stats = ctx.all_mean(torch.stack([loss.detach().float(), bpd.float()]))
            if not bool(torch.isfinite(stats[0])):
                stop("loss", float(stats[0]))
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            clip = kw["grad_clip"] if kw["grad_clip"] is not None else math.inf
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            if scaler is None and not bool(torch.isfinite(gnorm)):
                stop("gradient norm", float(gnorm))
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            if ema is not None:
                ema.update(model)
            step += 1
            n_win += 1
            window.append(torch.cat([stats, gnorm.detach().float().reshape(1)]))
            bar.update(1)
            if step % kw["log_every"] == 0 or step == total:
                w = torch.stack(window).mean(0).tolist()
                rate = n_win * B / max(time.perf_counter() - t0, 1e-9)
                history.train.append({"step": step, "loss": w[0], "bits_per_dim": w[1],
                                      "grad_norm": w[2], "examples_per_s": rate})
                bar.set_postfix(loss=f"{w[0]:.3f}", bpd=f"{w[1]:.3f}", ex_s=f"{rate:.0f}")
                window, t0, n_win = [], time.perf_counter(), 0
            if kw["eval_every"] and step % kw["eval_every"] == 0 and step < total:
                evaluate()
            if kw["checkpoint_every"] and step % kw["checkpoint_every"] == 0 and step < total:
                checkpoint()
            if kw["callback"] is not None:
                kw["callback"](step, {"loss": float(stats[0]), "bits_per_dim": float(stats[1])})
    if not history.evals or history.evals[-1]["step"] != step:
        evaluate()
    checkpoint()
    bar.close()
    if ema is not None:
        ema.copy_to(model)
    return history
