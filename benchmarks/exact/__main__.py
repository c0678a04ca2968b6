"""``python -m benchmarks.exact [--quick] [--overlaps 2,3,5,8] [--out DIR] [--quiet]``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from .config import FULL, QUICK
from .report import figure, md_to_rst, render, verdicts
from .study import run_overlap

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.exact", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny end-to-end smoke run")
    p.add_argument("--overlaps", default=None, help="comma-separated Δ (default: all)")
    p.add_argument("--out", default=None, help="results folder (default: "
                   "benchmarks/results/exact, or .../exact_quick with --quick)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.overlaps:
        cfg = replace(cfg, overlaps=tuple(float(v) for v in args.overlaps.split(",")))
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / (
        "exact_quick" if args.quick else "exact")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    t0, c0 = time.perf_counter(), time.process_time()
    results = []
    for overlap in cfg.overlaps:
        results.append(run_overlap(cfg, overlap, out, log))
        text = render(results, cfg.to_json())
        (out / "tables.md").write_text(text)
        (out / "tables.rst").write_text(md_to_rst(text))
        figure(results, out / "precision_coverage.png")
    summary = {"config": cfg.to_json(), "overlaps_done": [r["overlap"] for r in results],
               "verdicts": verdicts(results),
               "cpu_seconds_this_call": time.process_time() - c0,
               "wall_seconds_this_call": time.perf_counter() - t0}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(render(results, cfg.to_json()))
    print(f"CPU {summary['cpu_seconds_this_call']:.0f} s, wall "
          f"{summary['wall_seconds_this_call']:.0f} s this call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
