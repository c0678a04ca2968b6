"""Peak memory of sampling and restoring against n, and the Jacobi sampler's speed (issue 19).

Part 1, memory: each row runs in a fresh subprocess (``_memory.run_children``, one at a time
so the timings of part 2 are not disturbed), builds an untrained PixelCNN++ on 14×14 grey
images (32 filters, one resnet, 256 bins: the issue's model), makes a warm-up draw of one
sample, and reports the peak resident memory that one call adds (``_memory.peak_growth``) for
``ancestral``, ``annealed_langevin``, ``score_corrected_ancestral`` (at σ = 0: ancestral at
0.3, MALA levels, Tweedie, snapping and grid Metropolis) and ``restore`` (denoising, MALA).
The annealing samplers run with short budgets (``--quick``: 2 levels × 2 steps, 10 grid
steps) since memory no longer depends on the steps (tests/test_sampler_memory.py).

Part 2, Jacobi: samples/s of ``jacobi`` (and Gauss–Seidel–Jacobi) over ``ancestral`` with the
same seed (same draws), on MADE at D = 64 untrained and trained briefly on digits (8×8), and
the passes to convergence. Ancestral uses MADE's cached sampler (rank-one updates), so the
ratio is against the fast baseline.

Usage::

    python benchmarks/bench_memory.py --quick          # small sizes (minutes on 2 cores)
    python benchmarks/bench_memory.py --ns 8,32,128    # the memory rows at other n
    python benchmarks/bench_memory.py --quick --default-batch --ns 8,32,128,256 --skip-jacobi
    python benchmarks/bench_memory.py --skip-memory --made196 CKPT --pixelcnn CKPT
        # Jacobi also on MADE D = 196 and PixelCNN++ 14×14 checkpoints trained on mnist14
        # (`ncmle train --data mnist14 ...`), each beside an untrained model of its config
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _memory import peak_growth, run_children

SHORT = {"num_levels": 2, "steps_per_level": 2}


def child(method: str, n: int, batch: int | None, quick: bool) -> None:
    """One measurement; prints a JSON line."""
    import torch

    from ncmle_prob import samplers
    from ncmle_prob.infer import remove_noise as denoise
    from ncmle_prob.models import PixelCNNPP

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = PixelCNNPP((1, 14, 14), filters=32, resnets=1, bins=256)
    opts: dict = {} if batch is None else {"batch_size": batch}
    if quick and method in ("annealed_langevin", "score_corrected_ancestral"):
        opts.update(SHORT)
        if method == "score_corrected_ancestral":
            opts["grid_steps"] = 10
    samplers.sample(model(0.0), 1, "ancestral")  # warm-up: allocator, lazy imports

    def call() -> object:
        if method == "restore":
            y = torch.rand(n, 1, 14, 14) * 2 - 1
            steps = 5 if quick else 50
            return denoise(model(0.05), y, 0.3, num_samples=steps, warmup_steps=steps, seed=0,
                           batch_size=batch)
        return samplers.sample(model(0.0), n, method, generator=torch.Generator().manual_seed(0),
                               **opts)

    t0 = time.perf_counter()
    out = peak_growth(call)
    out["seconds"] = time.perf_counter() - t0
    print(json.dumps(out))


def memory_table(ns: list[int], quick: bool, default_batch: bool = False) -> list[dict]:
    """Peak memory per (method, n): ``batch_size = n`` (one batch) and ``n`` = the last of
    ``ns`` in batches of the first; with ``default_batch`` every ``n`` at the sampler's
    default ``batch_size`` (``None`` in the rows) instead."""
    rows = []
    methods = ["ancestral", "annealed_langevin", "score_corrected_ancestral", "restore"]
    cases: list[tuple[int, int | None]] = (
        [(n, None) for n in ns] if default_batch else [*((n, n) for n in ns), (ns[-1], ns[0])]
    )
    for method in methods:
        for n, batch in cases:
            cmd = [sys.executable, __file__, "--child", method, str(n), str(batch)]
            if quick:
                cmd.append("--quick")
            res = run_children({method: cmd})[method]
            rows.append({"method": method, "n": n, "batch_size": batch,
                         "peak_mib": round(res["peak_delta_mib"], 1),
                         "seconds": round(res["seconds"], 1)})
            print(rows[-1], flush=True)
    return rows


def jacobi_rows(label: str, model: object, n: int, sigmas: tuple[float, ...],
                variants: tuple[dict, ...], rounds: int = 3) -> list[dict]:
    """``jacobi`` (each option set of ``variants``) against ``ancestral`` on ``model``.

    Same seed, so the same draws (checked to 1e-5); per σ, ``rounds`` interleaved rounds of
    [ancestral, every variant], wall clock, one torch thread; the ratio is the median over
    rounds of (ancestral time / variant time), i.e. samples/s of the variant over ancestral.
    """
    import torch

    from ncmle_prob import samplers

    rows = []
    for sigma in sigmas:
        d = model(sigma)
        keys = ["ancestral"] + ["jacobi" + (f"(block {v['block_size']})" if v else "")
                                for v in variants]
        opts = dict(zip(keys, [{}, *variants]))
        times: dict[str, list[float]] = {k: [] for k in keys}
        infos: dict[str, object] = {}
        for r in range(rounds):
            for key in keys[r % len(keys):] + keys[: r % len(keys)]:
                g = torch.Generator().manual_seed(0)
                method = "ancestral" if key == "ancestral" else "jacobi"
                t0 = time.perf_counter()
                x, info = samplers.sample(d, n, method, generator=g, return_info=True,
                                          **opts[key])
                times[key].append(time.perf_counter() - t0)
                infos[key] = (x, info)
        ref = infos["ancestral"][0]
        for key in keys[1:]:
            x, info = infos[key]
            # Same draws up to float32 rounding (the cached ancestral sampler updates the first
            # layer by rank-one steps): 1e-5 relative to the draw's size. On a fine grid at
            # σ = 0 a rounding difference can flip a draw lying at a bin edge to the next bin
            # (and change the later dimensions of that draw): counted, not hidden.
            bad = ((x - ref).abs() / ref.abs().clamp_min(1.0) > 1e-5).reshape(n, -1)
            differing = int(bad.any(dim=1).sum())
            ratios = sorted(a / b for a, b in zip(times["ancestral"], times[key]))
            rows.append({"model": label, "sigma": sigma, "sampler": key, "n": n,
                         "iterations": info.iterations, "draws_differing": differing,
                         "ancestral_s": round(sorted(times["ancestral"])[rounds // 2], 3),
                         "ratio_vs_ancestral": round(ratios[rounds // 2], 2),
                         "ratio_range": [round(ratios[0], 2), round(ratios[-1], 2)]})
            print(rows[-1], flush=True)
    return rows


def jacobi_table(n: int, train_steps: int, made196: str | None = None,
                 pixelcnn: str | None = None, pixelcnn_n: int = 32,
                 made64: bool = True) -> list[dict]:
    """Jacobi over ancestral on MADE D = 64 (digits; untrained and trained here for
    ``train_steps``), and, given their checkpoints, MADE D = 196 and PixelCNN++ 14×14 on
    MNIST 14×14 (trained, and untrained models of the same config)."""
    import torch

    from ncmle_prob.data import load_digits
    from ncmle_prob.models import MADE
    from ncmle_prob.training import fit, load_model

    torch.set_num_threads(1)
    variants = ({}, {"block_size": 16})
    rows = []
    for trained in (False, True) if made64 else ():
        torch.manual_seed(0)
        model = MADE(64, family="discretized_logistic_mixture", bins=17, components=5)
        if trained:
            fit(model, load_digits().train.reshape(-1, 64), steps=train_steps, batch_size=64,
                progress=False)
        model.eval()
        label = f"MADE D=64 {'trained' if trained else 'untrained'}"
        rows += jacobi_rows(label, model, n, (0.0, 0.1), variants)
    for path, name, size in ((made196, "MADE D=196", n), (pixelcnn, "PixelCNN++ 14x14",
                                                          pixelcnn_n)):
        if path is None:
            continue
        model = load_model(path).eval()
        torch.manual_seed(0)
        fresh = type(model)(**model.config).eval()
        for state, m in (("untrained", fresh), ("trained", model)):
            rows += jacobi_rows(f"{name} {state}", m, size, (0.0, 0.1), variants[:1])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", nargs=3, metavar=("METHOD", "N", "BATCH"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ns", default="8,32")
    p.add_argument("--jacobi-n", type=int, default=256)
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-jacobi", action="store_true")
    p.add_argument("--default-batch", action="store_true",
                   help="memory rows at the samplers' default batch_size")
    p.add_argument("--made196", default=None, help="checkpoint of a MADE trained on mnist14")
    p.add_argument("--pixelcnn", default=None,
                   help="checkpoint of a PixelCNN++ trained on mnist14")
    p.add_argument("--pixelcnn-n", type=int, default=32)
    p.add_argument("--skip-made64", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.child:
        method, n, batch = args.child
        child(method, int(n), None if batch == "None" else int(batch), args.quick)
        return
    ns = [int(s) for s in args.ns.split(",")]
    out = {"memory": [] if args.skip_memory else memory_table(ns, args.quick, args.default_batch),
           "jacobi": [] if args.skip_jacobi else jacobi_table(
               args.jacobi_n, args.train_steps, args.made196, args.pixelcnn, args.pixelcnn_n,
               not args.skip_made64)}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
