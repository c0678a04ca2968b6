"""torchrun / DistributedDataParallel plumbing: who am I, which device, and reductions.

Under ``torchrun --nproc_per_node=K`` every process gets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in its environment; :func:`setup` then joins the process group (gloo on CPU,
nccl on CUDA, each process on ``cuda:LOCAL_RANK``). Without those variables it is a
one-process context and nothing is initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "resolve_device", "setup", "teardown"]


@dataclass(frozen=True)
class DistContext:
    """Rank, world size and device of this process.

    Attributes:
        rank: global rank (0 in a single process).
        world_size: number of processes (1 in a single process).
        device: this process's device.
        initialized_here: whether :func:`setup` created the process group (and so
            :func:`teardown` destroys it).
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")  # noqa: RUF009 (immutable)
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    def all_mean(self, t: torch.Tensor) -> torch.Tensor:
        """Mean of ``t`` over ranks (``t`` itself in a single process)."""
        if not self.distributed:
            return t
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t / self.world_size


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"cpu"`` → CPU; ``"auto"`` → CUDA when available; anything else as given.

    Raises:
        ValueError: an unknown device string, or CUDA asked for but not available.
    """
    if device is None:
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available here")
    return dev


def _launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def setup(device: str | torch.device | None = None) -> DistContext:
    """Joins the torchrun process group if launched by torchrun; returns this process's context.

    Example:
        >>> setup("cpu").world_size  # not under torchrun
        1
    """
    dev = resolve_device(device)
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        here = False
    elif dist.is_available() and _launched_by_torchrun():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        rank, world = dist.get_rank(), dist.get_world_size()
        here = True
    else:
        return DistContext(device=dev)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return DistContext(rank=rank, world_size=world, device=dev, initialized_here=here)


def teardown(ctx: DistContext) -> None:
    """Destroys the process group if :func:`setup` created it."""
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()
