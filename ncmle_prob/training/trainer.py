"""``Trainer``: one NCMLE training run, one method per concern.

:func:`~ncmle_prob.training.fit` builds a :class:`Trainer` from a
:class:`~ncmle_prob.training.FitConfig` and calls :meth:`Trainer.run`; the pieces are public so
that a custom loop can reuse them (``resume``, ``step``, ``evaluate``, ``checkpoint``).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .batches import BatchSource, check_tensor_data, make_source
from .checkpoint import check_compatible, load_checkpoint, load_weights, save_checkpoint
from .config import FitConfig
from .distributed import DistContext
from .early_stopping import (
    BEST_NAME,
    BestWeights,
    EarlyStoppingState,
    early_stopping_state,
    stop_reason,
)
from .ema import EMA
from .evaluation import evaluate_bits_per_dim
from .history import History
from .loss import NoisedNLL
from .noise import draw_noise, keyed_seed
from .progress import make_progress
from .resume import (
    ResumeMismatchError,
    ResumeOrderWarning,
    mismatch_message,
    resume_differences,
)

__all__ = ["CHECKPOINT_NAME", "NonFiniteLossError", "Trainer"]

CHECKPOINT_NAME = "last.pt"
_AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}
Callback = Callable[[int, dict[str, float]], None]


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient became NaN/inf; training stopped before updating the weights."""


def _seed_global_rng(seed: int, device: torch.device) -> None:
    """Seeds torch's default generators (CPU, and ``device`` if CUDA) for dropout."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.default_generators[device.index or 0].manual_seed(seed)


class Trainer:
    """The state of one run: model, optimizer, EMA, scaler, step, history and data source.

    Args:
        model: a module whose call returns a noise-conditional distribution.
        train_data: a tensor ``(N, *event_shape)``, a map-style ``Dataset`` of such examples
            (or of ``(x, label, ...)`` tuples) or a ``DataLoader`` (see
            :mod:`ncmle_prob.training.batches`).
        config: the run's options.
        ctx: the process context (:func:`ncmle_prob.training.distributed.setup`).
        eval_data: held-out clean data (tensor or ``Dataset``) for bits/dim evaluations.
        callback: called as ``callback(step, {"loss": ..., "bits_per_dim": ...})`` after every
            optimizer step (this reads the loss back from the device each step).
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Tensor | Dataset | DataLoader,
        config: FitConfig,
        ctx: DistContext,
        *,
        eval_data: Tensor | Dataset | None = None,
        callback: Callback | None = None,
    ) -> None:
        cfg = self.config = config
        self.ctx, self.callback = ctx, callback
        dev = ctx.device
        if cfg.amp is not None and dev.type != "cuda":
            raise ValueError(f"amp={cfg.amp!r} needs a CUDA device, got device {dev}")
        if cfg.batch_size % ctx.world_size:
            raise ValueError(
                f"batch_size={cfg.batch_size} must be divisible by the number of processes "
                f"({ctx.world_size})"
            )
        event_shape = getattr(model, "event_shape", None)
        if event_shape is None:
            if not isinstance(train_data, Tensor):
                raise TypeError("model must define event_shape to train on a Dataset/DataLoader")
            event_shape = train_data.shape[1:]
        self.event_shape = torch.Size(event_shape)
        holder = train_data.dataset if isinstance(train_data, DataLoader) else train_data
        self.bins = cfg.bins if cfg.bins is not None else getattr(holder, "bins", None)
        family_bins = getattr(model(), "bins", None)  # a discretized family's own grid
        if self.bins is not None and family_bins is not None and self.bins != family_bins:
            raise ValueError(
                f"the data are on a grid of bins={self.bins} levels but the model's "
                f"discretized family has bins={family_bins}; build the model with "
                f"bins={self.bins} (or re-quantise the data)"
            )
        if isinstance(eval_data, Tensor):
            eval_data = check_tensor_data("eval_data", eval_data, self.event_shape).to(dev)
        elif eval_data is not None and not isinstance(eval_data, Dataset):
            raise TypeError(
                f"eval_data must be a tensor, a Dataset or None, got {type(eval_data).__name__}"
            )
        if cfg.patience is not None and eval_data is None:
            raise ValueError(
                f"patience={cfg.patience} needs eval_every (evaluate every N steps) and "
                "eval_data (the validation set the evaluations use); eval_data is None"
            )
        pin = cfg.pin_memory if cfg.pin_memory is not None else dev.type == "cuda"
        self.source: BatchSource = make_source(
            train_data, batch_size=cfg.batch_size, seed=cfg.seed, rank=ctx.rank,
            world_size=ctx.world_size, device=dev, event_shape=self.event_shape,
            num_workers=cfg.num_workers, pin_memory=pin,
        )
        self.eval_data = eval_data
        self.total = cfg.steps if cfg.steps is not None else cfg.epochs * self.source.per_epoch
        self.model = model.to(dev)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr,
                                          weight_decay=cfg.weight_decay)
        self.ema = EMA(model, cfg.ema) if cfg.ema is not None else None
        self.scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
        self.history, self.step_count = History(), 0
        ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir is not None else None
        self.checkpoint_path = ckpt_dir / CHECKPOINT_NAME if ckpt_dir is not None else None
        self.last_good: tuple[Path, int] | None = None
        self.best_weights = BestWeights(ckpt_dir / BEST_NAME if ckpt_dir is not None else None)
        loss_fn: nn.Module = NoisedNLL(model, self.bins)
        if ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            loss_fn = DistributedDataParallel(
                loss_fn, device_ids=[dev.index] if dev.type == "cuda" else None
            )
        self.loss_fn = loss_fn
        self._eval_model = copy.deepcopy(model) if self.ema is not None else model
        self._bar = None

    # ------------------------------------------------------------------ resume / checkpoint
    def resume_path(self) -> Path | None:
        """The checkpoint ``config.resume`` points at, or ``None`` (start from scratch)."""
        resume = self.config.resume
        if resume is False:
            return None
        if resume is True:
            assert self.checkpoint_path is not None  # FitConfig checked it
            return self.checkpoint_path if self.checkpoint_path.exists() else None
        return Path(resume)

    def resume(self, path: str | Path) -> None:
        """Restores weights, optimizer, EMA, scaler, step and history from a checkpoint.

        Raises:
            ResumeMismatchError: the checkpoint's run used other optimiser, batch, noise or
                early-stopping options (:mod:`~ncmle_prob.training.resume`); nothing is
                restored then.
        """
        ck = load_checkpoint(path, map_location=self.ctx.device)
        check_compatible(ck, self.model)
        before, now = ck.train_config, self.train_config()
        diffs = resume_differences(before, now)
        if diffs:
            raise ResumeMismatchError(mismatch_message(ck.path, diffs))
        load_weights(ck, self.model)
        if ck.optimizer is not None:
            self.optimizer.load_state_dict(ck.optimizer)
        if self.ema is not None and ck.ema is not None:
            self.ema.load_state_dict(ck.ema)
        if self.scaler is not None and ck.scaler is not None:
            self.scaler.load_state_dict(ck.scaler)
        self.step_count, self.history = ck.step, History.from_json(ck.history)
        self.last_good = (ck.path, ck.step)
        self.history.stopped = None  # set again when this run ends
        if self.config.patience is not None and self.ctx.is_main:
            self._resume_best(Path(path), ck.step)
        if "world_size" in before and before["world_size"] != now["world_size"]:
            n = now["world_size"]
            warnings.warn(
                f"resuming {ck.path} on {n} process{'es' if n != 1 else ''} instead of "
                f"{before['world_size']}: the same global batch, another data order",
                ResumeOrderWarning, stacklevel=3,
            )

    def train_config(self) -> dict[str, object]:
        """The JSON record of the run stored in checkpoints (``steps`` is the total)."""
        cfg = self.config
        return {**cfg.to_json(), "world_size": self.ctx.world_size, "steps": self.total,
                "data_size": self.source.size,
                "monitor": cfg.monitor_sigma if cfg.patience is not None else cfg.monitor}

    def checkpoint(self) -> Path | None:
        """Writes ``last.pt`` atomically (rank 0, when ``checkpoint_dir`` is set)."""
        if self.checkpoint_path is None or not self.ctx.is_main:
            return None
        meta = {**(self.config.meta or {}), "bins": self.bins,
                "event_shape": list(self.event_shape)}
        best, stopped = self.history.best, self.history.stopped
        if best is not None:
            meta.update(best_step=best["step"], best_bits_per_dim=best["bits_per_dim"],
                        monitor=best["sigma"])
        if stopped is not None:
            meta.update(stopped_step=stopped["step"], stop_reason=stopped["reason"])
        save_checkpoint(
            self.checkpoint_path, self.model, optimizer=self.optimizer,
            ema=self.ema.state_dict() if self.ema else None, scaler=self.scaler,
            step=self.step_count, train_config=self.train_config(),
            history=self.history.to_json(), meta=meta,
        )
        self.last_good = (self.checkpoint_path, self.step_count)
        return self.checkpoint_path

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[float, float] | None:
        """Bits/dim of ``eval_data`` at ``config.eval_sigmas`` (EMA weights if any; rank 0)."""
        if self.eval_data is None or not self.ctx.is_main:
            return None
        if self.ema is not None:
            self.ema.copy_to(self._eval_model)
        res = evaluate_bits_per_dim(self._eval_model, self.eval_data, self.config.eval_sigmas,
                                    bins=self.bins, seed=self.config.seed)
        self.history.evals.append(
            {"step": self.step_count, "bits_per_dim": {repr(k): v for k, v in res.items()}}
        )
        if self.config.patience is not None:
            self._track_best()
        if self._bar is not None and not self._bar.disable:
            shown = ", ".join(f"σ={k:g}: {v:.4f}" for k, v in res.items())
            self._bar.write(f"step {self.step_count}: validation bits/dim {shown}")
        return res

    # ------------------------------------------------------------------ early stopping
    def early_stopping(self) -> EarlyStoppingState | None:
        """Early stopping's state, derived from ``history.evals`` (``None`` when off)."""
        cfg = self.config
        if cfg.patience is None:
            return None
        return early_stopping_state(self.history.evals, cfg.monitor_sigma, cfg.patience,
                                    cfg.min_delta)

    def _track_best(self) -> None:
        """Records the best evaluation in ``history.best``; keeps its weights if it is new."""
        state = self.early_stopping()
        if state is None or state.best_step is None:
            return
        self.history.best = {"step": state.best_step, "sigma": self.config.monitor_sigma,
                             "bits_per_dim": state.best_value}
        if state.best_step == self.step_count and self.best_weights.step != self.step_count:
            self._keep_best(state)

    def _keep_best(self, state: EarlyStoppingState) -> None:
        """Keeps the weights evaluations use now (the EMA ones if any) as the best."""
        if self.ema is not None:
            self.ema.copy_to(self._eval_model)
        meta = {**(self.config.meta or {}), "bins": self.bins,
                "event_shape": list(self.event_shape), "monitor": self.config.monitor_sigma}
        self.best_weights.save(self._eval_model, step=int(state.best_step),  # type: ignore[arg-type]
                               value=state.best_value, meta=meta,
                               train_config=self.train_config())

    def _resume_best(self, path: Path, step: int) -> None:
        """Finds the best weights of a resumed run: a matching ``best.pt`` (in
        ``checkpoint_dir`` or beside ``path``), or the resumed weights if they are the best."""
        state = self.early_stopping()
        if state is None or state.best_step is None:
            return
        files = [f for f in (self.best_weights.path, path.parent / BEST_NAME) if f is not None]
        if not self.best_weights.adopt(files, state.best_step, state.best_value) and (
            state.best_step == step
        ):
            self._keep_best(state)

    def should_stop(self) -> bool:
        """Whether early stopping's patience has run out (rank 0 decides for all ranks)."""
        state = self.early_stopping()
        flag = bool(state is not None and state.exhausted and self.ctx.is_main)
        if self.ctx.distributed and self.config.patience is not None:
            t = torch.tensor([float(flag)], device=self.ctx.device)
            flag = bool(self.ctx.all_mean(t) > 0)
        return flag

    # ------------------------------------------------------------------ one step
    def _stop(self, what: str, value: float) -> None:
        lg = self.last_good
        where = (f"the last good checkpoint is {lg[0]} (step {lg[1]})" if lg
                 else "no checkpoint was written (pass checkpoint_dir= to keep one)")
        raise NonFiniteLossError(
            f"training stopped: the {what} became {value} at step {self.step_count + 1}; the "
            f"weights were not updated and {where}. Lower lr, set grad_clip, or check the data"
        )

    def step(self, x0: Tensor) -> Tensor:
        """One optimizer step on the clean batch ``x0`` (this rank's rows of the global batch).

        Draws σ and ε keyed by ``(seed, step)``, reseeds dropout from ``(seed, rank, step)``,
        and takes an Adam step. The only host–device synchronisation is one finiteness check
        of the loss and gradient norm before the update (σ is checked once, where the model
        binds it).

        Returns:
            ``[loss, bits/dim, grad norm]`` on the device (all-reduced over ranks).
        """
        cfg, ctx, dev = self.config, self.ctx, self.ctx.device
        global_batch = x0.shape[0] * ctx.world_size
        sigma, noise = draw_noise(
            cfg.prior, global_batch, x0.shape[1:], seed=cfg.seed, step=self.step_count,
            rank=ctx.rank, world_size=ctx.world_size, dtype=x0.dtype, device=dev,
        )
        _seed_global_rng(keyed_seed(cfg.seed, f"rng:{ctx.rank}", self.step_count), dev)
        with torch.autocast(dev.type, dtype=_AMP.get(cfg.amp), enabled=cfg.amp is not None):
            loss, bpd = self.loss_fn(x0, sigma, noise)
        stats = ctx.all_mean(torch.stack([loss.detach().float(), bpd.float()]))
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        clip = cfg.grad_clip if cfg.grad_clip is not None else math.inf
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        # one synchronisation: both checks in one read (the scaler skips inf gradients itself)
        finite = torch.isfinite(stats[0]) if self.scaler is not None else (
            torch.isfinite(stats[0]) & torch.isfinite(gnorm))
        if not bool(finite):
            if not bool(torch.isfinite(stats[0])):
                self._stop("loss", float(stats[0]))
            self._stop("gradient norm", float(gnorm))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step_count += 1
        return torch.cat([stats, gnorm.detach().float().reshape(1)])

    # ------------------------------------------------------------------ the loop
    def run(self) -> History:
        """Resumes if asked, trains to the last step or until early stopping, evaluates,
        checkpoints; returns the :class:`History`. The model ends with the best evaluated
        weights under early stopping with ``restore_best``, else with the EMA weights when
        ``config.ema`` is set, else with the last ones."""
        cfg = self.config
        path = self.resume_path()
        if path is not None:
            self.resume(path)
        bar = self._bar = make_progress(self.total, self.step_count, "ncmle fit",
                                        enabled=bool(cfg.progress and self.ctx.is_main))
        stopped_early = self.should_stop() or self._loop()
        if not stopped_early and (
            not self.history.evals or self.history.evals[-1]["step"] != self.step_count
        ):
            self.evaluate()
            stopped_early = self.should_stop()
        reason = stop_reason(self.early_stopping(), cfg, stopped_early)
        self.history.stopped = {"step": self.step_count, "reason": reason}
        self.checkpoint()
        bar.close()
        best = self.history.best if self.ctx.is_main else None
        restored = cfg.patience is not None and cfg.restore_best and self.best_weights.restore(
            self.model, best, self.ctx.distributed)
        if not restored and self.ema is not None:
            self.ema.copy_to(self.model)
        return self.history

    def _loop(self) -> bool:
        """The optimizer steps; ``True`` if early stopping ended them."""
        cfg, dev, bar = self.config, self.ctx.device, self._bar
        assert bar is not None
        window: list[Tensor] = []
        t0, seen = time.perf_counter(), 0
        fork_devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            for x0 in self.source.iterate(self.step_count, self.total):
                row = self.step(x0)
                seen += x0.shape[0] * self.ctx.world_size
                window.append(row)
                bar.update(1)
                step, stop = self.step_count, False
                if cfg.eval_every and step % cfg.eval_every == 0 and step < self.total:
                    self.evaluate()
                    stop = self.should_stop()
                if step % cfg.log_every == 0 or step == self.total or stop:
                    w = torch.stack(window).mean(0).tolist()
                    rate = seen / max(time.perf_counter() - t0, 1e-9)
                    self.history.train.append({"step": step, "loss": w[0], "bits_per_dim": w[1],
                                               "grad_norm": w[2], "examples_per_s": rate})
                    bar.set_postfix(loss=f"{w[0]:.3f}", bpd=f"{w[1]:.3f}", ex_s=f"{rate:.0f}")
                    window, t0, seen = [], time.perf_counter(), 0
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and (
                    step < self.total and not stop
                ):
                    self.checkpoint()
                if self.callback is not None:
                    self.callback(step, {"loss": float(row[0]), "bits_per_dim": float(row[1])})
                if stop:
                    return True
        return False

