"""Small image classifiers whose penultimate features define FCD and KID.

Following TF-GAN's MNIST practice, sample quality on small grey-scale data sets is measured in
the feature space of a classifier trained on the same data set rather than Inception-v3's.
The weights ship in the package (``ncmle_prob/metrics/weights/<dataset>.pt``) and are
reproduced by ``scripts/train_classifiers.py``.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SHIPPED", "FeatureClassifier", "downsample_images", "load_classifier"]

#: Data sets with shipped classifier weights (``mnist14``: MNIST pooled to 14×14, see
#: :func:`downsample_images`).
SHIPPED = ("digits", "mnist", "mnist14")


def downsample_images(x: Tensor, factor: int = 2, *, bins: int = 256) -> Tensor:
    r"""Average-pools grid images by ``factor`` and re-quantises them to ``bins`` levels.

    For images on the grid of ``bins`` levels of [-1, 1] (bin width :math:`\Delta = 2/(\text
    {bins}-1)`), each output pixel is the mean of a ``factor``×``factor`` block, snapped back
    to the grid:

    .. math::

        y = \Delta \,\mathrm{round}\Big(\frac{\bar x + 1}{\Delta}\Big) - 1 .

    This is how the ``mnist14`` classifier's data (28×28 → 14×14, 256 levels) were made.

    Args:
        x: ``(N, C, H, W)`` images in [-1, 1]; ``H`` and ``W`` divisible by ``factor``.
        factor: pooling factor (a positive integer).
        bins: grid levels of the output.

    Example:
        >>> x = torch.tensor([[[[-1.0, 1.0], [1.0, 1.0]]]])
        >>> downsample_images(x, 2, bins=5)  # mean 0.5 is on the 5-level grid
        tensor([[[[0.5000]]]])
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a (N, C, H, W) tensor, got {shape}")
    if int(factor) != factor or factor < 1 or x.shape[2] % factor or x.shape[3] % factor:
        raise ValueError(
            f"factor must be a positive integer dividing H and W, got {factor!r} for "
            f"images of {tuple(x.shape[2:])}"
        )
    if int(bins) != bins or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    width = 2.0 / (bins - 1)
    mean = F.avg_pool2d(x.to(torch.float64), int(factor))
    return (torch.round((mean + 1) / width) * width - 1).to(x.dtype)


class FeatureClassifier(nn.Module):
    """A small CNN for ``(N, 1, H, W)`` images in [-1, 1] with a ``features`` head.

    Three 3×3 convolutions (one 2× max-pool), a ``pool``×``pool`` adaptive average pool and a
    hidden layer of ``feature_dim`` units, whose ReLU activations are the metric's feature
    space.

    Args:
        image_size: ``(H, W)``.
        num_classes: output classes.
        width: channels of the convolutions.
        feature_dim: size of the feature space.
        pool: side of the adaptive average pool before the hidden layer.

    Example:
        >>> net = FeatureClassifier((8, 8))
        >>> net.features(torch.zeros(2, 1, 8, 8)).shape, net(torch.zeros(2, 1, 8, 8)).shape
        (torch.Size([2, 128]), torch.Size([2, 10]))
    """

    def __init__(
        self,
        image_size: tuple[int, int] | list[int],
        num_classes: int = 10,
        width: int = 32,
        feature_dim: int = 128,
        pool: int = 2,
    ) -> None:
        super().__init__()
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.pool = int(pool)
        self.hidden = nn.Linear(2 * width * self.pool**2, feature_dim)
        self.out = nn.Linear(feature_dim, num_classes)
        self.config: dict[str, Any] = {
            "image_size": list(self.image_size),
            "num_classes": int(num_classes),
            "width": int(width),
            "feature_dim": int(feature_dim),
            "pool": self.pool,
        }

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 1 or tuple(x.shape[2:]) != self.image_size:
            raise ValueError(
                f"x must have shape (N, 1, {self.image_size[0]}, {self.image_size[1]}), "
                f"got {tuple(x.shape)}"
            )

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations ``(N, feature_dim)`` (the FCD/KID feature space)."""
        self._check(x)
        x = x.to(self.out.weight.dtype)
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        h = F.relu(self.conv3(h))
        h = F.adaptive_avg_pool2d(h, self.pool).flatten(1)
        return F.relu(self.hidden(h))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.out(self.features(x))


def load_classifier(dataset: str = "digits", device: torch.device | str = "cpu") -> (
    FeatureClassifier
):
    """The shipped classifier of ``dataset`` (in eval mode, without gradients).

    Loaded with ``torch.load(..., weights_only=True)``: the file holds a JSON-able config and
    a state dict, never code.

    Args:
        dataset: one of :data:`SHIPPED`.
        device: where to put the network.

    Example:
        >>> net = load_classifier("digits")
        >>> net(torch.zeros(1, 1, 8, 8)).shape
        torch.Size([1, 10])
    """
    if dataset not in SHIPPED:
        raise ValueError(f"dataset must be one of {SHIPPED}, got {dataset!r}")
    ref = resources.files("ncmle_prob.metrics").joinpath("weights", f"{dataset}.pt")
    if not ref.is_file():
        raise FileNotFoundError(
            f"no shipped classifier weights for {dataset!r} in this installation; create them "
            f"with: python scripts/train_classifiers.py --dataset {dataset}"
        )
    with resources.as_file(ref) as path:
        blob = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(blob, dict) or set(blob) != {"config", "state_dict"}:
        raise ValueError(f"{path} is not a classifier checkpoint (keys config, state_dict)")
    net = FeatureClassifier(**blob["config"])
    net.load_state_dict(blob["state_dict"])
    return net.to(device).eval().requires_grad_(False)
