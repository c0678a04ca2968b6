r"""``fit``: the NCMLE training loop (CPU, CUDA, torchrun/DDP; EMA, AMP, clipping, resume)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .config import FitConfig
from .distributed import setup, teardown
from .history import History
from .trainer import NonFiniteLossError, Trainer

__all__ = ["NonFiniteLossError", "fit"]


def fit(
    model: nn.Module,
    train_data: Tensor | Dataset | DataLoader,
    config: FitConfig | None = None,
    *,
    eval_data: Tensor | Dataset | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    **options: Any,
) -> History:
    r"""Trains ``model`` by NCMLE (plain MLE with ``prior=NoiseLevelPrior.mle()``).

    Each step takes a global batch of ``batch_size`` clean examples (epoch *e* is a
    :class:`~torch.utils.data.DistributedSampler` permutation keyed by ``(seed, e)``), draws one
    :math:`\sigma_n \sim \pi` and :math:`\varepsilon_n` per example from a generator keyed by
    ``(seed, step)`` (:mod:`ncmle_prob.training.noise`), and takes an Adam step on

    .. math::

        \hat{\mathcal L} = -\frac1B \sum_{n=1}^{B}
        \log p_\theta(x_{0,n} + \sigma_n \varepsilon_n \mid \sigma_n),

    computed by :func:`ncmle_prob.objectives.noised_nll`. Under ``torchrun`` the same call
    trains with DDP: each of the K processes takes its DistributedSampler share of the global
    batch and the same rows of the noise, so the run matches a single process up to float
    reduction order. Only rank 0 logs, evaluates and writes checkpoints. Torch's global RNG
    (dropout) is reseeded from ``(seed, rank, step)`` at each step under
    :func:`torch.random.fork_rng`, so the caller's RNG is untouched and a resumed run is
    bit-identical to an uninterrupted one on CPU.

    The options are the fields of :class:`~ncmle_prob.training.FitConfig`, given either as a
    ``config`` or as keywords (keywords override the ``config``'s fields):
    ``fit(model, x, steps=100, lr=1e-3)`` and ``fit(model, x, FitConfig(steps=100, lr=1e-3))``
    are the same run.

    Args:
        model: a module whose call returns a noise-conditional distribution (e.g. ``MADE``).
        train_data: clean data: a tensor ``(N, *event_shape)`` (finite, checked once), a
            map-style :class:`~torch.utils.data.Dataset` of examples or of
            ``(example, label, ...)`` tuples (read by a DataLoader with ``num_workers``
            workers; each batch is checked on the CPU), or a
            :class:`~torch.utils.data.DataLoader` used as given (see
            :mod:`ncmle_prob.training.batches` for what that means for exact resume). The
            data sets of :func:`ncmle_prob.data.load_dataset` carry their ``bins``.
        config: a :class:`~ncmle_prob.training.FitConfig`; default: its defaults.
        eval_data: clean held-out data (tensor or Dataset) for bits/dim evaluations.
        callback: called as ``callback(step, info)`` after every optimizer step.
        **options: any :class:`~ncmle_prob.training.FitConfig` field: ``prior``, ``steps``,
            ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``grad_clip``, ``ema``,
            ``amp``, ``device``, ``eval_sigmas``, ``eval_every``, ``patience``, ``monitor``,
            ``min_delta``, ``restore_best``, ``bins``,
            ``checkpoint_dir``, ``checkpoint_every``, ``resume``, ``seed``, ``log_every``,
            ``progress``, ``num_workers``, ``pin_memory``, ``meta``.

    With ``patience`` set, training stops once that many evaluations in a row have not
    improved the validation bits/dim at ``monitor`` (see
    :mod:`ncmle_prob.training.early_stopping`); the model then ends with the best evaluated
    weights (``restore_best``), also written to ``checkpoint_dir/best.pt``.

    Returns:
        The :class:`History` (on every rank; evaluations only on rank 0); ``best_step`` and
        ``stop_reason`` say where the best evaluation was and why the run stopped.

    Raises:
        TypeError: an unknown option, or data of the wrong type.
        ValueError: an invalid option value (the message names it) or bad data.
        NonFiniteLossError: the loss or gradient became NaN/inf; the weights are those of the
            last good step and the last checkpoint is left as it was.

    Example:
        >>> import torch
        >>> from ncmle_prob.models import MADE
        >>> _ = torch.manual_seed(0)
        >>> model = MADE(features=2, hidden_features=16)
        >>> hist = fit(model, torch.randn(256, 2), steps=20, batch_size=64, progress=False,
        ...            eval_data=torch.randn(64, 2), eval_sigmas=[0.0, 0.3])
        >>> len(hist.losses), sorted(hist.last_eval)
        (2, [0.0, 0.3])

        A ``Dataset`` works the same way:

        >>> from torch.utils.data import TensorDataset
        >>> hist = fit(model, TensorDataset(torch.randn(256, 2)), steps=10, batch_size=64,
        ...            progress=False)
        >>> hist.losses[-1][0]
        10
    """
    cfg = FitConfig.from_options(config, **options)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    ctx = setup(cfg.device)
    try:
        trainer = Trainer(model, train_data, cfg, ctx, eval_data=eval_data, callback=callback)
        return trainer.run()
    finally:
        teardown(ctx)
