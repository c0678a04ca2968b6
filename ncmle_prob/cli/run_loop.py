"""What ``ncmle train`` adds around :class:`~ncmle_prob.training.Trainer`: Ctrl-C that leaves a
clean checkpoint, sample grids written during training, and ``torch.compile``.

Ctrl-C (SIGINT) does not stop a step half-way: the handler sets a flag, the step finishes, the
run writes ``OUT/last.pt`` at that step boundary (atomically, the checkpoint a ``--resume``
continues from bit-exactly) and exits with status 130. A second Ctrl-C interrupts at once (the
previous checkpoint then stays as it was). Under torchrun the flag is all-reduced each step so
that every rank stops at the same step.
"""

from __future__ import annotations

import copy
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import CLIError

if TYPE_CHECKING:
    from torch import nn

    from ..training import Trainer

__all__ = ["InterruptedRun", "SampleWriter", "StopOnInterrupt", "try_compile"]


class InterruptedRun(Exception):  # noqa: N818 (a request to stop, not an error)
    """Raised at a step boundary after Ctrl-C (the checkpoint is written by the caller)."""


class StopOnInterrupt:
    """A SIGINT handler that asks the run to stop after the current step.

    Example:
        >>> from ncmle_prob.cli.run_loop import StopOnInterrupt
        >>> stop = StopOnInterrupt()
        >>> with stop.installed():
        ...     stop.requested
        False
    """

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: at once

    @contextmanager
    def installed(self) -> Iterator[StopOnInterrupt]:
        """Installs the handler (main thread only; elsewhere a no-op) for the ``with`` block."""
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._old = None
        try:
            yield self
        finally:
            if self._old is not None:
                signal.signal(signal.SIGINT, self._old)

    def check(self, trainer: Trainer) -> None:
        """Raises :class:`InterruptedRun` if any rank was asked to stop."""
        flag = self.requested
        if trainer.ctx.distributed:
            import torch

            t = torch.tensor([float(flag)], device=trainer.ctx.device)
            flag = bool(trainer.ctx.all_mean(t) > 0)
        if flag:
            raise InterruptedRun


class SampleWriter:
    """Writes ``OUT/samples_stepN.png`` every ``every`` steps with the model's sampler.

    The grid uses the EMA weights when the run has them, a fixed seed (the same noise at every
    step, so grids of successive steps compare), and runs in eval mode under ``no_grad`` on a
    copy of the model: training, its RNG and its resume are untouched.
    """

    def __init__(self, trainer: Trainer, out: Path, every: int, num: int, seed: int,
                 image_shape: list[int] | None) -> None:
        self.trainer, self.out, self.every, self.num = trainer, out, every, num
        self.seed, self.image_shape = seed, image_shape
        self.copy: nn.Module | None = None
        self.written: list[Path] = []

    def __call__(self, step: int) -> None:
        if not self.every or step % self.every or not self.trainer.ctx.is_main:
            return
        import torch

        from .images import as_images
        from .plots import image_grid
        from .sample import draw

        t = self.trainer
        if self.copy is None:
            self.copy = copy.deepcopy(t.model)
        if t.ema is not None:
            t.ema.copy_to(self.copy)
        else:
            self.copy.load_state_dict(t.model.state_dict())
        self.copy.eval()
        with torch.no_grad():
            x = draw(self.copy, self.num, 0.0, "ancestral", {}, self.seed)
        path = image_grid(as_images(x, self.image_shape), self.out / f"samples_step{step}.png",
                          title=f"step {step}: {self.num} ancestral samples, σ=0")
        self.written.append(path)


def try_compile(trainer: Trainer) -> None:
    """Compiles the run's loss module with :func:`torch.compile`, or raises one clear line.

    One forward and backward pass on a zero batch triggers the compilation now (not in the
    first step), inside :func:`torch.random.fork_rng`; the gradients are cleared afterwards, so
    the run itself is unchanged.
    """
    import torch

    per_rank = trainer.config.batch_size // trainer.ctx.world_size
    dev = trainer.ctx.device
    x0 = torch.zeros((per_rank, *trainer.event_shape), device=dev)
    sigma = torch.full((per_rank,), 0.1, device=dev)
    try:
        compiled: Callable[..., Any] = torch.compile(trainer.loss_fn)
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            loss, _ = compiled(x0, sigma, torch.zeros_like(x0))
            loss.backward()
    except Exception as e:  # inductor raises many kinds (no compiler, unsupported op, ...)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise CLIError(f"--compile: torch.compile does not work here ({type(e).__name__}: "
                       f"{first}); run without --compile") from e
    finally:
        trainer.optimizer.zero_grad(set_to_none=True)
    trainer.loss_fn = compiled  # type: ignore[assignment]
