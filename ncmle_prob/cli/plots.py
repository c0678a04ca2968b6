"""PNG figures of the command line, drawn with matplotlib's Agg canvas and written atomically.

No pyplot and no global backend switch: each figure is a bare :class:`matplotlib.figure.Figure`
attached to its own ``FigureCanvasAgg``, so importing or calling this has no side effects.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..training.checkpoint import atomic_write

__all__ = ["image_grid", "robustness_plot", "scatter_plot"]


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install 'ncmle_prob[plot]'") from e
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def robustness_plot(
    curves: dict[str, dict[float, float]], path: str | Path, *, title: str = ""
) -> Path:
    """Bits/dim against σ, one curve per model; writes a PNG to ``path``."""
    fig = _figure(5.5, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    for label, points in curves.items():
        sig = sorted(points)
        ax.plot(sig, [points[s] for s in sig], marker="o", label=label)
    ax.set_xlabel("noise level σ")
    ax.set_ylabel("bits/dim (test)")
    ax.set_title(title or "robustness to noise")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def image_grid(images: Tensor, path: str | Path, *, title: str = "") -> Path:
    """A grid of images ``(N, C, H, W)`` with values in [-1, 1] (clipped); writes a PNG."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = torch.ones(c, rows * (h + 1) + 1, cols * (w + 1) + 1)
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = 1 + r * (h + 1), 1 + q * (w + 1)
        canvas[:, top : top + h, left : left + w] = x[i]
    fig = _figure(max(2.0, cols * w / 12), max(2.0, rows * h / 12))
    ax = fig.add_subplot(1, 1, 1)
    if c == 1:
        ax.imshow(canvas[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(canvas.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return _save(fig, path)


def scatter_plot(
    points: Tensor, path: str | Path, *, reference: Tensor | None = None, title: str = ""
) -> Path:
    """A 2-D scatter of ``points`` (and optionally reference data); writes a PNG."""
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {tuple(points.shape)}")
    fig = _figure(4.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    if reference is not None:
        r = reference.detach().cpu()
        ax.scatter(r[:, 0], r[:, 1], s=2, alpha=0.3, color="gray", label="data")
    p = points.detach().cpu()
    ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.6, label="samples")
    ax.set_aspect("equal")
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    return _save(fig, path)
