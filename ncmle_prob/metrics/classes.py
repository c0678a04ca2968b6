r"""Metrics on a classifier's predicted classes: histogram TV distance and confident fraction.

Both take class probabilities ``(N, C)`` (a softmax of the shipped classifier's logits, see
:func:`ncmle_prob.metrics.image_features`).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["class_histogram", "class_tv", "confident_fraction"]


def _check_probs(name: str, p: Tensor) -> Tensor:
    if not isinstance(p, Tensor) or p.dim() != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        shape = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
        raise ValueError(f"{name} must be a (N >= 1, C >= 2) tensor of class probabilities, "
                         f"got {shape}")
    if not torch.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or inf")
    if bool((p < 0).any()) or not torch.allclose(
        p.sum(1, dtype=torch.float64), torch.ones(p.shape[0], dtype=torch.float64), atol=1e-4
    ):
        raise ValueError(f"{name} rows must be probabilities (non-negative, summing to 1)")
    return p


def class_histogram(probs: Tensor) -> Tensor:
    """Share of points predicted as each class (argmax), ``(C,)`` in float64."""
    p = _check_probs("probs", probs)
    counts = torch.bincount(p.argmax(1), minlength=p.shape[1])
    return counts.to(torch.float64) / p.shape[0]


def class_tv(real: Tensor, fake: Tensor) -> float:
    r"""Total-variation distance of the predicted-class histograms :math:`h_r, h_f`.

    .. math:: \mathrm{TV} = \tfrac12 \sum_c \lvert h_r(c) - h_f(c) \rvert \in [0, 1]

    Example:
        >>> eye = torch.eye(4)
        >>> class_tv(eye, eye), class_tv(eye, eye[[0, 0, 0, 0]])
        (0.0, 0.75)
    """
    hr, hf = class_histogram(real), class_histogram(fake)
    if hr.shape != hf.shape:
        raise ValueError(f"class counts differ: real {hr.shape[0]}, fake {hf.shape[0]}")
    return float(0.5 * (hr - hf).abs().sum())


def confident_fraction(probs: Tensor, threshold: float = 0.9) -> float:
    r"""Share of points whose top class probability is at least ``threshold``.

    .. math:: \frac1N \sum_n \mathbb 1\big[\max_c p_n(c) \ge t\big]

    Example:
        >>> confident_fraction(torch.tensor([[0.95, 0.05], [0.6, 0.4]]), 0.9)
        0.5
    """
    p = _check_probs("probs", probs)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    return float((p.max(1).values >= threshold).double().mean())
