"""Training at scale: :func:`fit`, :class:`FitConfig`, :class:`Trainer`, checkpoints, EMA and
torchrun/DDP.

.. code-block:: python

    from ncmle_prob.data import load_dataset
    from ncmle_prob.training import FitConfig, fit, load_model
    history = fit(model, x_train, steps=2000, batch_size=128, checkpoint_dir="runs/a")
    train = load_dataset("folder:images/", size=32)          # a streaming Dataset
    history = fit(model, train, FitConfig(steps=2000, num_workers=4, checkpoint_dir="runs/b"))
    model = load_model("runs/a/last.pt")

The same script launched by ``torchrun --nproc_per_node=K`` trains with
DistributedDataParallel (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

from .checkpoint import (
    Checkpoint,
    CheckpointError,
    OldLayoutWarning,
    atomic_write,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from .config import FitConfig
from .distributed import DistContext, resolve_device
from .ema import EMA
from .evaluation import evaluate_bits_per_dim
from .fit import NonFiniteLossError, fit
from .history import History
from .loss import NoisedNLL
from .noise import draw_noise, keyed_generator
from .resume import ResumeMismatchError, ResumeOrderWarning
from .trainer import Trainer

__all__ = [
    "EMA",
    "Checkpoint",
    "CheckpointError",
    "DistContext",
    "FitConfig",
    "History",
    "NoisedNLL",
    "NonFiniteLossError",
    "OldLayoutWarning",
    "ResumeMismatchError",
    "ResumeOrderWarning",
    "Trainer",
    "atomic_write",
    "draw_noise",
    "evaluate_bits_per_dim",
    "fit",
    "keyed_generator",
    "load_checkpoint",
    "load_model",
    "resolve_device",
    "save_checkpoint",
]
