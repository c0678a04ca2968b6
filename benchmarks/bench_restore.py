"""Batched restoration vs one image at a time: ``restore`` on B images with a PixelCNN++ prior.

Both sides run the same algorithm (:func:`ncmle_prob.infer.denoise` with the batched MALA
kernel, the same steps and seeds); the batched side puts all B chains in one tensor, the
sequential side calls ``denoise`` once per image. Times are paired and interleaved in one
process (``benchmarks/_timing.py``), so the ratio is meaningful on a shared CPU; absolute
times are not. The script also checks that both sides give the same draws (chain ``b`` is
seeded with ``seed + b`` either way).

Run ``python benchmarks/bench_restore.py`` (``--quick``: 8 images of 8x8, a few steps;
``--device cuda`` on a GPU). Goal (issue 10): batched over 64 images >= 10x faster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import check, fmt, table
from _timing import interleaved

from ncmle_prob.infer import psnr
from ncmle_prob.infer import remove_noise as denoise
from ncmle_prob.models import PixelCNNPP


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run (seconds)")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--size", type=int, default=14, help="image side (1 x size x size)")
    p.add_argument("--filters", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="warm-up = samples = steps")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.size, args.filters, args.steps, args.repeats = 8, 8, 8, 3, 1
    torch.set_num_threads(1) if args.device == "cpu" else None
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = PixelCNNPP((1, args.size, args.size), filters=args.filters, resnets=1,
                       components=5, bins=256, max_downsample=1).to(dev).eval()
    prior = model(0.05)
    g = torch.Generator(device=dev).manual_seed(0)
    clean = torch.rand(args.images, 1, args.size, args.size, generator=g, device=dev) * 2 - 1
    y = clean + 0.3 * torch.randn(clean.shape, generator=g, device=dev)
    kw = {"num_samples": args.steps, "warmup_steps": args.steps}

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def batched():
        out = denoise(prior, y, 0.3, seed=0, **kw)
        sync()
        return out

    def sequential():
        outs = [denoise(prior, y[b : b + 1], 0.3, seed=b, **kw) for b in range(args.images)]
        sync()
        return outs

    a, s = batched(), sequential()
    same = max(float((a.samples[b] - o.samples[0]).abs().max()) for b, o in enumerate(s))
    t = interleaved({"batched": batched, "sequential": sequential}, repeats=args.repeats,
                    warmup=0, number={"batched": 1, "sequential": 1},
                    clock="cpu" if dev.type == "cpu" else "wall")
    speed = t.ratio("sequential", "batched")
    steps = 2 * args.steps
    rows = [[args.images, f"1x{args.size}x{args.size}", args.filters, steps,
             f"{t.median('batched'):.3f}", f"{t.median('sequential'):.3f}", fmt(speed),
             f"{args.images * steps / t.median('batched'):.1f}", f"{same:.1e}",
             f"{float(psnr(clean, a.mean).mean()):.2f}"]]
    print(table("restore: batched over images vs one image at a time (PixelCNN++ prior)",
                ["images", "shape", "filters", "MALA steps", "batched s", "sequential s",
                 "speed-up", "chain-steps/s", "max draw diff", "PSNR dB"], rows))
    verdicts: list[str] = []
    check(verdicts, "restore batched", speed, speed.median >= 10, ">= 10x")
    print("\n" + "\n".join(verdicts) if verdicts else "")
    print("(provisional: paired ratio in one process on a shared machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
