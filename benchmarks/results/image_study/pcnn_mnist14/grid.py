"""The PixelCNN++ confirmation's sample grid: each sampler of ``ncmle evaluate``, side by side.

The same checkpoints and the same default sampler options as ``samples_ncmle.md`` and
``samples_mle.md`` (the registry's defaults, no option tuned), 36 draws each, seeded::

    python benchmarks/results/image_study/pcnn_mnist14/grid.py NCMLE.pt MLE.pt OUT.png
"""

from __future__ import annotations

import math
import sys
import time

import matplotlib
import torch

from ncmle_prob.cli.sample import draw
from ncmle_prob.training import load_model

JOBS = [("MLE", "ancestral"), ("NCMLE", "ancestral"), ("NCMLE", "tarflow"),
        ("NCMLE", "self_denoising"), ("NCMLE", "score_corrected_ancestral")]


def main(ncmle: str, mle: str, out: str, n: int = 36) -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.set_num_threads(1)
    models = {"NCMLE": load_model(ncmle), "MLE": load_model(mle)}
    side = math.isqrt(n)
    fig, axes = plt.subplots(1, len(JOBS), figsize=(2.6 * len(JOBS), 3.0))
    for ax, (objective, method) in zip(axes, JOBS, strict=True):
        start = time.perf_counter()
        x = draw(models[objective], side * side, 0.0, method, {}, seed=0).detach()
        print(f"{objective} {method}: {time.perf_counter() - start:.1f} s", flush=True)
        img = x.reshape(side, side, *x.shape[-2:]).permute(0, 2, 1, 3)
        tiles = img.reshape(side * x.shape[-2], side * x.shape[-1])
        ax.imshow(((tiles + 1) / 2).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{objective} {method.replace('_', ' ')}", fontsize=8)
        ax.axis("off")
    fig.suptitle("MNIST 14×14 PixelCNN++ (32 filters, 1 resnet), one seed per objective",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(f"usage: python {sys.argv[0]} NCMLE.pt MLE.pt OUT.png")
    main(*sys.argv[1:])
