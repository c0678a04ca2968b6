r"""Large requests in batches: bounded memory at any ``num_samples``.

Every sampler has the option ``batch_size``. A request of :math:`n` draws runs as
:math:`\lceil n / b\rceil` independent runs of at most :math:`b` draws, one after another on
the same generator, and the draws are concatenated; each run keeps only its own states (no
graph or history crosses steps), so the peak memory is that of one batch, whatever :math:`n`
and however many steps. The :class:`~ncmle_prob.samplers.SampleInfo` of the request merges
the batches' (:func:`~ncmle_prob.samplers.info.merge_infos`).

The default ``batch_size=None`` allows :data:`ELEMENTS_PER_BATCH` scalar values per batch:
:math:`b = \max(1, \lfloor 2^{15} / D\rfloor)` for events of :math:`D` values (times the
batch shape): 167 draws for a 14×14 image, 16384 for a 2-D point. It keeps a 14×14
PixelCNN++ (32 filters, one resnet) under 2 GB of peak memory on CPU for n = 1000 with every
built-in sampler (``benchmarks/bench_memory.py``). Batches change how the generator's stream
is split, so draws with a given seed depend on ``batch_size``.

Example:
    >>> import torch
    >>> from ncmle_prob import samplers
    >>> from ncmle_prob.distributions import NoisyGaussian
    >>> d = NoisyGaussian(torch.zeros(2), torch.eye(2))
    >>> x, info = samplers.sample(d, 10, "ancestral", batch_size=4, return_info=True)
    >>> x.shape, info.batches
    (torch.Size([10, 2]), 3)
    >>> default_batch_size(d)
    16384
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import Tensor

from ..distributions import NoiseConditionalDistribution
from .info import SampleInfo, merge_infos

__all__ = ["ELEMENTS_PER_BATCH", "check_batch_size", "default_batch_size", "run_in_batches"]

#: Scalar values per batch of the default ``batch_size`` (draws times values per draw).
ELEMENTS_PER_BATCH = 2**15

Run = Callable[..., tuple[Tensor, SampleInfo]]


def check_batch_size(value: object) -> int | None:
    """``value`` if it is ``None`` or an integer >= 1; else a :class:`ValueError` naming the
    option."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"option 'batch_size' must be an integer >= 1 or None, got {value!r}")
    return value


def default_batch_size(dist: NoiseConditionalDistribution) -> int:
    r""":math:`\max(1, \lfloor` :data:`ELEMENTS_PER_BATCH` :math:`/ D\rfloor)` draws, with
    :math:`D` the values of one draw (``batch_shape`` times ``event_shape``)."""
    per_draw = math.prod(dist.batch_shape) * math.prod(dist.event_shape)
    return max(1, ELEMENTS_PER_BATCH // max(per_draw, 1))


def run_in_batches(
    run: Run,
    dist: NoiseConditionalDistribution,
    num_samples: int,
    batch_size: int | None,
    *,
    generator: torch.Generator | None,
    progress: bool,
    desc: str,
) -> tuple[Tensor, SampleInfo]:
    """Calls ``run(dist, m, generator=, progress=)`` on batches of at most ``batch_size``
    draws and concatenates them.

    With ``progress`` a tqdm bar counts the draws (draws/s and an ETA across batches);
    the sampler's own bar, if any, shows the steps within the current batch.
    """
    from tqdm.auto import tqdm

    size = default_batch_size(dist) if batch_size is None else batch_size
    sizes = [min(size, num_samples - i) for i in range(0, num_samples, size)]
    outs: list[Tensor] = []
    infos: list[SampleInfo] = []
    with tqdm(total=num_samples, unit="draw", desc=desc, disable=not progress,
              dynamic_ncols=True) as bar:
        for m in sizes:
            start = time.perf_counter()
            x, info = run(dist, m, generator=generator, progress=progress)
            info.seconds = time.perf_counter() - start
            outs.append(x.detach())
            infos.append(info)
            bar.update(m)
    x = outs[0] if len(outs) == 1 else torch.cat(outs)
    return x, merge_infos(infos, sizes)
