r"""Precision and recall with k-NN manifolds (Kynkäänniemi et al., 2019) in a feature space.

The manifold of a feature set :math:`\Phi` is the union of balls around each point
:math:`\phi \in \Phi`, of radius the distance to its ``k``-th nearest neighbour in
:math:`\Phi` (itself excluded):

.. math::

    f(\phi, \Phi) = 1 \iff \exists\, \phi' \in \Phi:\ \lVert \phi - \phi' \rVert_2
    \le \lVert \phi' - \mathrm{NN}_k(\phi', \Phi) \rVert_2 ,

    \mathrm{precision} = \frac{1}{M} \sum_{g} f(\phi_g, \Phi_r), \qquad
    \mathrm{recall} = \frac{1}{N} \sum_{r} f(\phi_r, \Phi_g).

Precision is the share of generated samples that look real (inside the real manifold);
recall the share of real images the model covers (inside the generated manifold). A model
collapsed to a few modes has high precision and low recall.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .fcd import _check_features

__all__ = ["knn_radii", "manifold_fraction", "precision", "precision_recall", "recall"]

_CHUNK = 1024  # rows of a distance matrix held at once (1024 x 10000 float64: 80 MB)


def _check_k(k: int, n: int, name: str) -> int:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if n <= k:
        raise ValueError(f"{name} needs more than k={k} points for k-NN radii, got {n}")
    return int(k)


def knn_radii(features: Tensor, k: int = 3) -> Tensor:
    """Distance of each point to its ``k``-th nearest neighbour in the same set (self excluded).

    Args:
        features: ``(N, D)`` with ``N > k``.
        k: neighbour rank.

    Example:
        >>> knn_radii(torch.tensor([[0.0], [1.0], [3.0]]), k=1)
        tensor([1., 1., 2.], dtype=torch.float64)
    """
    f = _check_features("features", features)
    k = _check_k(k, f.shape[0], "features")
    out = []
    for i in range(0, f.shape[0], _CHUNK):
        d = torch.cdist(f[i : i + _CHUNK], f)
        # the k+1 smallest include the point itself at distance 0
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(out)


def manifold_fraction(query: Tensor, support: Tensor, k: int = 3) -> float:
    """Share of ``query`` points inside the k-NN manifold of ``support`` (ties count inside)."""
    q, s = _check_features("query", query), _check_features("support", support)
    if q.shape[1] != s.shape[1]:
        raise ValueError(f"feature sizes differ: query {q.shape[1]}, support {s.shape[1]}")
    radii = knn_radii(s, k)
    inside = []
    for i in range(0, q.shape[0], _CHUNK):
        d = torch.cdist(q[i : i + _CHUNK], s)
        inside.append((d <= radii[None, :]).any(dim=1))
    return float(torch.cat(inside).double().mean())


def precision(real: Tensor, fake: Tensor, k: int = 3) -> float:
    """Share of ``fake`` features inside the real k-NN manifold.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a = torch.randn(300, 2, generator=g)
        >>> precision(a, a), precision(a, a + 100.0)
        (1.0, 0.0)
    """
    return manifold_fraction(fake, real, k)


def recall(real: Tensor, fake: Tensor, k: int = 3) -> float:
    """Share of ``real`` features inside the generated k-NN manifold."""
    return manifold_fraction(real, fake, k)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """``(precision, recall)`` of ``fake`` against ``real`` (see the module docstring)."""
    return precision(real, fake, k), recall(real, fake, k)
