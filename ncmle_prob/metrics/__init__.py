"""Sample-quality metrics in a classifier's feature space: FCD and KID with their floors.

Example:
    >>> from ncmle_prob.data import load_digits
    >>> data = load_digits()
    >>> scores = image_scores(data.test[:100], data.test[100:300], "digits")
    >>> sorted(scores)
    ['fcd', 'fcd_floor', 'fcd_floor_se', 'kid', 'kid_floor', 'kid_floor_se', 'kid_se']
"""

from __future__ import annotations

import torch
from torch import Tensor

from .classifier import SHIPPED, FeatureClassifier, load_classifier
from .fcd import fcd, kid, real_vs_real

__all__ = [
    "SHIPPED",
    "FeatureClassifier",
    "fcd",
    "image_scores",
    "kid",
    "load_classifier",
    "real_vs_real",
]


@torch.no_grad()
def _features(net: FeatureClassifier, x: Tensor, batch: int = 500) -> Tensor:
    p = net.out.weight
    return torch.cat([net.features(x[i : i + batch].to(p)) for i in range(0, x.shape[0], batch)])


def image_scores(
    samples: Tensor,
    real: Tensor,
    dataset: str | FeatureClassifier = "digits",
    *,
    repeats: int = 3,
    kid_subsets: int = 50,
    seed: int = 0,
) -> dict[str, float]:
    """FCD and KID of ``samples`` against ``real`` images, beside the real-vs-real floor.

    The floor compares two disjoint random subsets of ``real`` of ``len(samples)`` images
    each (so it needs ``len(real) >= 2 len(samples)``), i.e. the value a perfect model would
    get with this many samples.

    Args:
        samples: ``(M, 1, H, W)`` generated images in [-1, 1].
        real: ``(N, 1, H, W)`` held-out real images.
        dataset: a shipped classifier's data set name, or a classifier.
        repeats: random splits for the floor.
        kid_subsets: subsets averaged by KID.
        seed: seed of the subset draws.

    Returns:
        ``fcd``, ``kid``, ``kid_se`` and ``fcd_floor``, ``kid_floor`` with standard errors.
    """
    net = load_classifier(dataset) if isinstance(dataset, str) else dataset
    if not torch.isfinite(samples).all():
        raise ValueError("samples contain NaN or inf")
    g = torch.Generator().manual_seed(seed)
    fr, ff = _features(net, real).cpu(), _features(net, samples).cpu()
    m = ff.shape[0]
    size = min(m, fr.shape[0] // 2)
    k, k_se = kid(fr, ff, subsets=kid_subsets, generator=g)
    fl, fl_se = real_vs_real(fcd, fr, size=size, repeats=repeats, generator=g)

    def kid_mean(a: Tensor, b: Tensor) -> float:
        return kid(a, b, subsets=max(1, kid_subsets // 5), generator=g)[0]

    kf, kf_se = real_vs_real(kid_mean, fr, size=size, repeats=repeats, generator=g)
    return {
        "fcd": fcd(fr, ff),
        "kid": k,
        "kid_se": k_se,
        "fcd_floor": fl,
        "fcd_floor_se": fl_se,
        "kid_floor": kf,
        "kid_floor_se": kf_se,
    }
