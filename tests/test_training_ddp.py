"""DDP under a real 2-process torchrun (gloo, CPU) matches one process on the combined batch,
and only rank 0 writes files; a Dataset under torchrun (DistributedSampler shares) trains
exactly as the tensor does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from ncmle_prob.training import History, load_checkpoint

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="gloo backend unavailable"
)

SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    import ncmle_prob.training.checkpoint as ck
    from ncmle_prob.models import MADE
    from ncmle_prob.objectives import NoiseLevelPrior
    from ncmle_prob.training import fit

    out = sys.argv[1]
    rank = os.environ.get("RANK", "single")
    original = ck.atomic_write

    def spy(path, write):  # records every checkpoint write and the rank that made it
        with open(os.path.join(out, f"writes-{rank}.log"), "a") as f:
            f.write(f"{path}\\n")
        return original(path, write)

    ck.atomic_write = spy
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 2, generator=g) @ torch.tensor([[1.0, 0.5], [0.0, 0.5]])
    held_out = x[:64]
    if len(sys.argv) > 2 and sys.argv[2] == "dataset":
        x = torch.utils.data.TensorDataset(x)
    torch.manual_seed(0)
    model = MADE(features=2, hidden_features=16)
    hist = fit(model, x, prior=NoiseLevelPrior(), steps=12, batch_size=32, lr=1e-2,
               checkpoint_dir=os.path.join(out, "ckpt"), checkpoint_every=4,
               eval_data=held_out, eval_sigmas=[0.0, 0.3], seed=5, progress=False)
    print(f"rank {rank} evals {len(hist.evals)} logs {len(hist.train)}", flush=True)
    torch.save(model.state_dict(), os.path.join(out, f"final-{rank}.pt"))
    """
)


def test_two_process_torchrun_matches_one_process(tmp_path: Path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    single, multi, multi_ds = tmp_path / "single", tmp_path / "multi", tmp_path / "multi_ds"
    for d in (single, multi, multi_ds):
        d.mkdir()
    r = subprocess.run([sys.executable, str(script), str(single)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
         "--nproc_per_node=2", str(script), str(multi)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    r_ds = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
         "--nproc_per_node=2", str(script), str(multi_ds), "dataset"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert r_ds.returncode == 0, r_ds.stderr[-3000:]
    # rank 0 evaluates and logs; rank 1 logs the (all-reduced) losses but never evaluates
    assert "rank 0 evals 1" in r.stdout and "rank 1 evals 0" in r.stdout
    # only rank 0 wrote checkpoints (3 periodic/final writes), rank 1 wrote none
    assert sorted(p.name for p in multi.glob("writes-*.log")) == ["writes-0.log"]
    assert len((multi / "writes-0.log").read_text().splitlines()) == 3
    assert sorted(p.name for p in (multi / "ckpt").iterdir()) == ["last.pt"]

    # Each rank draws the noise of its rows r::2 of the global batch from a generator keyed by
    # (seed, step), so both runs see identical data, noise levels and noise: the only
    # difference is float summation order (two half-batch means averaged by all-reduce vs one
    # mean), ~1e-7 relative per step; 1e-5 after 12 Adam steps leaves ample room while any
    # mismatch in data or noise would move parameters by ~1e-2.
    a = torch.load(single / "final-single.pt", weights_only=True)
    b = torch.load(multi / "final-0.pt", weights_only=True)
    c = torch.load(multi / "final-1.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-5)
        assert torch.equal(b[k], c[k]), k  # DDP keeps the replicas identical
    # the Dataset's DistributedSampler shares are the tensor's rows: the same run, bit for bit
    d = torch.load(multi_ds / "final-0.pt", weights_only=True)
    for k in b:
        assert torch.equal(d[k], b[k]), k
    ck_single = load_checkpoint(single / "ckpt" / "last.pt")
    ck_multi = load_checkpoint(multi / "ckpt" / "last.pt")
    assert ck_multi.train_config["world_size"] == 2 and ck_multi.step == 12
    es, em = History.from_json(ck_single.history), History.from_json(ck_multi.history)
    assert [r["step"] for r in em.train] == [10, 12]  # all-reduced losses logged on rank 0
    assert [v for _, v in em.losses] == pytest.approx([v for _, v in es.losses], rel=1e-4)
    assert es.last_eval == pytest.approx(em.last_eval, abs=1e-4)

    # the 2-process run resumed on one process: the same global batch, another data order,
    # so it is allowed but warned about (ResumeOrderWarning), and the step count goes on
    from ncmle_prob.models import MADE
    from ncmle_prob.objectives import NoiseLevelPrior
    from ncmle_prob.training import ResumeOrderWarning, fit

    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 2, generator=g) @ torch.tensor([[1.0, 0.5], [0.0, 0.5]])
    model = MADE(features=2, hidden_features=16)
    with pytest.warns(ResumeOrderWarning, match="on 1 process instead of 2: the same global batch"):
        fit(model, x, prior=NoiseLevelPrior(), steps=16, batch_size=32, lr=1e-2,
            checkpoint_dir=multi / "ckpt", checkpoint_every=4, eval_data=x[:64],
            eval_sigmas=[0.0, 0.3], seed=5, progress=False, resume=True)
    assert load_checkpoint(multi / "ckpt" / "last.pt").step == 16
