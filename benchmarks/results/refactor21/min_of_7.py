"""Min-of-7 wall seconds per sampler call, for the before/after comparison of issue 21.

Run from the repository root (on each revision, with other jobs paused)::

    python benchmarks/results/refactor21/min_of_7.py >> benchmarks/results/refactor21/min_of_7.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import torch

sys.path.insert(0, "benchmarks")

from bench_samplers import _train  # a sibling script, not a package

from ncmle_prob import samplers
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior

REPEATS = 7


def timed(out: dict[str, float], tag: str, dist: Any, n: int, method: str,
          **options: Any) -> None:
    """Stores in ``out[tag]`` the fastest of ``REPEATS`` seeded calls of ``method``."""
    times = []
    for _ in range(REPEATS):
        generator = torch.Generator().manual_seed(1)
        start = time.perf_counter()
        samplers.sample(dist, n, method, generator=generator, **options)
        times.append(time.perf_counter() - start)
    out[tag] = min(times)


def main() -> None:
    torch.set_num_threads(1)
    out: dict[str, float] = {}
    d2 = _train(800, NoiseLevelPrior())()
    for method, options in [("score_corrected_ancestral", {}),
                            ("score_corrected_ancestral", {"corrector": "langevin"}),
                            ("annealed_langevin", {}), ("self_denoising", {})]:
        timed(out, f"D=2 {method} {options}", d2, 2000, method, **options)
    torch.manual_seed(0)
    made = MADE(64, hidden_features=256, family="logistic_mixture", components=4)
    d64 = made.requires_grad_(False)()
    for method in ["ancestral", "tarflow", "self_denoising", "score_corrected_ancestral",
                   "annealed_langevin"]:
        timed(out, f"D=64 {method}", d64, 256, method)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
