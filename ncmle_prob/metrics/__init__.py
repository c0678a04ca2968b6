"""Sample-quality metrics in a classifier's feature space, each beside its real-vs-real floor.

* :func:`image_scores`: images in, every metric and its floor at the same set sizes out;
* :func:`score_with_floor`: the same for any metric on precomputed features;
* :func:`fcd`, :func:`kid`, :func:`precision`, :func:`recall`, :func:`class_tv`,
  :func:`confident_fraction`: the metrics themselves;
* :func:`load_classifier`: the shipped classifiers (``digits``, ``mnist``, ``mnist14``).

Example:
    >>> from ncmle_prob.data import load_digits
    >>> data = load_digits()
    >>> s = image_scores(data.test[:100], data.test[100:], "digits", metrics=("fcd", "kid"))
    >>> sorted(s)[:4], s["num_samples"], s["num_reference"]
    (['fcd', 'fcd_floor', 'fcd_floor_std', 'fcd_std'], 100, 159)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .classes import class_histogram, class_tv, confident_fraction
from .classifier import SHIPPED, FeatureClassifier, downsample_images, load_classifier
from .fcd import fcd, kid, real_vs_real
from .floor import FEATURE_METRICS, PROB_METRICS, ScoreWithFloor, metric_fn, score_with_floor
from .manifold import knn_radii, manifold_fraction, precision, precision_recall, recall

__all__ = [
    "DEFAULT_METRICS",
    "FEATURE_METRICS",
    "PROB_METRICS",
    "SHIPPED",
    "FeatureClassifier",
    "ScoreWithFloor",
    "class_histogram",
    "class_tv",
    "confident_fraction",
    "downsample_images",
    "fcd",
    "image_features",
    "image_scores",
    "kid",
    "knn_radii",
    "load_classifier",
    "manifold_fraction",
    "metric_fn",
    "precision",
    "precision_recall",
    "real_vs_real",
    "recall",
    "score_with_floor",
]

#: What :func:`image_scores` computes by default.
DEFAULT_METRICS = ("fcd", "kid", "precision", "recall", "class_tv", "confident")


@torch.no_grad()
def image_features(
    net: FeatureClassifier, x: Tensor, batch: int = 500
) -> tuple[Tensor, Tensor]:
    """Penultimate features ``(N, D)`` and class probabilities ``(N, C)`` of images, on CPU.

    Args:
        net: a classifier (e.g. :func:`load_classifier`), on any device.
        x: ``(N, 1, H, W)`` images in [-1, 1], on any device.
        batch: images per forward pass.

    Example:
        >>> f, p = image_features(load_classifier("digits"), torch.zeros(3, 1, 8, 8))
        >>> f.shape, p.shape
        (torch.Size([3, 128]), torch.Size([3, 10]))
    """
    if not isinstance(x, Tensor) or not torch.isfinite(x).all():
        raise ValueError("images must be a tensor without NaN or inf")
    p = net.out.weight
    feats, probs = [], []
    for i in range(0, x.shape[0], batch):
        h = net.features(x[i : i + batch].to(p))
        feats.append(h.float().cpu())
        probs.append(torch.softmax(net.out(h).double(), -1).cpu())
    return torch.cat(feats), torch.cat(probs)


def image_scores(
    samples: Tensor,
    real: Tensor,
    dataset: str | FeatureClassifier = "digits",
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    num_reference: int | None = None,
    repeats: int = 3,
    seed: int = 0,
    device: str | torch.device | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Each metric of ``samples`` against ``real`` images beside its floor, at the same sizes.

    The classifier's features (and class probabilities) of both sets go to
    :func:`score_with_floor`: ``repeats`` random splits of ``real`` into a reference set of
    ``num_reference`` images (default ``len(real) - len(samples)``) and a held-out set of
    ``len(samples)`` images; the score compares the reference with the samples, the floor
    with the held-out real images. So it needs ``len(real) >= 2 len(samples)`` at least for a
    reference as large as the sample set.

    Args:
        samples: ``(M, 1, H, W)`` generated images in [-1, 1].
        real: ``(N, 1, H, W)`` held-out real images (never the training set).
        dataset: a shipped classifier's data set name (:data:`SHIPPED`), or a classifier.
        metrics: names from :data:`FEATURE_METRICS` and :data:`PROB_METRICS`.
        num_reference: reference images per split.
        repeats: resplits (the spread needs >= 2).
        seed: seed of the splits and of KID's subsets.
        device: where the metrics are computed (default: CPU; e.g. ``"cuda"`` for the k-NN
            distances of large sets).
        **options: metric options (``k``, ``threshold``, ``kid_subsets``, ``kid_subset_size``;
            see :func:`metric_fn`).

    Returns:
        For every metric ``m``: ``m``, ``m_std``, ``m_floor``, ``m_floor_std`` (means and
        standard deviations over resplits); and ``num_samples``, ``num_reference``,
        ``repeats``.
    """
    unknown = [m for m in metrics if m not in FEATURE_METRICS and m not in PROB_METRICS]
    if unknown or not metrics:
        raise ValueError(
            f"metrics must be a non-empty list of {sorted({**FEATURE_METRICS, **PROB_METRICS})},"
            f" got {list(metrics)}"
        )
    if not isinstance(samples, Tensor) or not torch.isfinite(samples).all():
        raise ValueError("samples must be a tensor without NaN or inf")
    net = load_classifier(dataset) if isinstance(dataset, str) else dataset
    g = torch.Generator().manual_seed(seed)
    fr, pr = image_features(net, real)
    ff, pf = image_features(net, samples)
    if device is not None:
        fr, pr, ff, pf = (t.to(device) for t in (fr, pr, ff, pf))
    out: dict[str, Any] = {}
    for m in metrics:
        a, b = (fr, ff) if m in FEATURE_METRICS else (pr, pf)
        s = score_with_floor(m, a, b, num_reference=num_reference, repeats=repeats,
                             generator=g, **options)
        out.update({m: s.score, f"{m}_std": s.score_std, f"{m}_floor": s.floor,
                    f"{m}_floor_std": s.floor_std})
        out.update(num_samples=s.num_samples, num_reference=s.num_reference, repeats=s.repeats)
    return out
