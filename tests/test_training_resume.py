"""A training process killed with SIGKILL and resumed ends with the same parameters as an
uninterrupted run (CPU, fixed seed): real subprocesses, a real kill; with the data as an
in-memory tensor and as a memory-mapped .npy Dataset read by a DataLoader worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from ncmle_prob.training import load_checkpoint

SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    from ncmle_prob.models import MADE
    from ncmle_prob.objectives import NoiseLevelPrior
    from ncmle_prob.training import fit

    torch.set_num_threads(1)
    out, steps, pause, resume = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    source = sys.argv[5]
    options = {}
    if source == "tensor":
        g = torch.Generator().manual_seed(1)
        x = torch.randn(512, 2, generator=g) @ torch.tensor([[1.0, 0.5], [0.0, 0.5]])
    else:  # a .npy file, memory-mapped, read by one DataLoader worker process
        from ncmle_prob.data import load_dataset

        x = load_dataset("npy:" + source, split="all")
        options["num_workers"] = 1
    torch.manual_seed(0)
    model = MADE(features=2, hidden_features=16, dropout=0.1)  # dropout: global RNG in play

    def report(step, info):
        print(f"step {step}", flush=True)
        time.sleep(pause)

    fit(model, x, prior=NoiseLevelPrior(), steps=steps, batch_size=64, lr=3e-3, ema=0.9,
        checkpoint_dir=out, checkpoint_every=5, resume=resume == "1", seed=7, progress=False,
        callback=report, **options)
    torch.save(model.state_dict(), out + "/final.pt")
    """
)
STEPS = 40  # 8 steps per epoch: the kill and the resume fall mid-epoch, after an epoch change


def _run(script: Path, out: Path, pause: float, resume: bool, source: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), str(out), str(STEPS), str(pause), "1" if resume else "0",
         source],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


@pytest.mark.parametrize("data", ["tensor", pytest.param("dataset", marks=pytest.mark.slow)])
def test_sigkilled_run_resumes_to_identical_parameters(tmp_path: Path, data: str) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    full, killed = tmp_path / "full", tmp_path / "killed"
    source = "tensor"
    if data == "dataset":
        g = torch.Generator().manual_seed(1)
        x = torch.randn(512, 2, generator=g) @ torch.tensor([[1.0, 0.5], [0.0, 0.5]])
        np.save(tmp_path / "x.npy", x.numpy())
        source = str(tmp_path / "x.npy")

    p = _run(script, full, 0.0, resume=False, source=source)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err

    p = _run(script, killed, 0.05, resume=False, source=source)
    assert p.stdout is not None
    for line in p.stdout:  # kill it mid-run, between checkpoints (at step 17 of 40)
        if line.strip() == "step 17":
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    assert not (killed / "final.pt").exists()
    assert load_checkpoint(killed / "last.pt").step == 15  # the last checkpoint before the kill
    assert [f.name for f in killed.iterdir()] == ["last.pt"]  # no temp file left behind

    p = _run(script, killed, 0.0, resume=True, source=source)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert out.split()[:2] == ["step", "16"]  # it continued from step 15

    a = torch.load(full / "final.pt", weights_only=True)
    b = torch.load(killed / "final.pt", weights_only=True)
    for k in a:  # EMA weights: bit-identical
        assert torch.equal(a[k], b[k]), k
    ca, cb = load_checkpoint(full / "last.pt"), load_checkpoint(killed / "last.pt")
    assert ca.step == cb.step == STEPS
    for k in ca.model:  # raw weights too
        assert torch.equal(ca.model[k], cb.model[k]), k
    sa, sb = ca.optimizer["state"], cb.optimizer["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
