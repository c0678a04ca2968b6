"""Effective samples per second: our MALA / annealed Langevin kernels vs Pyro's NUTS.

Two posteriors, side by side in one run:

* ``gaussian``: a 3-D NoisyGaussian prior with a linear-Gaussian likelihood (closed form);
* ``digits64``: 64-D denoising of one digits test image (σ_y = 0.4) under a MADE prior trained
  by NCMLE for a few hundred steps (bound to σ_p = 0.1).

ESS is the minimum over dimensions of Pyro's ``effective_sample_size`` of the post-warm-up
draws; time is the whole run (warm-up included). Run ``python benchmarks/bench_infer.py``
(``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import math
import time

import pyro
import pyro.distributions as pdist
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_value
from pyro.ops.stats import effective_sample_size

from ncmle_prob.distributions import NoisyGaussian
from ncmle_prob.infer import MALA, AnnealedLangevinKernel
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior, ncmle_loss


def gaussian_problem():
    dt = torch.float64
    mu = torch.tensor([0.5, -1.0, 0.0], dtype=dt)
    L = torch.tensor([[1.0, 0, 0], [0.6, 0.8, 0], [-0.3, 0.2, 0.7]], dtype=dt)
    prior = NoisyGaussian(mu, L @ L.T, sigma=0.5)
    A = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, -1.0]], dtype=dt)
    y = torch.tensor([1.2, -0.4], dtype=dt)

    def model(y):
        x = pyro.sample("x", prior)
        pyro.sample("y", pdist.Normal(A @ x, 0.7).to_event(1), obs=y)

    return model, y, {}


def digits_problem(train_steps: int):
    from ncmle_prob.data.digits import load_digits

    data = load_digits().flatten()
    torch.manual_seed(0)
    made = MADE(64, hidden_features=128, num_blocks=1, family="gaussian")
    opt = torch.optim.Adam(made.parameters(), lr=3e-3)
    prior_pi = NoiseLevelPrior(p_zero=0.0, sigma_min=0.05, sigma_max=1.0)
    for _ in range(train_steps):
        idx = torch.randint(0, data.train.shape[0], (256,))
        loss = ncmle_loss(made, data.train[idx], prior_pi)
        opt.zero_grad()
        loss.backward()
        opt.step()
    made.eval()
    prior = made(0.1)
    y = data.test[0] + 0.4 * torch.randn(64)
    tau = math.sqrt(0.4**2 - 0.1**2)

    def model(y):
        x = pyro.sample("x", prior)
        pyro.sample("y", pdist.Normal(x, tau).to_event(1), obs=y)

    return model, y, {"init_strategy": init_to_value(values={"x": y})}


def run(model, y, kernel: str, n: int, warmup: int, extra: dict) -> tuple[float, float, float]:
    pyro.set_rng_seed(0)
    if kernel == "mala":
        k = MALA(model, **extra)
    elif kernel == "langevin":
        k = AnnealedLangevinKernel(model, sigma_max=1.0, sigma_min=0.1, num_levels=5, **extra)
    else:
        k = NUTS(model, **extra)
    t = time.perf_counter()
    mcmc = MCMC(k, num_samples=n, warmup_steps=warmup, disable_progbar=True)
    mcmc.run(y)
    dt = time.perf_counter() - t
    x = mcmc.get_samples()["x"].double()
    ess = float(effective_sample_size(x[None], chain_dim=0, sample_dim=1).min())
    return ess, dt, ess / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    scale = 0.2 if args.quick else 1.0
    problems = {
        "gaussian": (*gaussian_problem(), {"mala": 2000, "langevin": 2000, "nuts": 500}),
        "digits64": (
            *digits_problem(100 if args.quick else 800),
            {"mala": 1500, "langevin": 1500, "nuts": 200},
        ),
    }
    print(f"torch threads: {torch.get_num_threads()}")
    print(
        f"{'posterior':10s} {'kernel':9s} {'draws':>6s} {'minESS':>8s} {'time s':>8s} "
        f"{'ESS/s':>8s} {'vs NUTS':>8s}"
    )
    for name, (model, y, extra, sizes) in problems.items():
        rows = {}
        for kernel in ("mala", "langevin", "nuts"):
            n = max(20, int(sizes[kernel] * scale))
            rows[kernel] = (n, *run(model, y, kernel, n, max(20, n // 3), extra))
        base = rows["nuts"][3]
        for kernel, (n, ess, dt, rate) in rows.items():
            print(
                f"{name:10s} {kernel:9s} {n:6d} {ess:8.1f} {dt:8.2f} {rate:8.2f} {rate / base:8.2f}"
            )


if __name__ == "__main__":
    main()
