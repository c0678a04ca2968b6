"""The three samplers on a 2-D toy: train a small MADE by NCMLE on the 8-mode ring, draw with
``ancestral``, ``annealed_langevin`` and ``score_corrected_ancestral`` (with and without the
Metropolis adjustment) and compare them with exact draws of the data by energy distance.

Run ``python examples/samplers_2d.py [--steps 800] [--out samplers_2d.png]``. It writes a
scatter plot of every sampler's draws to ``--out`` (default ``samplers_2d.png``; needs
matplotlib; ``--out ''`` skips it), atomically (temp + rename).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import torch

from ncmle_prob import samplers
from ncmle_prob.data.toy2d import gaussian_mixture
from ncmle_prob.divergences import energy_distance
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior, ncmle_loss

METHODS = [
    ("ancestral", {}),
    ("annealed_langevin", {}),
    ("score_corrected_ancestral", {}),
    ("score_corrected_ancestral", {"corrector": "langevin"}),
]


def train(steps: int, seed: int = 0) -> MADE:
    """A small MADE trained by NCMLE on exact draws of the ring."""
    data = gaussian_mixture()
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MADE(2, hidden_features=64, family="logistic_mixture", components=8)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    prior = NoiseLevelPrior()
    for _ in range(steps):
        loss = ncmle_loss(model, data.sample((256,), generator=g), prior, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.requires_grad_(False)


def plot(draws: dict[str, torch.Tensor], path: Path) -> Path:
    """Scatter plots of every sampler's draws, one titled panel each, written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ncmle_prob._io import atomic_write

    fig = Figure(figsize=(3 * len(draws), 3.2))
    FigureCanvasAgg(fig)  # no pyplot, no global backend switch
    axes = fig.subplots(1, len(draws), squeeze=False)[0]
    for ax, (name, x) in zip(axes, draws.items()):
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=1, alpha=0.4)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(-1.2, 1.2)
        ax.set_ylim(-1.2, 1.2)
        ax.set_aspect("equal")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=800, help="training steps (default: 800)")
    parser.add_argument("--num-samples", type=int, default=2000,
                        help="draws per sampler (default: 2000)")
    parser.add_argument("--out", default="samplers_2d.png",
                        help="PNG path (default: samplers_2d.png; '' for none)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    args = parser.parse_args()

    model = train(args.steps, args.seed)
    dist = model()  # sigma = 0: clean data
    data = gaussian_mixture().sample((args.num_samples,), generator=torch.Generator()
                                     .manual_seed(1))
    draws = {"data (exact)": data}
    print("| sampler | energy distance to data | seconds |")
    print("|---|---|---|")
    for method, opts in METHODS:
        g = torch.Generator().manual_seed(2)
        start = time.perf_counter()
        x, info = samplers.sample(dist, args.num_samples, method, generator=g,
                                  return_info=True, **opts)
        seconds = time.perf_counter() - start
        name = method + (f" ({opts['corrector']} corrector)" if "corrector" in opts else "")
        draws[name] = x
        extra = ""
        if info.acceptance_rates is not None:
            extra = f" (acceptance >= {min(info.acceptance_rates):.3f})"
        print(f"| {name} | {float(energy_distance(x, data)):.5f}{extra} | {seconds:.2f} |")
    if args.out:
        print(f"wrote {plot(draws, Path(args.out))}")


if __name__ == "__main__":
    main()
