"""The data of ``ncmle train``: training examples, a validation split and a test split.

* **validation** (``--validation-size N``): the last N examples of the *train* split, held out
  of training; ``--eval-every`` reports bits/dim on them during training, to select a step or
  a setting. With ``--eval-every`` and no ``--validation-size`` it is a tenth of the train split
  (at most 1000 examples); otherwise there is none.
* **test** (``--test-size N``): the first N examples of the *test* split, reported once at the
  end (and by ``ncmle evaluate``), never used to select anything.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from ..models import catalogue as _models
from .common import DATASETS, CLIError, load_run_data, say
from .images import ImageRun, check_data_spec, load_image_data, native_bins, subset

__all__ = ["TrainData", "default_validation_size", "legacy_made_data", "load_train_data"]

#: the largest default validation split
MAX_VALIDATION = 1000


@dataclass
class TrainData:
    """What a training run reads: ``train``/``validation``/``test`` (tensors or datasets)."""

    train: Any
    validation: Any | None
    test: Any
    bins: int | None
    meta: dict[str, Any]
    image_run: ImageRun | None


def legacy_made_data(args: argparse.Namespace) -> bool:
    """MADE on a named data set keeps the in-memory vectors of :func:`load_run_data`."""
    return _models.lookup(args.model).input == "vector" and args.data in DATASETS


def default_validation_size(n_train: int, eval_every: int | None) -> int:
    """A tenth of the train split (at most :data:`MAX_VALIDATION`) with ``--eval-every``, else 0.

    Example:
        >>> from ncmle_prob.cli.train_data import default_validation_size
        >>> default_validation_size(1438, 100), default_validation_size(60000, 100)
        (143, 1000)
        >>> default_validation_size(1438, None)
        0
    """
    if not eval_every:
        return 0
    return max(1, min(MAX_VALIDATION, n_train // 10))


def _split_off(train: Any, size: int) -> tuple[Any, Any]:
    """``(train without its last size examples, those examples)``."""
    import torch

    n = len(train)
    if isinstance(train, torch.Tensor):
        return train[: n - size], train[n - size:]
    from torch.utils.data import Subset

    return Subset(train, range(n - size)), Subset(train, range(n - size, n))


def load_train_data(args: argparse.Namespace) -> TrainData:
    """Reads ``--data`` and splits it; lowers ``args.batch_size`` to the training set's size
    (with a note).

    Raises:
        CLIError: a validation split that leaves no training example.
    """
    if legacy_made_data(args):
        if args.image_size is not None or args.channels is not None:
            raise CLIError(f"--image-size and --channels apply to folder: data, not --data "
                           f"{args.data}")
        data = load_run_data(args.data, args.data_dir, args.bins)
        meta: dict[str, Any] = {"dataset": args.data, "data_dir": args.data_dir,
                                "image_shape": list(data.image_shape) if data.image_shape
                                else None}
        train, test, bins, run = data.train, data.test[: args.test_size], data.bins, None
    else:
        run = load_image_data(args.data, data_dir=args.data_dir, bins=args.bins,
                              size=args.image_size, channels=args.channels, resize=args.resize,
                              flatten=_models.lookup(args.model).input == "vector")
        native = native_bins(check_data_spec(args.data, args.data_dir)) or run.meta["data_bins"]
        if args.bins is not None and native != args.bins:
            say(f"note: --bins {args.bins}: the data are re-quantised from their {native} "
                "levels")
        train, test, bins, meta = run.train, subset(run.test, args.test_size), run.bins, run.meta
    n = len(train)
    size = args.validation_size
    if size is None:
        size = default_validation_size(n, args.eval_every)
    if size >= n:
        raise CLIError(f"--validation-size {size}: the train split has only {n} examples; "
                       "pass a smaller --validation-size")
    validation = None
    if size:
        train, validation = _split_off(train, size)
        n -= size
    if args.batch_size > n:
        say(f"note: --batch-size {args.batch_size} is more than the {n} training examples; "
            f"using --batch-size {n}")
        args.batch_size = n
    meta = {**meta, "validation_size": size, "test_size": len(test)}
    return TrainData(train, validation, test, bins, meta, run)
