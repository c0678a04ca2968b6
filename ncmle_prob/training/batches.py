"""Where the training batches come from: tensors, a ``Dataset`` or a user ``DataLoader``.

The data order is a function of ``(seed, epoch)`` only, so a run resumed at any step sees
exactly the batches the uninterrupted run would have seen:

* **tensors** and **data sets**: epoch *e* is the permutation of a
  :class:`~torch.utils.data.DistributedSampler` (``shuffle=True``, ``seed=seed``,
  ``set_epoch(e)``); step *t* of the run is batch ``t mod per_epoch`` of epoch
  ``t // per_epoch``; under torchrun rank *r* takes that sampler's rank-*r* share, so the
  global batch is the same for any number of processes. Tensors are indexed on the device;
  a data set is read by a :class:`~torch.utils.data.DataLoader` (``num_workers``,
  ``pin_memory``) driven by a batch sampler that starts at the resumed step.
* a **user DataLoader** is used as given: its batches, in its order. Before each pass ``fit``
  calls ``set_epoch(e)`` on its sampler and batch sampler when they have one, and seeds torch's
  global generator from ``(seed, e)`` (inside :func:`torch.random.fork_rng`), which is where a
  ``shuffle=True`` loader without its own ``generator`` draws its order. A resume then skips the
  batches already used in the current epoch by *reading* them again, so it is exact for such
  loaders, costs one read of those batches, and is exact for other loaders only if their order
  is a function of the epoch (a loader with its own ``generator`` is not re-seeded).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Sampler

from .noise import keyed_seed

__all__ = ["BatchSource", "epoch_order", "make_source"]


def epoch_order(n: int, epoch: int, *, seed: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This rank's indices of epoch ``epoch``: a DistributedSampler permutation of ``range(n)``.

    Example:
        >>> a = epoch_order(10, 3, seed=1)
        >>> sorted(a) == list(range(10)), a == epoch_order(10, 3, seed=1)
        (True, True)
        >>> a != epoch_order(10, 4, seed=1)  # another epoch, another order
        True
    """
    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def _check_batch(name: str, x: Tensor, event_shape: torch.Size, where: str) -> None:
    """Shape, dtype and finiteness of one CPU batch (no device synchronisation)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} yielded {type(x).__name__} {where}; expected tensors")
    if not x.is_floating_point():
        raise TypeError(f"{name} yields dtype {x.dtype} {where}; it must be floating point")
    if tuple(x.shape[1:]) != tuple(event_shape):
        raise ValueError(
            f"{name} yields examples of shape {tuple(x.shape[1:])} {where}, but the model's "
            f"event_shape is {tuple(event_shape)}"
        )
    if x.device.type == "cpu":
        bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
        if bool(bad.any()):
            raise ValueError(
                f"{name} has NaN/inf values {where} (row {int(bad.nonzero()[0])} of the batch)"
            )


def _first(batch: Any) -> Any:
    """The inputs of a batch: ``x`` itself, or the first entry of ``(x, label, ...)``."""
    if isinstance(batch, (list, tuple)) and batch:
        return batch[0]
    return batch


class BatchSource:
    """An iterator factory over training batches on ``device``, keyed by the global step.

    Attributes:
        per_epoch: optimizer steps per epoch.
        global_batch: examples per step over all processes (``None`` for a user loader, whose
            batches may vary: then it is the batch's size times the number of processes).
        size: number of training examples (``None`` if unknown).
    """

    per_epoch: int
    global_batch: int | None
    size: int | None

    def iterate(self, start: int, total: int) -> Iterator[Tensor]:
        """Yields the batches of steps ``start, ..., total - 1``."""
        raise NotImplementedError


class _TensorSource(BatchSource):
    def __init__(self, data: Tensor, batch_size: int, seed: int, rank: int, world: int,
                 device: torch.device) -> None:
        self.data = data.to(device)
        self.seed, self.rank, self.world = seed, rank, world
        self.b = batch_size // world
        self.global_batch, self.size = batch_size, data.shape[0]
        self.per_epoch = math.ceil(data.shape[0] / world) // self.b
        if self.per_epoch == 0:
            raise ValueError(
                f"batch_size={batch_size} is larger than the training set ({data.shape[0]} "
                "examples)"
            )

    def iterate(self, start: int, total: int) -> Iterator[Tensor]:
        order: Tensor | None = None
        order_epoch = -1
        for step in range(start, total):
            epoch, k = divmod(step, self.per_epoch)
            if epoch != order_epoch:
                idx = epoch_order(self.data.shape[0], epoch, seed=self.seed, rank=self.rank,
                                  world_size=self.world)
                order = torch.tensor(idx, dtype=torch.long, device=self.data.device)
                order_epoch = epoch
            assert order is not None
            yield self.data[order[k * self.b : (k + 1) * self.b]]


class _KeyedBatchSampler(Sampler[list[int]]):
    """Index batches of steps ``start..total-1`` in the order of :func:`epoch_order`."""

    def __init__(self, n: int, b: int, per_epoch: int, seed: int, rank: int, world: int,
                 start: int, total: int) -> None:
        self.n, self.b, self.per_epoch = n, b, per_epoch
        self.seed, self.rank, self.world = seed, rank, world
        self.start, self.total = start, total

    def __len__(self) -> int:
        return max(self.total - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        order: list[int] = []
        order_epoch = -1
        for step in range(self.start, self.total):
            epoch, k = divmod(step, self.per_epoch)
            if epoch != order_epoch:
                order = epoch_order(self.n, epoch, seed=self.seed, rank=self.rank,
                                    world_size=self.world)
                order_epoch = epoch
            yield order[k * self.b : (k + 1) * self.b]


class _DatasetSource(BatchSource):
    def __init__(self, data: Dataset, batch_size: int, seed: int, rank: int, world: int,
                 device: torch.device, event_shape: torch.Size, num_workers: int,
                 pin_memory: bool) -> None:
        if not isinstance(data, Sized):
            raise TypeError(
                f"train_data is a {type(data).__name__} without __len__; fit needs a map-style "
                "Dataset (or pass a DataLoader)"
            )
        n = len(data)
        if n == 0:
            raise ValueError(f"train_data is an empty {type(data).__name__}")
        self.data, self.device, self.event_shape = data, device, event_shape
        self.seed, self.rank, self.world = seed, rank, world
        self.b = batch_size // world
        self.global_batch, self.size = batch_size, n
        self.per_epoch = math.ceil(n / world) // self.b
        if self.per_epoch == 0:
            raise ValueError(f"batch_size={batch_size} is larger than the training set ({n} "
                             "examples)")
        self.num_workers, self.pin_memory = num_workers, pin_memory

    def iterate(self, start: int, total: int) -> Iterator[Tensor]:
        sampler = _KeyedBatchSampler(self.size or 0, self.b, self.per_epoch, self.seed,
                                     self.rank, self.world, start, total)
        loader = DataLoader(self.data, batch_sampler=sampler, num_workers=self.num_workers,
                            pin_memory=self.pin_memory)
        non_blocking = self.pin_memory and self.device.type == "cuda"
        for step, batch in enumerate(loader, start):
            x = _first(batch)
            _check_batch("train_data", x, self.event_shape, f"at step {step + 1}")
            yield x.to(self.device, non_blocking=non_blocking)


class _LoaderSource(BatchSource):
    def __init__(self, loader: DataLoader, seed: int, world: int, device: torch.device,
                 event_shape: torch.Size) -> None:
        try:
            self.per_epoch = len(loader)
        except TypeError:
            raise TypeError(
                "train_data is a DataLoader without a length (an IterableDataset); fit needs "
                "len(loader) batches per epoch"
            ) from None
        if self.per_epoch == 0:
            raise ValueError("train_data is a DataLoader that yields no batches")
        self.loader, self.seed, self.world = loader, seed, world
        self.device, self.event_shape = device, event_shape
        self.global_batch = None
        self.size = len(loader.dataset) if isinstance(loader.dataset, Sized) else None

    def iterate(self, start: int, total: int) -> Iterator[Tensor]:
        epoch, skip = divmod(start, self.per_epoch)
        step = start
        non_blocking = bool(self.loader.pin_memory) and self.device.type == "cuda"
        while step < total:
            for part in (self.loader.sampler, self.loader.batch_sampler):
                if hasattr(part, "set_epoch"):
                    part.set_epoch(epoch)
            torch.default_generator.manual_seed(keyed_seed(self.seed, "loader", epoch))
            it = iter(self.loader)
            for _ in range(skip):  # resume mid-epoch: re-read the batches already used
                next(it, None)
            for batch in it:
                x = _first(batch)
                _check_batch("train_data", x, self.event_shape,
                             f"in batch {step % self.per_epoch} of epoch {epoch}")
                yield x.to(self.device, non_blocking=non_blocking)
                step += 1
                if step >= total:
                    return
            epoch, skip = epoch + 1, 0


def check_tensor_data(name: str, data: Tensor, event_shape: torch.Size) -> Tensor:
    """Type, shape and finiteness of in-memory data ``(N, *event_shape)``, checked once."""
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


def make_source(
    data: object,
    *,
    batch_size: int,
    seed: int,
    rank: int,
    world_size: int,
    device: torch.device,
    event_shape: torch.Size,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> BatchSource:
    """The :class:`BatchSource` for ``data``: a tensor, a ``Dataset`` or a ``DataLoader``.

    Raises:
        TypeError: ``data`` is none of these, or an ``IterableDataset`` (pass a DataLoader).
        ValueError: empty data, or a batch larger than the data.
    """
    if isinstance(data, Tensor):
        data = check_tensor_data("train_data", data, event_shape)
        return _TensorSource(data, batch_size, seed, rank, world_size, device)
    if isinstance(data, DataLoader):
        return _LoaderSource(data, seed, world_size, device, event_shape)
    if isinstance(data, IterableDataset):
        raise TypeError(
            "train_data is an IterableDataset; wrap it in a DataLoader (fit then uses it as "
            "given) or use a map-style Dataset"
        )
    if isinstance(data, Dataset):
        return _DatasetSource(data, batch_size, seed, rank, world_size, device, event_shape,
                              num_workers, pin_memory)
    raise TypeError(
        "train_data must be a torch.Tensor (N, *event_shape), a torch.utils.data.Dataset or a "
        f"DataLoader, got {type(data).__name__}"
    )
