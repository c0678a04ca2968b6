"""scikit-learn's 8×8 handwritten digits: the embedded default data set (17 grey levels)."""

from __future__ import annotations

import torch

from .base import ImageData, to_grid

__all__ = ["load_digits"]


def load_digits(bins: int = 17) -> ImageData:
    """The 1797 8×8 digits shipped with scikit-learn, on a grid of ``bins`` levels in [-1, 1].

    The split is fixed and documented: every fifth image (index ≡ 4 mod 5) is a test image,
    giving 1438 training and 359 test images with every class in both.

    Args:
        bins: grid levels; 17 (the data's own 0..16) or fewer (re-quantised).

    Raises:
        ImportError: scikit-learn is not installed (``pip install "ncmle_prob[data]"``).

    Example:
        >>> d = load_digits()
        >>> d.train.shape, d.test.shape, d.bins, float(d.train.min()), float(d.train.max())
        (torch.Size([1438, 1, 8, 8]), torch.Size([359, 1, 8, 8]), 17, -1.0, 1.0)
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as e:
        raise ImportError(
            "the digits data set ships with scikit-learn: pip install 'ncmle_prob[data]'"
        ) from e
    raw = _sk_load_digits()
    images = torch.as_tensor(raw.images).round().long().reshape(-1, 1, 8, 8)
    labels = torch.as_tensor(raw.target).long()
    test = torch.arange(images.shape[0]) % 5 == 4
    x = to_grid(images, 16, bins)
    return ImageData(
        name="digits",
        train=x[~test],
        test=x[test],
        bins=bins,
        image_shape=(1, 8, 8),
        train_labels=labels[~test],
        test_labels=labels[test],
        source="sklearn.datasets.load_digits",
    )
