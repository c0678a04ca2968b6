"""Figures of the command line and the examples, drawn with matplotlib's Agg canvas and
written atomically in the format the file extension names (``.png``, ``.jpg``/``.jpeg``,
``.pdf``, ``.svg``; others are written as PNG: the commands refuse them before any work).

No pyplot and no global backend switch: each figure is a bare :class:`matplotlib.figure.Figure`
attached to its own ``FigureCanvasAgg``, so importing or calling this has no side effects.
:func:`image_grid` is the one grid helper: sample grids, restore rows and the examples' figures
all go through it (titles, gaps between tiles, labelled rows, a size that fits the content).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["grid_canvas", "image_grid", "robustness_plot", "scatter_plot"]

#: colour of the gaps between tiles: neither black nor white, so that tiles of grey images
#: whose borders are black (digits) or white stay apart
GAP_COLOUR = (0.62, 0.72, 0.85)


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
    from .._io import atomic_write
    from .common import FIGURE_FORMATS

    suffix = Path(path).suffix.lower()
    buf = io.BytesIO()
    fig.savefig(buf, format=FIGURE_FORMATS.get(suffix, "png"), bbox_inches="tight",
                pad_inches=0.05)
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


def grid_canvas(images: Tensor, cols: int, gap: int) -> Tensor:
    """Tiles ``(N, C, H, W)`` images in [-1, 1] into an RGB canvas ``(rows·(H+gap)+gap,
    cols·(W+gap)+gap, 3)`` in [0, 1], with :data:`GAP_COLOUR` between the tiles.

    Example:
        >>> import torch
        >>> from ncmle_prob.cli.plots import grid_canvas
        >>> grid_canvas(torch.zeros(5, 1, 8, 8), cols=3, gap=2).shape
        torch.Size([22, 32, 3])
    """
    import torch

    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    rows = math.ceil(n / cols)
    canvas = torch.tensor(GAP_COLOUR).expand(rows * (h + gap) + gap, cols * (w + gap) + gap, 3)
    canvas = canvas.clone()
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).expand(n, 3, h, w)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = gap + r * (h + gap), gap + q * (w + gap)
        canvas[top : top + h, left : left + w] = x[i].permute(1, 2, 0)
    return canvas


def image_grid(
    images: Tensor,
    path: str | Path,
    *,
    title: str = "",
    cols: int | None = None,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """A grid of images ``(N, C, H, W)`` with values in [-1, 1] (clipped); writes a PNG.

    Args:
        images: the tiles, filled row by row.
        path: PNG path (written atomically).
        title: figure title.
        cols: tiles per row (default: a square-ish grid).
        row_labels: one label per row, written left of the row.

    Returns:
        ``path``.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"row_labels has {len(row_labels)} labels for {rows} rows")
    gap = max(1, round(max(h, w) / 8))
    canvas = grid_canvas(images, cols, gap)
    # about 0.6 inch per 8-pixel tile, 1 inch per 28-pixel tile: digits stay readable, large
    # grids stay on a page
    tile = min(1.0, max(0.6, max(h, w) / 28))
    width = min(16.0, cols * tile)
    height = width * canvas.shape[0] / canvas.shape[1]
    fig = _figure(width, height)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas.numpy(), interpolation="nearest")
    ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if row_labels is not None:
        ax.set_yticks([gap + r * (h + gap) + (h - 1) / 2 for r in range(rows)], list(row_labels))
        ax.tick_params(axis="y", length=0)
    else:
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
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
