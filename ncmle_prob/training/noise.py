"""Reproducible noise for NCMLE training: draws keyed by (seed, purpose, step).

Every optimizer step draws the noise levels :math:`\\sigma_n \\sim \\pi` and the noise
:math:`\\varepsilon_n` for the whole *global* batch from a generator seeded by
``(seed, step)``; each rank keeps the rows of its own examples. Hence

* the draws of different ranks differ (they are different rows),
* a run on K processes sees exactly the noise that one process sees on the combined batch,
* a resumed run redraws exactly the noise the interrupted one would have drawn,

with no generator state to save. The cost is drawing K× the local batch's noise on each rank,
small next to a forward and backward pass.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from ..objectives import NoiseLevelPrior

__all__ = ["draw_noise", "keyed_generator", "keyed_seed"]


def keyed_generator(seed: int, purpose: str, step: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded by a hash of ``(seed, purpose, step)``.

    Example:
        >>> a = torch.rand(2, generator=keyed_generator(0, "noise", 5, torch.device("cpu")))
        >>> b = torch.rand(2, generator=keyed_generator(0, "noise", 5, torch.device("cpu")))
        >>> bool(torch.equal(a, b))
        True
    """
    g = torch.Generator(device=device)
    g.manual_seed(keyed_seed(seed, purpose, step))
    return g


def keyed_seed(seed: int, purpose: str, step: int) -> int:
    """A 63-bit seed hashed from ``(seed, purpose, step)`` (blake2b, stable across runs)."""
    digest = hashlib.blake2b(f"{seed}:{purpose}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def draw_noise(
    prior: NoiseLevelPrior,
    global_batch: int,
    event_shape: torch.Size,
    *,
    seed: int,
    step: int,
    rank: int = 0,
    world_size: int = 1,
    dtype: torch.dtype = torch.float32,
    device: torch.device = torch.device("cpu"),
) -> tuple[Tensor, Tensor | None]:
    """σ and ε for this rank's examples of global step ``step``.

    Global batch row ``i`` belongs to rank ``i % world_size`` (the layout of
    :class:`torch.utils.data.DistributedSampler`), so rank ``r`` keeps rows ``r::world_size``.

    Returns:
        ``(sigma, noise)`` of shapes ``(b,)`` and ``(b, *event_shape)``; ``noise`` is ``None``
        when every σ is 0 (plain MLE draws no noise at all).
    """
    g = keyed_generator(seed, "noise", step, device)
    sigma = prior.sample(global_batch, dtype=dtype, device=device, generator=g)
    if prior.p_zero >= 1.0:
        return sigma[rank::world_size], None
    noise = torch.randn((global_batch, *event_shape), dtype=dtype, device=device, generator=g)
    return sigma[rank::world_size], noise[rank::world_size]
