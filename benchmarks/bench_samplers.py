"""Sampler benchmark: speed ratios measured side by side, and sample quality per unit time.

Run ``python benchmarks/bench_samplers.py [--quick] [--device cuda]``. It prints

1. on a MADE with D = 64: the cost of one Langevin (and MALA) step relative to one public
   ``dist.score`` call (goal <= 1.1x), ancestral sampling relative to D network forwards
   (goal <= 1.2x), and samples/s of each sampler with its default options;
2. on the 2-D task (8-mode ring, a briefly trained MADE): energy distance to the data,
   wall time and samples/s of each sampler, i.e. sample quality per unit time.

Ratios come from paired, interleaved rounds (``benchmarks/_timing.py``), so load from other
processes mostly cancels; absolute times on a shared CPU are indicative only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import interleaved

from ncmle_prob import samplers
from ncmle_prob.data.toy2d import gaussian_mixture
from ncmle_prob.divergences import energy_distance
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior, ncmle_loss
from ncmle_prob.samplers import anneal


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def speed(device: torch.device, quick: bool) -> None:
    d, n, steps = 64, (64 if quick else 256), 10
    torch.manual_seed(0)
    model = MADE(d, hidden_features=256, family="logistic_mixture", components=4)
    model = model.to(device).requires_grad_(False)
    dist = model(0.0)
    sigma = 0.1
    x = model(sigma).sample((n,))
    s_vec = torch.full((n,), sigma, device=device)
    alpha = 1e-4
    g = torch.Generator(device=device).manual_seed(0)

    def score() -> None:
        dist.score(x, sigma)
        _sync(device)

    def forward() -> None:
        with torch.no_grad():
            model.conditional_params(x, s_vec)
        _sync(device)

    def langevin() -> None:
        anneal(dist, x, [sigma], [alpha], steps, generator=g)
        _sync(device)

    def mala() -> None:
        anneal(dist, x, [sigma], [alpha], steps, metropolis=True, generator=g)
        _sync(device)

    def ancestral() -> None:
        model(sigma).sample((n,), generator=g)
        _sync(device)

    t = interleaved(
        {"score": score, "forward": forward, "langevin": langevin, "mala": mala,
         "ancestral": ancestral},
        repeats=5 if quick else 11, min_time=0.05 if quick else 0.2,
    )
    print(f"\n## Speed on MADE(D={d}, hidden=256, logistic_mixture x4), batch {n}, {device}")
    print("| measure | ratio [IQR] | goal |")
    print("|---|---|---|")
    print(f"| Langevin step / score call (level of {steps} steps) | "
          f"{t.ratio('langevin', 'score', steps)} | <= 1.1x |")
    print(f"| MALA step / score call | {t.ratio('mala', 'score', steps)} | (log p comes free) |")
    print(f"| ancestral sample / (D x forward) | {t.ratio('ancestral', 'forward', d)} | "
          f"<= 1.2x |")
    print(f"\nmedian per call: score {t.median('score') * 1e3:.2f} ms, forward "
          f"{t.median('forward') * 1e3:.2f} ms")

    print("\n| sampler (default options) | network evaluations | samples/s |")
    print("|---|---|---|")
    for method in ("ancestral", "annealed_langevin", "score_corrected_ancestral"):
        opts = {} if method != "annealed_langevin" or not quick else {"steps_per_level": 20}
        samplers.sample(dist, 4, method, generator=g, **opts)  # warm-up
        start = time.perf_counter()
        _, info = samplers.sample(dist, n, method, generator=g, return_info=True, **opts)
        _sync(device)
        el = time.perf_counter() - start
        evals = f"{d} forwards" if method == "ancestral" else (
            f"{info.score_evals} scores (+{d} fwd)" if info.start_sigma else
            f"{info.score_evals} scores")
        note = " (20 steps/level)" if opts else ""
        print(f"| {method}{note} | {evals} | {n / el:.1f} |")


def _train(steps: int, prior: NoiseLevelPrior) -> MADE:
    data = gaussian_mixture()
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = MADE(2, hidden_features=64, family="logistic_mixture", components=8)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(steps):
        loss = ncmle_loss(model, data.sample((256,), generator=g), prior, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.requires_grad_(False)


def quality(device: torch.device, quick: bool) -> None:
    n, train_steps = (500, 300) if quick else (2000, 800)
    data = gaussian_mixture()
    ref = data.sample((n,), generator=torch.Generator().manual_seed(9)).to(device)
    ref2 = data.sample((n,), generator=torch.Generator().manual_seed(10)).to(device)
    floor = float(energy_distance(ref, ref2))
    configs = [
        ("ancestral", {}),
        ("annealed_langevin", {}),
        ("annealed_langevin", {"metropolis": True}),
        ("score_corrected_ancestral", {}),
        ("score_corrected_ancestral", {"metropolis": True}),
    ]
    priors = {
        "default prior (p0=0.2, sigma in [0.01, 1])": (NoiseLevelPrior(), 0.01),
        "no clean data (sigma in [0.05, 1])": (
            NoiseLevelPrior(p_zero=0.0, sigma_min=0.05, sigma_max=1.0), 0.05),
    }
    print(f"\n## Quality per time on the 2-D ring (8 modes), {n} samples, MADE trained "
          f"{train_steps} steps, {device}")
    print(f"energy distance between two exact samples (noise floor): {floor:.5f}")
    for label, (prior, smin) in priors.items():
        model = _train(train_steps, prior).to(device)
        dist = model()
        print(f"\n### {label}; Langevin samplers end at sigma_min={smin}")
        print("| sampler | energy distance | seconds | samples/s | MALA acceptance (min) |")
        print("|---|---|---|---|---|")
        for method, opts in configs:
            o = dict(opts)
            if method != "ancestral":
                o["sigma_min"] = smin
            g = torch.Generator(device=device).manual_seed(1)
            start = time.perf_counter()
            x, info = samplers.sample(dist, n, method, generator=g, return_info=True, **o)
            _sync(device)
            el = time.perf_counter() - start
            ed = float(energy_distance(x, ref))
            acc = "-" if info.acceptance_rates is None else f"{min(info.acceptance_rates):.3f}"
            tag = method + (" +MALA" if opts.get("metropolis") else "")
            print(f"| {tag} | {ed:.5f} | {el:.2f} | {n / el:.0f} | {acc} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a CI smoke run)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}")
    speed(device, args.quick)
    quality(device, args.quick)


if __name__ == "__main__":
    main()
