"""Bounded memory: no sampler keeps an autograd graph (or history) across steps, and large
requests run in batches.

The measure is the peak number of tensors that autograd graphs hold alive at once (saved for
backward), counted with :func:`torch.autograd.graph.saved_tensors_hooks`. It is exact and
immune to other processes, unlike resident memory. A graph kept across steps (the old
``grid_metropolis``: ``lp = where(acc, lp_y, lp)`` chained every step's forward graph into
the next) makes the peak grow in proportion to the steps; a sampler that frees each step's
graph has the same peak for 4 steps as for 40. Tolerance: exact equality (the count is an
integer and the computation per step is the same).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch

from ncmle_prob import samplers
from ncmle_prob.distributions import NoisyGaussian
from ncmle_prob.models import MADE, PixelCNNPP


class _Count:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0


class _Saved:
    """What the pack hook stores: the tensor, counted while the graph holds it."""

    __slots__ = ("count", "tensor")

    def __init__(self, tensor: torch.Tensor, count: _Count) -> None:
        self.tensor, self.count = tensor, count
        count.now += 1
        count.peak = max(count.peak, count.now)

    def __del__(self) -> None:
        self.count.now -= 1


@contextmanager
def saved_tensors() -> Iterator[_Count]:
    count = _Count()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: _Saved(t, count),
                                                  lambda s: s.tensor):
        yield count


def peak_saved(call: Callable[[], object]) -> int:
    with saved_tensors() as count:
        call()
    return count.peak


@pytest.fixture(scope="module")
def pixelcnn() -> PixelCNNPP:
    torch.manual_seed(0)
    return PixelCNNPP((1, 4, 4), filters=4, resnets=1, bins=5, components=2)


@pytest.fixture(scope="module")
def made() -> MADE:
    torch.manual_seed(0)
    return MADE(3, hidden_features=8, family="logistic_mixture", components=2)


def _draw(dist, method: str, **opts) -> Callable[[], object]:
    g = torch.Generator().manual_seed(0)
    return lambda: samplers.sample(dist, 6, method, generator=g, **opts)


def test_grid_metropolis_keeps_no_graph_across_steps(pixelcnn: PixelCNNPP) -> None:
    """The regression of issue 19: grid steps 4 vs 40 (failed before: 10x the saved tensors)."""
    d = pixelcnn(0.0)
    opts = {"num_levels": 2, "steps_per_level": 1}
    few = peak_saved(_draw(d, "score_corrected_ancestral", grid_steps=4, **opts))
    many = peak_saved(_draw(d, "score_corrected_ancestral", grid_steps=40, **opts))
    assert few == many


@pytest.mark.parametrize("method", ["annealed_langevin", "score_corrected_ancestral"])
def test_annealing_peak_is_flat_in_steps_and_levels(made: MADE, method: str) -> None:
    d = made(0.0)
    base = peak_saved(_draw(d, method, num_levels=2, steps_per_level=4))
    assert base > 0  # the score pass does save tensors: the measure sees graphs
    assert peak_saved(_draw(d, method, num_levels=2, steps_per_level=40)) == base
    assert peak_saved(_draw(d, method, num_levels=8, steps_per_level=4)) == base


def test_ancestral_and_jacobi_keep_no_graph(pixelcnn: PixelCNNPP) -> None:
    assert peak_saved(_draw(pixelcnn(0.0), "ancestral")) == 0
    assert peak_saved(_draw(pixelcnn(0.0), "jacobi")) == 0


def test_pyro_mala_peak_is_flat_in_steps(made: MADE) -> None:
    d = made(0.3)
    few = peak_saved(_draw(d, "pyro_mala", warmup_steps=4))
    assert peak_saved(_draw(d, "pyro_mala", warmup_steps=40)) == few


def test_restore_peak_is_flat_in_steps(made: MADE) -> None:
    from ncmle_prob.infer import restore

    prior = made(0.1)
    y = torch.zeros(2, 3)

    def run(steps: int) -> Callable[[], object]:
        return lambda: restore(prior, y, None, 0.5, num_samples=steps, warmup_steps=steps, seed=0)

    assert peak_saved(run(4)) == peak_saved(run(40))


def test_batch_size_splits_the_request_and_bounds_the_peak(made: MADE) -> None:
    """Peak saved tensors of a batch of 4 are those of a request of 4, whatever n; the info
    reports the batches; a bad value names the option."""
    d = made(0.0)
    opts = {"num_levels": 2, "steps_per_level": 2}
    g = torch.Generator().manual_seed(0)
    small = peak_saved(lambda: samplers.sample(d, 4, "annealed_langevin", generator=g, **opts))
    x, info = samplers.sample(d, 10, "annealed_langevin", generator=g, batch_size=4,
                              return_info=True, **opts)
    assert x.shape == (10, 3) and info.batches == 3
    big = peak_saved(lambda: samplers.sample(d, 12, "annealed_langevin", generator=g,
                                             batch_size=4, **opts))
    assert big == small
    with pytest.raises(ValueError, match=r"batch_size.*>= 1"):
        samplers.get("ancestral", batch_size=0)


def test_function_samplers_get_batch_size_too() -> None:
    d = NoisyGaussian(torch.zeros(2), torch.eye(2))
    calls: list[int] = []

    @samplers.register("counting_sampler")
    def counting(dist, num_samples, *, generator=None, progress=False, scale: float = 1.0):
        calls.append(num_samples)
        return scale * dist.sample((num_samples,), generator=generator)

    try:
        assert "batch_size" in samplers.options("counting_sampler")
        assert samplers.sample(d, 7, "counting_sampler", batch_size=3).shape == (7, 2)
        assert calls == [3, 3, 1]
    finally:
        samplers.unregister("counting_sampler")


def test_restore_batch_size_keeps_the_draws(made: MADE) -> None:
    """Chain b is seeded with seed + b in any batch, so batches change nothing but memory
    (tolerance 1e-4: only float rounding of different matmul batch sizes differs)."""
    from ncmle_prob.infer import restore

    prior = made(0.1)
    y = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    kw = {"num_samples": 5, "warmup_steps": 5, "seed": 3}
    whole = restore(prior, y, None, 0.5, **kw)
    parts = restore(prior, y, None, 0.5, batch_size=2, **kw)
    assert torch.allclose(whole.samples, parts.samples, atol=1e-4)
    assert len(parts.diagnostics) == 5 and parts.diagnostics[4]["seed"] == 7
    with pytest.raises(ValueError, match="batch_size"):
        restore(prior, y, None, 0.5, batch_size=0, **kw)
