r"""A score beside its real-vs-real floor, both at the same set sizes, with a run-to-run spread.

Sample metrics such as FCD and KID are biased at finite set sizes, and the bias depends on the
sizes: FCD of two independent sets of the *same* law is about
:math:`\operatorname{tr}\Sigma\,(1/M + 1/N)` plus a covariance term. A floor is only
comparable with a score when both compare sets of the same sizes. :func:`score_with_floor`
therefore splits the ``N`` real points, ``repeats`` times at random, into disjoint parts

.. math::

    \text{ref}_j \ (N_\text{ref} \text{ points}), \qquad
    \text{held}_j \ (M \text{ points}), \qquad \text{ref}_j \cap \text{held}_j = \emptyset,

and returns the means and standard deviations over :math:`j` of

.. math::

    \text{score}_j = m(\text{ref}_j, \text{fake}), \qquad
    \text{floor}_j = m(\text{ref}_j, \text{held}_j),

where ``fake`` are the ``M`` samples: the score and the floor both compare ``M`` points with
the same :math:`N_\text{ref}` reference points. The floor's spread is the run-to-run spread a
perfect model's score would have at these sizes, so a difference of scores smaller than a few
``floor_std`` is not a difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from .classes import class_tv, confident_fraction
from .fcd import fcd, kid
from .manifold import precision, recall

__all__ = ["FEATURE_METRICS", "PROB_METRICS", "ScoreWithFloor", "metric_fn", "score_with_floor"]

Metric = Callable[[Tensor, Tensor], float]

#: Metrics on classifier features (``(N, D)``): name -> description.
FEATURE_METRICS = {
    "fcd": "Fréchet classifier distance (lower is better)",
    "kid": "kernel distance, unbiased MMD² with a cubic kernel (lower is better)",
    "precision": "share of samples inside the real k-NN manifold (higher is better)",
    "recall": "share of real images inside the samples' k-NN manifold (higher is better)",
}
#: Metrics on class probabilities (``(N, C)``): name -> description.
PROB_METRICS = {
    "class_tv": "TV distance of predicted-class histograms (lower is better)",
    "confident": "share of images classified with max softmax >= threshold (higher is better)",
}


def metric_fn(
    name: str,
    *,
    k: int = 3,
    threshold: float = 0.9,
    kid_subsets: int = 10,
    kid_subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> Metric:
    """The metric ``name`` as a function ``m(reference, other) -> float``.

    Args:
        name: one of :data:`FEATURE_METRICS` or :data:`PROB_METRICS`.
        k: neighbour rank of precision/recall.
        threshold: softmax threshold of ``confident`` (which only looks at ``other``).
        kid_subsets, kid_subset_size: subsets averaged by KID.
        generator: random generator of KID's subsets.

    Example:
        >>> m = metric_fn("fcd")
        >>> m(torch.zeros(5, 2) + torch.eye(5, 2), torch.zeros(5, 2) + torch.eye(5, 2))
        0.0
    """
    if name == "fcd":
        return fcd
    if name == "kid":
        return lambda a, b: kid(a, b, subsets=kid_subsets, subset_size=kid_subset_size,
                                generator=generator)[0]
    if name == "precision":
        return lambda a, b: precision(a, b, k)
    if name == "recall":
        return lambda a, b: recall(a, b, k)
    if name == "class_tv":
        return class_tv
    if name == "confident":
        return lambda a, b: confident_fraction(b, threshold)
    raise ValueError(
        f"metric must be one of {sorted({**FEATURE_METRICS, **PROB_METRICS})}, got {name!r}"
    )


@dataclass(frozen=True)
class ScoreWithFloor:
    """A score and its real-vs-real floor at the same set sizes.

    Attributes:
        metric: the metric's name (or ``"custom"``).
        score: mean over resplits of :math:`m(\\text{ref}_j, \\text{fake})`.
        score_std: its standard deviation over resplits (the reference side's share of the
            run-to-run spread; ``nan`` for one resplit).
        floor: mean over resplits of :math:`m(\\text{ref}_j, \\text{held}_j)`.
        floor_std: its standard deviation over resplits (the run-to-run spread of a perfect
            model's score at these sizes; ``nan`` for one resplit).
        num_samples: ``M``, the size of ``fake`` and of every held-out real set.
        num_reference: :math:`N_\\text{ref}`, the size of every reference set.
        repeats: number of resplits.
    """

    metric: str
    score: float
    score_std: float
    floor: float
    floor_std: float
    num_samples: int
    num_reference: int
    repeats: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields."""
        return asdict(self)


def _mean_std(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), (float(t.std()) if len(values) > 1 else math.nan)


def score_with_floor(
    metric: str | Metric,
    real: Tensor,
    fake: Tensor,
    *,
    num_reference: int | None = None,
    repeats: int = 3,
    generator: torch.Generator | None = None,
    **options: Any,
) -> ScoreWithFloor:
    r"""A metric of ``fake`` against ``real``, beside its floor at the same set sizes.

    See the module docstring for the resplits. Needs
    :math:`N \ge N_\text{ref} + M`; by default :math:`N_\text{ref} = N - M` (the largest
    reference that leaves a held-out set as large as ``fake``).

    Args:
        metric: a name of :data:`FEATURE_METRICS` / :data:`PROB_METRICS` (``options`` go to
            :func:`metric_fn`), or a function ``m(reference, other) -> float``.
        real: ``(N, D)`` real features (or class probabilities for the class metrics).
        fake: ``(M, D)`` features of the samples.
        num_reference: :math:`N_\text{ref}`.
        repeats: random resplits (3 or more for a spread).
        generator: random generator of the resplits (and of KID's subsets by name).
        **options: metric options for a metric given by name.

    Returns:
        :class:`ScoreWithFloor`.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> real = torch.randn(3000, 4, generator=g)
        >>> s = score_with_floor("fcd", real, torch.randn(500, 4, generator=g) + 0.5,
        ...                      generator=g)
        >>> s.num_samples, s.num_reference
        (500, 2500)
        >>> abs(s.score - s.floor - 4 * 0.5**2) < 0.2  # the mean shift's closed form
        True
    """
    if isinstance(metric, str):
        fn, name = metric_fn(metric, generator=generator, **options), metric
    elif callable(metric):
        if options:
            raise TypeError(f"options {sorted(options)} only apply to a metric given by name")
        fn, name = metric, "custom"
    else:
        raise TypeError(f"metric must be a name or a callable, got {type(metric).__name__}")
    for label, t in (("real", real), ("fake", fake)):
        if not isinstance(t, Tensor) or t.dim() != 2:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{label} must be a (N, D) tensor, got {shape}")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    n, m = real.shape[0], fake.shape[0]
    n_ref = n - m if num_reference is None else int(num_reference)
    if n_ref < 2 or n_ref + m > n:
        raise ValueError(
            f"need 2 <= num_reference and num_reference + len(fake) <= len(real) for disjoint "
            f"reference and held-out sets; got num_reference={n_ref}, len(fake)={m}, "
            f"len(real)={n}"
        )
    if int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    scores, floors = [], []
    for _ in range(int(repeats)):
        perm = torch.randperm(n, generator=generator).to(real.device)
        held, ref = real[perm[:m]], real[perm[m : m + n_ref]]
        scores.append(float(fn(ref, fake)))
        floors.append(float(fn(ref, held)))
    s, s_std = _mean_std(scores)
    f, f_std = _mean_std(floors)
    return ScoreWithFloor(name, s, s_std, f, f_std, m, n_ref, int(repeats))
