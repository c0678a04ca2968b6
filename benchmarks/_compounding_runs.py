"""The run layer of the compounding benchmark: seeds, the run cache and one D's models."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from _compounding_config import (
    BUDGETS,
    ORACLES,
    QUICK_BUDGET,
    QUICK_ORACLES,
    QUICK_SEEDS,
    QUICK_TRAIN,
    TRAIN,
    TRAIN_SEEDS,
)
from _compounding_data import make_oracle
from _compounding_metrics import prefix_reverse_kl, sample_metrics
from _compounding_report import Runs
from _compounding_samplers import run_method, target_sigma
from _compounding_train import OBJECTIVES, train_one

SPLIT_SEED = {"tune": 1, "spread": 2, "test": 3, "floor": 4, "kl": 5, "ref": 6, "speed": 7}


class Cache:
    """Metrics of finished runs, keyed by a string, saved atomically after every run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key: str, fn: Any) -> Any:
        if key not in self.data:
            self.data[key] = fn()
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data))
            os.replace(tmp, self.path)
        return self.data[key]


def _gen(split: str, train_seed: int, sample_seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(SPLIT_SEED[split] * 100_000 + train_seed * 1000
                                         + sample_seed)


class Bench:
    """One D: models, references, cached runs.r"""

    def __init__(self, d: int, quick: bool, ckpt: Path, log: Any) -> None:
        self.d, self.log = d, log
        self.spec = (QUICK_ORACLES if quick else ORACLES)[d]
        self.train_spec = (QUICK_TRAIN if quick else TRAIN)[d]
        self.seeds = QUICK_SEEDS if quick else TRAIN_SEEDS
        self.budget = QUICK_BUDGET if quick else BUDGETS[d]
        self.q = make_oracle(self.spec)
        self.ckpt = ckpt
        # the cache of the predictor-corrector engine's runs (the name is kept from when a
        # pre-engine sampler API had its own)
        self.cache = Cache(ckpt / f"cache_d{d}_pc.json")
        self.models = {
            (obj, s): train_one(self.q, obj, s, self.train_spec, ckpt, log=log)
            for s in self.seeds for obj in OBJECTIVES
        }
        self._refs: dict[tuple[str, float], torch.Tensor] = {}

    def ref(self, split: str, sigma: float) -> torch.Tensor:
        key = (split, sigma)
        if key not in self._refs:
            g = _gen("ref", SPLIT_SEED[split], int(sigma * 1000))
            self._refs[key] = self.q.at(sigma).sample((self.budget.n_ref,), generator=g)
        return self._refs[key]

    def run(self, method: dict[str, Any], split: str, train_seed: int, sample_seed: int,
            num: int) -> dict[str, Any]:
        opts = json.dumps(method.get("opts", {}), sort_keys=True)  # engine options in the key
        key = f"{method['label']}|{opts}|{split}|t{train_seed}|s{sample_seed}|n{num}"

        def compute() -> dict[str, Any]:
            models = {obj: self.models[(obj, train_seed)] for obj in OBJECTIVES}
            g = _gen(split, train_seed, sample_seed)
            x, info = run_method(method, models, self.q, num, g)
            sigma = target_sigma(method)
            ref_split = "tune" if split in ("tune", "spread") else "test"
            out = {**info, **sample_metrics(x, self.q, sigma, self.ref(ref_split, sigma))}
            if method["kind"] == "ancestral" or (method["kind"] == "start"
                                                 and method["model"] == "ncmle"):
                prof = prefix_reverse_kl(models[method["model"]], self.q, x, sigma)
                out["prefix_kl"] = {str(i): v[0] for i, v in prof.items()}
                out["reverse_kl"], out["reverse_kl_se"] = prof[self.d]
            self.log(f"[d={self.d}] {key}: energy {out['energy']:.4g} "
                     f"({info['seconds']:.1f}s)")
            return out

        return self.cache.get(key, compute)

    def runs(self, method: dict[str, Any], split: str, train_seeds: tuple[int, ...],
             sample_seeds: tuple[int, ...], num: int) -> Runs:
        return {t: [self.run(method, split, t, s, num) for s in sample_seeds]
                for t in train_seeds}
