"""PixelCNN++ speed, measured side by side in one run.

* training examples/s (NCMLE loss, forward + backward + Adam) at batch 64 on 1×28×28 input;
* naive vs cached ancestral sampling of a batch of 64 28×28 images (goal: cached ≥ 5× faster),
  with a check that both return the same draws under the same generator;
* score (forward + backward) cost vs log_prob (forward) at batch 64 (goal: ≤ 3×).

Usage::

    python benchmarks/bench_pixelcnn.py                      # filters=32, resnets=1 (CPU)
    python benchmarks/bench_pixelcnn.py --filters 160 --resnets 5 --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch

from ncmle_prob.models.pixelcnnpp import PixelCNNPP
from ncmle_prob.objectives import NoiseLevelPrior, ncmle_loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int = 1) -> float:  # type: ignore[no-untyped-def]
    """Best of ``repeats`` timings after a warm-up (the minimum is robust to load spikes on
    a shared machine)."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--filters", type=int, default=32)
    p.add_argument("--resnets", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--parts", default="train,score,sample",
                   help="comma-separated subset of train,score,sample")
    p.add_argument("--naive-rows", type=int, default=0,
                   help="time the naive sampler on this many rows only and extrapolate "
                        "linearly (its cost per pixel is constant: one full pass); 0: all rows")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.manual_seed(0)
    model = PixelCNNPP(
        (1, a.size, a.size), filters=a.filters, resnets=a.resnets, components=5, bins=256
    ).to(device)
    n_par = sum(q.numel() for q in model.parameters())
    print(
        f"PixelCNNPP (1,{a.size},{a.size}) filters={a.filters} resnets={a.resnets} "
        f"levels={model.levels} params={n_par / 1e6:.2f}M device={device} "
        f"threads={torch.get_num_threads()} batch={a.batch}"
    )
    x0 = torch.randint(0, 256, (a.batch, 1, a.size, a.size), device=device) / 127.5 - 1.0
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    prior = NoiseLevelPrior()

    def train_step() -> None:
        opt.zero_grad()
        ncmle_loss(model, x0, prior).backward()
        opt.step()

    parts = set(a.parts.split(","))
    if "train" in parts:
        t_train = timed(train_step, device, 3)
        print(f"training: {a.batch / t_train:.1f} examples/s ({t_train * 1e3:.0f} ms/step)")

    model.eval()
    dist = model(0.2)
    x = x0 + 0.2 * torch.randn_like(x0)

    def lp() -> None:
        with torch.no_grad():
            dist.log_prob(x)

    def sc() -> None:
        dist.score(x)

    if "score" in parts:
        t_lp, t_sc = timed(lp, device, 5), timed(sc, device, 5)
        print(
            f"log_prob: {t_lp * 1e3:.0f} ms  score: {t_sc * 1e3:.0f} ms  "
            f"ratio score/log_prob = {t_sc / t_lp:.2f} (goal <= 3)"
        )
    if "sample" not in parts:
        return

    sigma = torch.zeros(a.batch, device=device)
    t = time.perf_counter()
    fast = model.ancestral_sample(model.family, sigma, torch.Generator(device).manual_seed(0))
    _sync(device)
    t_fast = time.perf_counter() - t
    print(f"cached ancestral sampling of {a.batch} images: {t_fast:.1f} s")
    rows = a.naive_rows or a.size
    t = time.perf_counter()
    slow = model.naive_ancestral_sample(
        model.family, sigma, torch.Generator(device).manual_seed(0), max_rows=rows
    )
    _sync(device)
    t_slow = (time.perf_counter() - t) * a.size / rows
    how = "measured" if rows == a.size else f"extrapolated from {rows} of {a.size} rows"
    print(f"naive ancestral sampling of {a.batch} images: {t_slow:.1f} s ({how})")
    same = torch.equal(fast[:, :, :rows], slow[:, :, :rows])
    print(
        f"speed-up cached/naive = {t_slow / t_fast:.1f}x (goal >= 5); identical draws "
        f"on the {rows} rows compared: {same}"
    )


if __name__ == "__main__":
    main()
