"""min-of-7 wall seconds per sampler call, for the before/after comparison of issue 21."""
import json, sys, time, torch
sys.path.insert(0, "benchmarks")
torch.set_num_threads(1)
from bench_samplers import _train
from ncmle_prob import samplers
from ncmle_prob.models import MADE
from ncmle_prob.objectives import NoiseLevelPrior
out = {}
def timed(tag, dist, n, method, **o):
    ts = []
    for r in range(7):
        g = torch.Generator().manual_seed(1)
        t0 = time.perf_counter(); samplers.sample(dist, n, method, generator=g, **o); ts.append(time.perf_counter() - t0)
    out[tag] = min(ts)

m2 = _train(800, NoiseLevelPrior()); d2 = m2()
for method, o in [("score_corrected_ancestral", {}), ("score_corrected_ancestral", {"corrector": "langevin"}),
                  ("annealed_langevin", {}), ("self_denoising", {})]:
    timed(f"D=2 {method} {o}", d2, 2000, method, **o)
torch.manual_seed(0)
m64 = MADE(64, hidden_features=256, family="logistic_mixture", components=4).requires_grad_(False)
d64 = m64()
for method in ["ancestral", "tarflow", "self_denoising", "score_corrected_ancestral", "annealed_langevin"]:
    timed(f"D=64 {method}", d64, 256, method)
print(json.dumps(out))
