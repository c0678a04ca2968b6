"""Sampler benchmark: speed ratios measured side by side, and sample quality per unit time.

Run ``python benchmarks/bench_samplers.py [--quick] [--device cuda]``. It prints

1. on a MADE with D = 64: the cost of one corrector step (``langevin`` and ``mala``)
   relative to one ``dist.log_prob_and_score`` pass (goal <= 1.1x), ancestral sampling
   relative to D network forwards (goal <= 1.2x), and samples/s of each registered sampler
   with its default options;
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
from ncmle_prob.samplers.engine import at_level


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
    bound = at_level(dist, sigma)

    def score() -> None:  # one log_prob_and_score pass on the fast path, as inside a level
        bound.log_prob_and_score(x, validate=False)
        _sync(device)

    def forward() -> None:
        with torch.no_grad():
            model.conditional_params(x, s_vec)
        _sync(device)

    # one level of `steps` corrector steps costs steps + 1 passes (one starts the level)
    def langevin() -> None:
        anneal(dist, x, [sigma], corrector="langevin", step_rule="fixed", step_size=alpha,
               steps_per_level=steps, generator=g)
        _sync(device)

    def mala() -> None:
        anneal(dist, x, [sigma], corrector="mala", step_rule="fixed", step_size=alpha,
               steps_per_level=steps, generator=g)
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
    print(f"| langevin corrector step / log_prob_and_score (level of {steps} steps + 1 pass) | "
          f"{t.ratio('langevin', 'score', steps + 1)} | <= 1.1x |")
    print(f"| mala corrector step / log_prob_and_score | {t.ratio('mala', 'score', steps + 1)} "
          f"| <= 1.1x |")
    print(f"| ancestral sample / (D x forward) | {t.ratio('ancestral', 'forward', d)} | "
          f"<= 1.2x |")
    print(f"\nmedian per call: log_prob_and_score {t.median('score') * 1e3:.2f} ms, forward "
          f"{t.median('forward') * 1e3:.2f} ms")

    print("\n| sampler (default options) | network calls per sample | samples/s |")
    print("|---|---|---|")
    for method in samplers.available():
        target = dist if not method.startswith("pyro_") else model(sigma)  # MCMC: a density
        opts = {"warmup_steps": 50} if quick and method.startswith("pyro_") else {}
        samplers.sample(target, 4, method, generator=g, **opts)  # warm-up
        start = time.perf_counter()
        _, info = samplers.sample(target, n, method, generator=g, return_info=True, **opts)
        _sync(device)
        el = time.perf_counter() - start
        if method == "ancestral":
            evals = f"{d} forwards"
        elif method.startswith("pyro_"):
            warm = opts.get("warmup_steps", samplers.options(method)["warmup_steps"][1])
            evals = f"1 + {warm}/n (one chain, sigma={sigma})"
        else:
            evals = f"{info.score_evals}" + (f" (+{d} fwd)" if info.start_sigma else "")
        print(f"| {method} | {evals} | {n / el:.1f} |")


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
        ("annealed_langevin", {"corrector": "langevin"}),
        ("score_corrected_ancestral", {}),
        ("score_corrected_ancestral", {"corrector": "langevin"}),
        ("score_corrected_ancestral", {"predictor": "none", "corrector": "langevin",
                                       "step_rule": "technique4"}),
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
            if method != "ancestral" and smin > 0.01:
                o["sigma_min"] = smin  # stop where the model was trained, then Tweedie
            g = torch.Generator(device=device).manual_seed(1)
            start = time.perf_counter()
            x, info = samplers.sample(dist, n, method, generator=g, return_info=True, **o)
            _sync(device)
            el = time.perf_counter() - start
            ed = float(energy_distance(x, ref))
            acc = "-" if info.acceptance_rates is None else f"{min(info.acceptance_rates):.3f}"
            tag = method + "".join(f" {k}={v}" for k, v in opts.items())
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
